#include "kernels/quantize.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu/isa.h"

namespace memfront {

// ---------------------------------------------------------------------------
// bf16: the upper 16 bits of an fp32 (sign, 8 exponent bits, 7 mantissa bits).
// ---------------------------------------------------------------------------

uint16_t float_to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  // Keep a NaN a NaN: truncation could clear every mantissa bit left (-> infinity),
  // so set the quiet bit.
  if (std::isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  // Round to nearest even: add just under half of the dropped range, plus 1 when the
  // kept part is odd, so an exact half rounds up only from odd. A carry out of the
  // mantissa correctly bumps the exponent (up to infinity).
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float bf16_to_float(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

// ---------------------------------------------------------------------------
// fp8 e4m3 ("E4M3FN"): sign, 4 exponent bits (bias 7), 3 mantissa bits.
//   exponent 1..15: (1 + m/8) * 2^(e-7), except e = 15, m = 7 (0x7F, 0xFF): NaN.
//   exponent 0:     m/8 * 2^-6 = m * 2^-9 (subnormals; smallest 2^-9).
// No infinities; the largest finite value is 1.75 * 2^8 = 448 (0x7E).
// ---------------------------------------------------------------------------

namespace {
constexpr uint8_t kFp8Nan = 0x7F;
constexpr uint8_t kFp8Max = 0x7E;  // 448
constexpr float kFp8MaxValue = 448.0f;
}  // namespace

uint8_t float_to_fp8e4m3(float x) {
  if (std::isnan(x)) return kFp8Nan;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  // Everything from 448 up (infinity included) saturates: up to 464 that is also the
  // rounded value, above it rounding would reach 480, which has no code (0x7F is NaN).
  if (a >= kFp8MaxValue) return sign | kFp8Max;

  // Below the smallest normal 2^-6 the grid is uniform with spacing 2^-9: the code is
  // the number of steps. Rounding may reach 8 steps = 2^-6, whose code 0x08 is
  // exactly the smallest normal, so no special case is needed.
  if (a < 0x1p-6f) {
    return sign | static_cast<uint8_t>(std::nearbyint(a * 0x1p9f));  // exact scaling
  }

  // Normal: a = f * 2^u with f in [1, 2), u in [-6, 8]. Round f to 3 mantissa bits by
  // rounding f * 8 in [8, 16] to an integer q (nearbyint rounds half to even in the
  // default rounding mode). Code = (u + 7) << 3 | (q - 8), i.e. 8 * (u + 6) + q:
  // q = 16 then carries into the next exponent, which is the correctly rounded result.
  const int u = std::ilogb(a);
  const int q = static_cast<int>(std::nearbyint(std::ldexp(a, 3 - u)));  // exact scaling
  const int code = 8 * (u + 6) + q;
  // The grid spacing in [256, 448] is 32, so a < 448 rounds to at most 448: no NaN code.
  return sign | static_cast<uint8_t>(code);
}

float fp8e4m3_to_float(uint8_t bits) {
  const int exponent = (bits >> 3) & 0xF;
  const int mantissa = bits & 0x7;
  if (exponent == 15 && mantissa == 7) return std::nanf("");
  const float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -9)
                                        : std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);
  return (bits & 0x80) != 0 ? -magnitude : magnitude;
}

// ---------------------------------------------------------------------------
// Row-wise quantization
// ---------------------------------------------------------------------------

namespace {

[[noreturn]] void unsupported_row_format(DType format) {
  throw std::invalid_argument("row quantization does not support format " +
                              std::string(to_string(format)));
}

// Largest |x| of a row; NaNs are skipped (std::max keeps the first argument when the
// comparison with NaN is false).
float row_amax(const float* row, uint64_t cols) {
  float amax = 0.0f;
  for (uint64_t c = 0; c < cols; c++) amax = std::max(amax, std::fabs(row[c]));
  return amax;
}

// x / scale; a zero scale (an all-zero row) would make it NaN, so its codes are 0.
float divide_by_scale(float x, float scale) { return scale == 0.0f ? 0.0f : x / scale; }

// Symmetric int8 code of x / scale: round half to even, saturated to [-127, 127].
// NaN has no int8 code; it becomes 0. Written without branches or libm calls so
// that the row loop is SIMD: adding and removing 1.5 * 2^23 rounds a float of
// magnitude below 2^22 to the nearest integer, ties to even.
int8_t int8_code(float scaled) {
  const float clamped = std::clamp(scaled, -127.0f, 127.0f);  // NaN stays NaN
  const float finite = clamped == clamped ? clamped : 0.0f;
  const float rounded = (finite + 12582912.0f) - 12582912.0f;
  return static_cast<int8_t>(static_cast<int>(rounded));
}

}  // namespace

MEMFRONT_CPU_KERNEL
void quantize_rows(void* codes, float* scales, const float* src, uint64_t rows, uint64_t cols,
                   DType format) {
  switch (format) {
    case DType::fp32:
      std::memcpy(codes, src, rows * cols * sizeof(float));
      return;
    case DType::bf16: {
      auto* out = static_cast<uint16_t*>(codes);
      for (uint64_t i = 0; i < rows * cols; i++) out[i] = float_to_bf16(src[i]);
      return;
    }
    case DType::fp8e4m3: {
      auto* out = static_cast<uint8_t*>(codes);
      for (uint64_t r = 0; r < rows; r++) {
        const float* row = src + r * cols;
        scales[r] = row_amax(row, cols) / kFp8MaxValue;
        for (uint64_t c = 0; c < cols; c++) {
          out[r * cols + c] = float_to_fp8e4m3(divide_by_scale(row[c], scales[r]));
        }
      }
      return;
    }
    case DType::int8: {
      auto* out = static_cast<int8_t*>(codes);
      for (uint64_t r = 0; r < rows; r++) {
        const float* row = src + r * cols;
        const float scale = row_amax(row, cols) / 127.0f;
        scales[r] = scale;
        int8_t* code = out + r * cols;
        if (scale == 0.0f) {  // an all-zero row
          std::fill(code, code + cols, int8_t{0});
          continue;
        }
        for (uint64_t c = 0; c < cols; c++) code[c] = int8_code(row[c] / scale);
      }
      return;
    }
    case DType::int4:
      break;
  }
  unsupported_row_format(format);
}

MEMFRONT_CPU_KERNEL
void dequantize_rows(float* dst, const void* codes, const float* scales, uint64_t rows,
                     uint64_t cols, DType format) {
  switch (format) {
    case DType::fp32:
      std::memcpy(dst, codes, rows * cols * sizeof(float));
      return;
    case DType::bf16: {
      const auto* in = static_cast<const uint16_t*>(codes);
      for (uint64_t i = 0; i < rows * cols; i++) dst[i] = bf16_to_float(in[i]);
      return;
    }
    case DType::fp8e4m3: {
      const auto* in = static_cast<const uint8_t*>(codes);
      for (uint64_t r = 0; r < rows; r++) {
        for (uint64_t c = 0; c < cols; c++) {
          dst[r * cols + c] = fp8e4m3_to_float(in[r * cols + c]) * scales[r];
        }
      }
      return;
    }
    case DType::int8: {
      const auto* in = static_cast<const int8_t*>(codes);
      for (uint64_t r = 0; r < rows; r++) {
        for (uint64_t c = 0; c < cols; c++) {
          dst[r * cols + c] = static_cast<float>(in[r * cols + c]) * scales[r];
        }
      }
      return;
    }
    case DType::int4:
      break;
  }
  unsupported_row_format(format);
}

}  // namespace memfront
