// Number-format conversions: exact codes for known values, round-to-nearest-even
// at every tie, and round-trip error bounds of the row formats.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/quantize.h"

namespace memfront {
namespace {

// ---------------------------------------------------------------------------
// bf16
// ---------------------------------------------------------------------------

TEST(Bf16, KnownValues) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(-2.5f), 0xC020);
  EXPECT_EQ(float_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(bf16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xC020), -2.5f);
  // 1 + 2^-8 lies halfway between 1 (0x3F80, even) and 1 + 2^-7 (0x3F81): to even.
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f), 0x3F80);
  // 1 + 3 * 2^-8 lies halfway between 0x3F81 (odd) and 0x3F82: to even, upwards.
  EXPECT_EQ(float_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);
  // Just above a tie rounds up.
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
  // Rounding carries into the exponent: the largest float becomes infinity.
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
}

TEST(Bf16, NanStaysNan) {
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
  // A NaN whose payload sits only in the low 16 bits would truncate to infinity.
  const float low_payload_nan = std::bit_cast<float>(0x7F800001u);
  ASSERT_TRUE(std::isnan(low_payload_nan));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(low_payload_nan))));
}

// Every finite bf16 value converts back to its own code, and every exact midpoint
// between neighbours goes to the one with the even code.
TEST(Bf16, EveryCodeAndEveryTie) {
  for (uint32_t code = 0; code < 0x7F80; code++) {
    const auto c = static_cast<uint16_t>(code);
    ASSERT_EQ(float_to_bf16(bf16_to_float(c)), c);
    const auto negative = static_cast<uint16_t>(code | 0x8000u);
    ASSERT_EQ(float_to_bf16(bf16_to_float(negative)), negative);
    const uint16_t next = static_cast<uint16_t>(c + 1);
    const float mid = std::bit_cast<float>((static_cast<uint32_t>(c) << 16) | 0x8000u);
    ASSERT_EQ(float_to_bf16(mid), (c % 2 == 0) ? c : next) << "code " << code;
  }
}

// ---------------------------------------------------------------------------
// fp8 e4m3
// ---------------------------------------------------------------------------

TEST(Fp8e4m3, KnownValues) {
  EXPECT_EQ(float_to_fp8e4m3(1.0f), 0x38);         // exponent 7, mantissa 0
  EXPECT_EQ(float_to_fp8e4m3(-2.5f), 0xC2);        // 1.25 * 2^1: sign, exponent 8, mantissa 2
  EXPECT_EQ(float_to_fp8e4m3(448.0f), 0x7E);       // largest finite
  EXPECT_EQ(float_to_fp8e4m3(0.001953125f), 0x01);  // 2^-9, smallest subnormal
  EXPECT_EQ(float_to_fp8e4m3(0x1p-6f), 0x08);      // smallest normal
  EXPECT_EQ(float_to_fp8e4m3(0.0f), 0x00);
  EXPECT_EQ(float_to_fp8e4m3(-0.0f), 0x80);
  EXPECT_EQ(fp8e4m3_to_float(0x38), 1.0f);
  EXPECT_EQ(fp8e4m3_to_float(0xC2), -2.5f);
  EXPECT_EQ(fp8e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(fp8e4m3_to_float(0xFE), -448.0f);
  EXPECT_EQ(fp8e4m3_to_float(0x01), 0.001953125f);
  EXPECT_EQ(fp8e4m3_to_float(0x07), 7 * 0x1p-9f);  // largest subnormal
  EXPECT_EQ(fp8e4m3_to_float(0x08), 0x1p-6f);
}

TEST(Fp8e4m3, RoundsToNearestEven) {
  // 1.0625 is halfway between 1.0 (mantissa 0) and 1.125 (mantissa 1): to 1.0.
  EXPECT_EQ(float_to_fp8e4m3(1.0625f), 0x38);
  // 1.1875 is halfway between 1.125 (mantissa 1) and 1.25 (mantissa 2): to 1.25.
  EXPECT_EQ(float_to_fp8e4m3(1.1875f), 0x3A);
  EXPECT_EQ(float_to_fp8e4m3(1.07f), 0x39);  // past the tie: up
  // Subnormals: 2^-10 is halfway between 0 and 2^-9: to 0. 1.5 * 2^-9: to 2 * 2^-9.
  EXPECT_EQ(float_to_fp8e4m3(0x1p-10f), 0x00);
  EXPECT_EQ(float_to_fp8e4m3(1.5f * 0x1p-9f), 0x02);
  EXPECT_EQ(float_to_fp8e4m3(2.5f * 0x1p-9f), 0x02);
  // 7.5 * 2^-9, between the largest subnormal and the smallest normal: to the normal.
  EXPECT_EQ(float_to_fp8e4m3(7.5f * 0x1p-9f), 0x08);
  // 15.5 * 2^-3 = 1.9375, halfway between 1.875 (mantissa 7) and 2.0: into the next binade.
  EXPECT_EQ(float_to_fp8e4m3(1.9375f), 0x40);
}

TEST(Fp8e4m3, SaturatesAndNan) {
  EXPECT_EQ(float_to_fp8e4m3(1e6f), 0x7E);
  EXPECT_EQ(float_to_fp8e4m3(-1e6f), 0xFE);
  EXPECT_EQ(float_to_fp8e4m3(464.0f), 0x7E);  // halfway to 480, which does not exist
  EXPECT_EQ(float_to_fp8e4m3(470.0f), 0x7E);
  EXPECT_EQ(float_to_fp8e4m3(std::numeric_limits<float>::infinity()), 0x7E);
  EXPECT_EQ(float_to_fp8e4m3(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(float_to_fp8e4m3(std::nanf("")), 0x7F);
  EXPECT_EQ(float_to_fp8e4m3(-std::nanf("")), 0x7F);
  EXPECT_TRUE(std::isnan(fp8e4m3_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(fp8e4m3_to_float(0xFF)));
}

// Every finite code converts back to itself; every midpoint between neighbouring
// positive codes goes to the even code (the code's last bit is the mantissa's).
TEST(Fp8e4m3, EveryCodeAndEveryTie) {
  for (int code = 0; code < 256; code++) {
    const auto c = static_cast<uint8_t>(code);
    if ((c & 0x7F) == 0x7F) continue;  // NaN
    EXPECT_EQ(float_to_fp8e4m3(fp8e4m3_to_float(c)), c) << "code " << code;
  }
  for (int code = 0; code < 0x7E; code++) {
    const auto c = static_cast<uint8_t>(code);
    const float low = fp8e4m3_to_float(c);
    const float high = fp8e4m3_to_float(static_cast<uint8_t>(c + 1));
    ASSERT_LT(low, high);
    const float mid = (low + high) / 2;  // exact: both have at most 4 significant bits
    EXPECT_EQ(float_to_fp8e4m3(mid), code % 2 == 0 ? c : c + 1) << "code " << code;
    EXPECT_EQ(float_to_fp8e4m3(std::nextafter(mid, 0.0f)), c) << "code " << code;
    EXPECT_EQ(float_to_fp8e4m3(std::nextafter(mid, 1e3f)), c + 1) << "code " << code;
  }
}

// ---------------------------------------------------------------------------
// Row-wise quantization
// ---------------------------------------------------------------------------

// Test rows: normal values, normal values with one large outlier, and all zeros.
struct Rows {
  uint64_t rows = 6, cols = 64;
  std::vector<float> values;
};

Rows test_rows() {
  Rows r;
  r.values.resize(r.rows * r.cols);
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& x : r.values) x = dist(rng);
  r.values[1 * r.cols + 17] = 300.0f;   // outlier row
  r.values[2 * r.cols + 3] = -5000.0f;  // negative outlier row
  for (uint64_t c = 0; c < r.cols; c++) r.values[3 * r.cols + c] = 0.0f;       // zero row
  for (uint64_t c = 0; c < r.cols; c++) r.values[4 * r.cols + c] *= 1e-30f;  // tiny row
  return r;
}

struct RoundTrip {
  std::vector<float> decoded, scales;
};

RoundTrip round_trip(const Rows& r, DType format) {
  std::vector<uint8_t> codes(row_quantized_data_bytes(format, r.rows, r.cols));
  RoundTrip out;
  out.scales.resize(r.rows);
  out.decoded.resize(r.values.size());
  float* scales = dtype_is_scaled(format) ? out.scales.data() : nullptr;
  quantize_rows(codes.data(), scales, r.values.data(), r.rows, r.cols, format);
  dequantize_rows(out.decoded.data(), codes.data(), scales, r.rows, r.cols, format);
  return out;
}

float row_amax(const Rows& r, uint64_t row) {
  float amax = 0.0f;
  for (uint64_t c = 0; c < r.cols; c++) amax = std::max(amax, std::fabs(r.values[row * r.cols + c]));
  return amax;
}

TEST(QuantizeRows, Fp32IsExact) {
  const Rows r = test_rows();
  EXPECT_EQ(round_trip(r, DType::fp32).decoded, r.values);
}

// bf16 keeps 8 significant bits: rounding to nearest is off by at most half a unit in
// the last place, 2^-8 relative.
TEST(QuantizeRows, Bf16RelativeError) {
  const Rows r = test_rows();
  const RoundTrip q = round_trip(r, DType::bf16);
  for (size_t i = 0; i < r.values.size(); i++) {
    EXPECT_LE(std::fabs(r.values[i] - q.decoded[i]), std::fabs(r.values[i]) * 0x1p-8f) << i;
  }
}

// The row is scaled to y = x / scale in [-448, 448] and y rounded to e4m3:
// - normal y (|y| >= 2^-6): 3 mantissa bits, spacing 2^(e-3) in [2^e, 2^(e+1)), so
//   the error is at most 2^(e-4) <= |y| * 2^-4;
// - subnormal y: spacing 2^-9, so the error is at most 2^-10.
// Back in x units: |x - decoded| <= max(|x| * 2^-4, scale * 2^-10), plus the float
// rounding of x / scale and of code * scale (a few 2^-24 relative), allowed as |x| * 2^-20.
TEST(QuantizeRows, Fp8e4m3ErrorBound) {
  const Rows r = test_rows();
  const RoundTrip q = round_trip(r, DType::fp8e4m3);
  for (uint64_t row = 0; row < r.rows; row++) {
    const float scale = q.scales[row];
    EXPECT_EQ(scale, row_amax(r, row) / 448.0f) << "row " << row;
    for (uint64_t c = 0; c < r.cols; c++) {
      const float x = r.values[row * r.cols + c];
      const float bound = std::max(std::fabs(x) * 0x1p-4f, scale * 0x1p-10f) + std::fabs(x) * 0x1p-20f;
      EXPECT_LE(std::fabs(x - q.decoded[row * r.cols + c]), bound) << "row " << row << " col " << c;
    }
  }
  // The zero row has scale 0 and decodes to zeros.
  EXPECT_EQ(q.scales[3], 0.0f);
  for (uint64_t c = 0; c < r.cols; c++) EXPECT_EQ(q.decoded[3 * r.cols + c], 0.0f);
}

// Symmetric int8: codes -127..127 at spacing scale = amax / 127; rounding to the nearest
// code is off by at most scale / 2 = amax / 254 (plus float rounding, as above).
TEST(QuantizeRows, Int8ErrorBound) {
  const Rows r = test_rows();
  const RoundTrip q = round_trip(r, DType::int8);
  for (uint64_t row = 0; row < r.rows; row++) {
    const float scale = q.scales[row];
    EXPECT_EQ(scale, row_amax(r, row) / 127.0f) << "row " << row;
    for (uint64_t c = 0; c < r.cols; c++) {
      const float x = r.values[row * r.cols + c];
      EXPECT_LE(std::fabs(x - q.decoded[row * r.cols + c]), scale / 2 + std::fabs(x) * 0x1p-20f)
          << "row " << row << " col " << c;
    }
  }
  EXPECT_EQ(q.scales[3], 0.0f);
  for (uint64_t c = 0; c < r.cols; c++) EXPECT_EQ(q.decoded[3 * r.cols + c], 0.0f);
}

// The element with the largest magnitude maps to the extreme code.
TEST(QuantizeRows, AmaxMapsToLargestCode) {
  const float row[4] = {0.5f, -2.0f, 1.0f, 0.25f};
  uint8_t fp8[4];
  int8_t i8[4];
  float scale = 0.0f;
  quantize_rows(fp8, &scale, row, 1, 4, DType::fp8e4m3);
  EXPECT_EQ(scale, 2.0f / 448.0f);
  EXPECT_EQ(fp8[1], 0xFE);
  quantize_rows(i8, &scale, row, 1, 4, DType::int8);
  EXPECT_EQ(scale, 2.0f / 127.0f);
  EXPECT_EQ(i8[1], -127);
  EXPECT_EQ(i8[0], 32);  // 0.5 / (2/127) = 31.75
}

TEST(QuantizeRows, ByteSizes) {
  EXPECT_EQ(row_quantized_data_bytes(DType::fp32, 3, 5), 60u);
  EXPECT_EQ(row_quantized_data_bytes(DType::bf16, 3, 5), 30u);
  EXPECT_EQ(row_quantized_data_bytes(DType::fp8e4m3, 3, 5), 15u);
  EXPECT_EQ(row_quantized_data_bytes(DType::int8, 3, 5), 15u);
  EXPECT_EQ(row_quantized_scale_bytes(DType::fp32, 3), 0u);
  EXPECT_EQ(row_quantized_scale_bytes(DType::bf16, 3), 0u);
  EXPECT_EQ(row_quantized_scale_bytes(DType::fp8e4m3, 3), 12u);
  EXPECT_EQ(row_quantized_scale_bytes(DType::int8, 3), 12u);
}

}  // namespace
}  // namespace memfront
