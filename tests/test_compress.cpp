// Wire compression: exact payload sizes and layouts, round-trip error bounds of the
// blockwise formats, Top-K selection against a brute-force reference, and error
// feedback (nothing is lost, only delayed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/compress.h"

namespace memfront {
namespace {

using Bytes = std::vector<unsigned char>;

std::vector<float> random_values(uint64_t n, float magnitude, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-magnitude, magnitude);
  std::vector<float> x(n);
  for (float& v : x) v = value(rng);
  return x;
}

Bytes encode(const std::vector<float>& x, DType format, int block) {
  Bytes payload(blockwise_bytes(x.size(), format, block));
  encode_blockwise(payload.data(), x.data(), x.size(), format, block);
  return payload;
}

std::vector<float> decode(const Bytes& payload, uint64_t n, DType format, int block) {
  std::vector<float> x(n);
  decode_blockwise(x.data(), payload.data(), n, format, block);
  return x;
}

float stored_scale(const Bytes& payload, uint64_t b) {
  float scale;
  std::memcpy(&scale, payload.data() + b * sizeof(float), sizeof scale);
  return scale;
}

float code_limit(DType format) { return format == DType::int8 ? 127.0f : 7.0f; }

float block_amax(const std::vector<float>& x, uint64_t begin, uint64_t end) {
  float amax = 0.0f;
  for (uint64_t i = begin; i < end; i++) amax = std::max(amax, std::fabs(x[i]));
  return amax;
}

// ---------------------------------------------------------------------------
// Blockwise quantization
// ---------------------------------------------------------------------------

// n = 11 in blocks of 4: three blocks (4, 4, 3), and an odd count of int4 codes.
TEST(BlockwiseBytes, ExactSizes) {
  EXPECT_EQ(blockwise_bytes(11, DType::fp32, 4), 44u);
  EXPECT_EQ(blockwise_bytes(11, DType::bf16, 4), 22u);
  EXPECT_EQ(blockwise_bytes(11, DType::int8, 4), 3 * 4 + 11u);
  EXPECT_EQ(blockwise_bytes(11, DType::int4, 4), 3 * 4 + 6u);
  EXPECT_EQ(blockwise_bytes(12, DType::int4, 4), 3 * 4 + 6u);
  EXPECT_EQ(blockwise_bytes(1, DType::int4, 64), 4 + 1u);
  for (DType format : {DType::fp32, DType::bf16, DType::int8, DType::int4}) {
    EXPECT_EQ(blockwise_bytes(0, format, 4), 0u);
  }
}

TEST(BlockwiseBytes, RejectsBadArguments) {
  EXPECT_THROW(blockwise_bytes(8, DType::int8, 0), std::invalid_argument);
  EXPECT_THROW(blockwise_bytes(8, DType::fp8e4m3, 4), std::invalid_argument);
  float x[4] = {};
  unsigned char payload[32] = {};
  EXPECT_THROW(encode_blockwise(payload, x, 4, DType::int4, -1), std::invalid_argument);
  EXPECT_THROW(decode_blockwise(x, payload, 4, DType::fp8e4m3, 4), std::invalid_argument);
}

TEST(Blockwise, Fp32IsExact) {
  const std::vector<float> x = random_values(37, 100.0f, 1);
  const Bytes payload = encode(x, DType::fp32, 8);
  EXPECT_EQ(decode(payload, x.size(), DType::fp32, 8), x);
}

TEST(Blockwise, Bf16RelativeError) {
  const std::vector<float> x = random_values(1001, 1e4f, 2);
  const std::vector<float> decoded = decode(encode(x, DType::bf16, 64), x.size(), DType::bf16, 64);
  for (uint64_t i = 0; i < x.size(); i++) {
    EXPECT_LE(std::fabs(x[i] - decoded[i]), std::fabs(x[i]) * 0x1p-8f) << "element " << i;
  }
}

// Symmetric codes at spacing scale = amax / limit: rounding to the nearest is off by
// at most scale / 2, plus the float rounding of x / scale and code * scale (a few
// 2^-24 relative), allowed as |x| * 2^-20. An odd block size makes int4 blocks start
// in the middle of a byte.
TEST(Blockwise, IntegerErrorBoundPerBlock) {
  // Blocks of very different magnitudes: each must get its own scale.
  std::vector<float> x = random_values(1000, 1.0f, 3);
  for (uint64_t i = 0; i < x.size(); i++) x[i] *= std::ldexp(1.0f, static_cast<int>(i / 50 % 9) - 4);
  for (DType format : {DType::int8, DType::int4}) {
    for (int block : {7, 64}) {
      const Bytes payload = encode(x, format, block);
      const std::vector<float> decoded = decode(payload, x.size(), format, block);
      for (uint64_t begin = 0, b = 0; begin < x.size(); begin += block, b++) {
        const uint64_t end = std::min<uint64_t>(begin + block, x.size());
        const float scale = stored_scale(payload, b);
        ASSERT_EQ(scale, block_amax(x, begin, end) / code_limit(format)) << "block " << b;
        for (uint64_t i = begin; i < end; i++) {
          ASSERT_LE(std::fabs(x[i] - decoded[i]), scale / 2 + std::fabs(x[i]) * 0x1p-20f)
              << to_string(format) << " block size " << block << " element " << i;
        }
      }
    }
  }
}

TEST(Blockwise, ZeroBlockDecodesToZero) {
  const std::vector<float> x = {1.0f, -2.0f, 3.0f, 0.5f, 0.0f, -0.0f, 0.0f, 0.0f, 4.0f};
  for (DType format : {DType::int8, DType::int4}) {
    const Bytes payload = encode(x, format, 4);
    EXPECT_EQ(stored_scale(payload, 1), 0.0f);
    const std::vector<float> decoded = decode(payload, x.size(), format, 4);
    for (uint64_t i = 4; i < 8; i++) EXPECT_EQ(decoded[i], 0.0f) << to_string(format) << " element " << i;
  }
}

// The scale is per block, so a large value coarsens only the grid of its own block.
TEST(Blockwise, OutlierOnlyAffectsItsBlock) {
  constexpr int kBlock = 32;
  const std::vector<float> x = random_values(4 * kBlock, 1.0f, 4);
  std::vector<float> with_outlier = x;
  with_outlier[2 * kBlock + 5] = 1000.0f;
  for (DType format : {DType::int8, DType::int4}) {
    const std::vector<float> plain = decode(encode(x, format, kBlock), x.size(), format, kBlock);
    const Bytes payload = encode(with_outlier, format, kBlock);
    const std::vector<float> decoded = decode(payload, x.size(), format, kBlock);
    EXPECT_EQ(stored_scale(payload, 2), 1000.0f / code_limit(format));
    for (uint64_t i = 0; i < x.size(); i++) {
      if (i / kBlock == 2) continue;
      EXPECT_EQ(decoded[i], plain[i]) << to_string(format) << " element " << i;
    }
  }
}

// scale 1 (amax 127): the codes are the values rounded half to even, saturated.
TEST(Blockwise, Int8Codes) {
  const std::vector<float> x = {127.0f, 2.5f, 3.5f, -2.5f, -0.4f, std::nanf(""), 0.0f};
  const Bytes payload = encode(x, DType::int8, 8);
  ASSERT_EQ(payload.size(), 4u + 7u);
  EXPECT_EQ(stored_scale(payload, 0), 1.0f);
  const Bytes codes(payload.begin() + 4, payload.end());
  EXPECT_EQ(codes, (Bytes{127, 2, 4, 0xFE, 0, 0, 0}));  // -2 is 0xFE; NaN has code 0
}

// Element 2i in the low nibble, 2i+1 in the high one, two's complement; the padding
// nibble after an odd count is 0.
TEST(Blockwise, Int4NibbleLayout) {
  const std::vector<float> x = {7.0f, -7.0f, 1.0f, -1.0f, 0.0f};  // amax 7: scale 1
  const Bytes payload = encode(x, DType::int4, 8);
  ASSERT_EQ(payload.size(), 4u + 3u);
  EXPECT_EQ(stored_scale(payload, 0), 1.0f);
  // Codes 7, -7 (0x9), 1, -1 (0xF), 0.
  EXPECT_EQ(Bytes(payload.begin() + 4, payload.end()), (Bytes{0x97, 0xF1, 0x00}));
  EXPECT_EQ(decode(payload, x.size(), DType::int4, 8), x);
}

// Blocks of 3: the second block begins in the high nibble of byte 1.
TEST(Blockwise, Int4BlocksShareAByte) {
  // Block 0: scale 1; 2.5 is a tie and rounds to even 2. Block 1: scale 2/7, codes 7
  // and round(-1.2 * 3.5) = round(-4.2) = -4 (0xC).
  const std::vector<float> x = {2.5f, -7.0f, 1.0f, 2.0f, -1.2f};
  const Bytes payload = encode(x, DType::int4, 3);
  ASSERT_EQ(payload.size(), 2 * 4u + 3u);
  EXPECT_EQ(stored_scale(payload, 0), 1.0f);
  EXPECT_EQ(stored_scale(payload, 1), 2.0f / 7.0f);
  EXPECT_EQ(Bytes(payload.begin() + 8, payload.end()), (Bytes{0x92, 0x71, 0x0C}));
  const std::vector<float> decoded = decode(payload, x.size(), DType::int4, 3);
  EXPECT_EQ(decoded[0], 2.0f);
  EXPECT_EQ(decoded[3], 7.0f * (2.0f / 7.0f));
  EXPECT_EQ(decoded[4], -4.0f * (2.0f / 7.0f));
}

// Whatever the block size and length, each block decodes as if it had been sent alone:
// the blocks that share a byte do not disturb each other.
TEST(Blockwise, Int4BlocksDecodeAsIfAlone) {
  for (int block = 1; block <= 6; block++) {
    for (uint64_t n = 1; n <= 13; n++) {
      const std::vector<float> x = random_values(n, 4.0f, static_cast<unsigned>(100 * block + n));
      const std::vector<float> decoded = decode(encode(x, DType::int4, block), n, DType::int4, block);
      for (uint64_t begin = 0; begin < n; begin += block) {
        const std::vector<float> alone(x.begin() + begin, x.begin() + std::min<uint64_t>(begin + block, n));
        const std::vector<float> alone_decoded = decode(encode(alone, DType::int4, block), alone.size(),
                                                        DType::int4, block);
        for (uint64_t i = 0; i < alone.size(); i++) {
          ASSERT_EQ(decoded[begin + i], alone_decoded[i]) << "block size " << block << " n " << n;
        }
      }
    }
  }
}

// Send buffers are carved from larger ones: a payload one byte off alignment holds
// the same bytes and decodes the same.
TEST(Blockwise, UnalignedPayload) {
  const std::vector<float> x = random_values(45, 3.0f, 5);
  for (DType format : {DType::fp32, DType::bf16, DType::int8, DType::int4}) {
    const Bytes aligned = encode(x, format, 8);
    Bytes shifted(aligned.size() + 1);
    encode_blockwise(shifted.data() + 1, x.data(), x.size(), format, 8);
    EXPECT_TRUE(std::equal(aligned.begin(), aligned.end(), shifted.begin() + 1)) << to_string(format);
    std::vector<float> decoded(x.size());
    decode_blockwise(decoded.data(), shifted.data() + 1, x.size(), format, 8);
    EXPECT_EQ(decoded, decode(aligned, x.size(), format, 8)) << to_string(format);
  }
}

TEST(Blockwise, AddDecodedAccumulates) {
  const std::vector<float> x = random_values(45, 3.0f, 6);
  const std::vector<float> base = random_values(45, 1.0f, 7);
  for (DType format : {DType::fp32, DType::bf16, DType::int8, DType::int4}) {
    const Bytes payload = encode(x, format, 8);
    const std::vector<float> decoded = decode(payload, x.size(), format, 8);

    std::vector<float> sum(x.size(), 0.0f);
    add_decoded_blockwise(sum.data(), payload.data(), x.size(), format, 8);
    add_decoded_blockwise(sum.data(), payload.data(), x.size(), format, 8);
    for (uint64_t i = 0; i < x.size(); i++) EXPECT_EQ(sum[i], 2 * decoded[i]) << to_string(format);

    std::vector<float> onto = base;
    add_decoded_blockwise(onto.data(), payload.data(), x.size(), format, 8);
    for (uint64_t i = 0; i < x.size(); i++) EXPECT_EQ(onto[i], base[i] + decoded[i]) << to_string(format);
  }
}

// ---------------------------------------------------------------------------
// Error feedback around quantization
// ---------------------------------------------------------------------------

TEST(BlockwiseFeedback, Fp32LeavesNoResidual) {
  std::vector<float> residual(33, 0.0f);
  Bytes payload(blockwise_bytes(33, DType::fp32, 8));
  for (unsigned step = 0; step < 3; step++) {
    const std::vector<float> g = random_values(33, 5.0f, 10 + step);
    std::vector<float> x = g;
    encode_blockwise_with_feedback(payload.data(), x.data(), residual.data(), 33, DType::fp32, 8);
    EXPECT_EQ(x, g);
    EXPECT_EQ(residual, std::vector<float>(33, 0.0f));
    EXPECT_EQ(decode(payload, 33, DType::fp32, 8), g);
  }
}

// Sends the constant input g for `steps` steps and returns the mean of what the
// receivers decoded, per element. residual null: no feedback.
std::vector<double> mean_decoded(const std::vector<float>& g, DType format, int block, int steps,
                                 bool feedback) {
  const uint64_t n = g.size();
  std::vector<float> residual(n, 0.0f);
  Bytes payload(blockwise_bytes(n, format, block));
  std::vector<double> sum(n, 0.0);
  for (int step = 0; step < steps; step++) {
    std::vector<float> x = g;
    encode_blockwise_with_feedback(payload.data(), x.data(), feedback ? residual.data() : nullptr, n, format,
                                   block);
    const std::vector<float> decoded = decode(payload, n, format, block);
    for (uint64_t i = 0; i < n; i++) sum[i] += decoded[i];
  }
  for (double& s : sum) s /= steps;
  return sum;
}

// With feedback the decoded values sum to the inputs' sum minus the final residual,
// which stays within one step's error: the mean error is the per-step bound / steps.
TEST(BlockwiseFeedback, RunningMeanConverges) {
  constexpr int kBlock = 32;
  constexpr int kSteps = 400;
  const std::vector<float> g = random_values(8 * kBlock, 2.0f, 11);
  for (DType format : {DType::bf16, DType::int8, DType::int4}) {
    const std::vector<double> mean = mean_decoded(g, format, kBlock, kSteps, true);
    for (uint64_t i = 0; i < g.size(); i++) {
      const uint64_t begin = i / kBlock * kBlock;
      const float step_bound = format == DType::bf16
                                   ? std::fabs(g[i]) * 0x1p-8f
                                   : block_amax(g, begin, begin + kBlock) / code_limit(format) / 2;
      EXPECT_LE(std::fabs(mean[i] - g[i]), 0.01 * step_bound) << to_string(format) << " element " << i;
    }
  }
}

// 0.3 of an int4 grid step rounds to 0 every step: without feedback it is never sent.
// With feedback the residual grows until it rounds up, and the mean approaches 0.3.
TEST(BlockwiseFeedback, Int4BiasRemainsWithoutFeedback) {
  const std::vector<float> g = {7.0f, 0.3f, -0.3f, 0.3f, 0.3f, -0.3f, 0.3f, 0.3f};  // scale 1
  constexpr float kStepBound = 0.5f;
  const std::vector<double> without = mean_decoded(g, DType::int4, 8, 300, false);
  const std::vector<double> with = mean_decoded(g, DType::int4, 8, 300, true);
  for (uint64_t i = 1; i < g.size(); i++) {
    EXPECT_EQ(without[i], 0.0) << "element " << i;
    EXPECT_LE(std::fabs(with[i] - g[i]), 0.01 * kStepBound) << "element " << i;
  }
}

// ---------------------------------------------------------------------------
// Top-K
// ---------------------------------------------------------------------------

struct Entry {
  uint32_t index;
  float value;
};

std::vector<Entry> entries(const Bytes& payload, uint64_t k) {
  std::vector<Entry> out(k);
  for (uint64_t j = 0; j < k; j++) {
    std::memcpy(&out[j].index, payload.data() + 8 * j, sizeof(uint32_t));
    std::memcpy(&out[j].value, payload.data() + 8 * j + 4, sizeof(float));
  }
  return out;
}

std::vector<uint32_t> topk_indices(const std::vector<float>& x, uint64_t k) {
  Bytes payload(topk_bytes(k));
  std::vector<float> scratch(x.size());
  encode_topk(payload.data(), x.data(), x.size(), k, scratch.data());
  std::vector<uint32_t> indices;
  for (const Entry& e : entries(payload, k)) indices.push_back(e.index);
  return indices;
}

// Reference: sort all indices by magnitude, largest first, lower index first among
// equals, keep k, and list them in index order.
std::vector<uint32_t> brute_force_topk(const std::vector<float>& x, uint64_t k) {
  std::vector<uint32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
  order.resize(k);
  std::sort(order.begin(), order.end());
  return order;
}

TEST(TopK, Count) {
  EXPECT_EQ(topk_count(10, 0.25), 3u);   // ceil(2.5)
  EXPECT_EQ(topk_count(10, 0.2), 2u);
  EXPECT_EQ(topk_count(100, 0.07), 7u);  // 0.07 * 100 is 7.000000000000001 in doubles
  EXPECT_EQ(topk_count(1000, 0.0001), 1u);  // at least 1
  EXPECT_EQ(topk_count(10, 1.0), 10u);
  EXPECT_EQ(topk_count(0, 0.5), 0u);
  EXPECT_THROW(topk_count(10, 0.0), std::invalid_argument);
  EXPECT_THROW(topk_count(10, 1.5), std::invalid_argument);
  EXPECT_THROW(topk_count(10, std::nan("")), std::invalid_argument);
  EXPECT_EQ(topk_bytes(5), 40u);
}

// Few distinct magnitudes, so most of the selection is decided by ties.
TEST(TopK, MatchesBruteForce) {
  std::mt19937 rng(20);
  std::uniform_int_distribution<int> level(-6, 6);
  std::vector<float> x(300);
  for (float& v : x) v = 0.5f * static_cast<float>(level(rng));
  for (uint64_t k : {1u, 2u, 17u, 150u, 299u}) {
    Bytes payload(topk_bytes(k));
    std::vector<float> scratch(x.size());
    encode_topk(payload.data(), x.data(), x.size(), k, scratch.data());
    const std::vector<Entry> sent = entries(payload, k);
    const std::vector<uint32_t> expected = brute_force_topk(x, k);
    ASSERT_EQ(sent.size(), expected.size());
    for (uint64_t j = 0; j < k; j++) {
      EXPECT_EQ(sent[j].index, expected[j]) << "k " << k << " entry " << j;
      EXPECT_EQ(sent[j].value, x[sent[j].index]);
    }
  }
}

TEST(TopK, TiesGoToLowerIndex) {
  const std::vector<float> x = {1.0f, -3.0f, 3.0f, 2.0f, -3.0f};
  EXPECT_EQ(topk_indices(x, 1), (std::vector<uint32_t>{1}));
  EXPECT_EQ(topk_indices(x, 2), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(topk_indices(x, 3), (std::vector<uint32_t>{1, 2, 4}));
  EXPECT_EQ(topk_indices(x, 4), (std::vector<uint32_t>{1, 2, 3, 4}));
}

TEST(TopK, NanRanksLowest) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {nan, 0.0f, nan, -2.0f};
  EXPECT_EQ(topk_indices(x, 2), (std::vector<uint32_t>{1, 3}));
  EXPECT_EQ(topk_indices(x, 3), (std::vector<uint32_t>{0, 1, 3}));
}

TEST(TopK, KEqualToNSendsEverything) {
  const std::vector<float> x = random_values(20, 1.0f, 21);
  Bytes payload(topk_bytes(x.size()));
  std::vector<float> scratch(x.size());
  encode_topk(payload.data(), x.data(), x.size(), x.size(), scratch.data());
  const std::vector<Entry> sent = entries(payload, x.size());
  for (uint32_t i = 0; i < x.size(); i++) {
    EXPECT_EQ(sent[i].index, i);
    EXPECT_EQ(sent[i].value, x[i]);
  }
  EXPECT_THROW(encode_topk(payload.data(), x.data(), x.size(), x.size() + 1, scratch.data()),
               std::invalid_argument);
}

TEST(TopK, AddAccumulates) {
  const std::vector<float> x = random_values(50, 1.0f, 22);
  constexpr uint64_t kK = 6;
  Bytes payload(topk_bytes(kK));
  std::vector<float> scratch(x.size());
  encode_topk(payload.data(), x.data(), x.size(), kK, scratch.data());

  std::vector<float> dense(x.size(), 0.0f);
  add_topk(dense.data(), payload.data(), kK, x.size());
  add_topk(dense.data(), payload.data(), kK, x.size());
  std::vector<float> expected(x.size(), 0.0f);
  for (const Entry& e : entries(payload, kK)) expected[e.index] = 2 * x[e.index];
  EXPECT_EQ(dense, expected);
}

TEST(TopK, BadIndexThrows) {
  Bytes payload(topk_bytes(2));
  const uint32_t indices[2] = {1, 4};  // the second is past n = 4
  const float value = 1.0f;
  for (int j = 0; j < 2; j++) {
    std::memcpy(payload.data() + 8 * j, &indices[j], 4);
    std::memcpy(payload.data() + 8 * j + 4, &value, 4);
  }
  std::vector<float> dense(4, 0.0f);
  EXPECT_THROW(add_topk(dense.data(), payload.data(), 2, 4), std::invalid_argument);
  EXPECT_EQ(dense, std::vector<float>(4, 0.0f));  // checked before anything is added
}

// The residual is x + old residual with the sent entries zeroed: together, sent and
// kept are exactly the input, bit for bit.
TEST(TopKFeedback, ResidualHoldsTheUnsentEntries) {
  constexpr uint64_t kN = 40;
  constexpr uint64_t kK = 5;
  const std::vector<float> g = random_values(kN, 1.0f, 23);
  std::vector<float> residual = random_values(kN, 1.0f, 24);
  std::vector<float> input(kN);
  for (uint64_t i = 0; i < kN; i++) input[i] = g[i] + residual[i];

  std::vector<float> x = g;
  Bytes payload(topk_bytes(kK));
  std::vector<float> scratch(kN);
  encode_topk_with_feedback(payload.data(), x.data(), residual.data(), kN, kK, scratch.data());

  EXPECT_EQ(x, input);
  std::vector<float> sent(kN, 0.0f);
  std::vector<bool> was_sent(kN, false);
  for (const Entry& e : entries(payload, kK)) {
    sent[e.index] = e.value;
    was_sent[e.index] = true;
  }
  for (uint64_t i = 0; i < kN; i++) {
    EXPECT_EQ(residual[i], was_sent[i] ? 0.0f : input[i]) << "element " << i;
    EXPECT_EQ(sent[i] + residual[i], input[i]) << "element " << i;
  }
}

// Sends the constant input g for `steps` steps and counts how often each coordinate
// was sent.
std::vector<int> times_sent(const std::vector<float>& g, uint64_t k, int steps, bool feedback) {
  const uint64_t n = g.size();
  std::vector<float> residual(n, 0.0f);
  std::vector<float> scratch(n);
  Bytes payload(topk_bytes(k));
  std::vector<int> count(n, 0);
  for (int step = 0; step < steps; step++) {
    std::vector<float> x = g;
    encode_topk_with_feedback(payload.data(), x.data(), feedback ? residual.data() : nullptr, n, k,
                              scratch.data());
    for (const Entry& e : entries(payload, k)) count[e.index]++;
  }
  return count;
}

// An unsent coordinate keeps growing in the residual until it is among the k largest,
// so with feedback every one is sent; without it only the k largest ever are.
TEST(TopKFeedback, EveryCoordinateIsEventuallySent) {
  constexpr uint64_t kN = 64;
  constexpr uint64_t kK = 4;
  std::vector<float> g = random_values(kN, 1.0f, 25);
  for (float& v : g) v += std::copysign(0.05f, v);  // no coordinate is (nearly) zero

  const std::vector<int> with = times_sent(g, kK, 300, true);
  for (uint64_t i = 0; i < kN; i++) EXPECT_GT(with[i], 0) << "coordinate " << i;

  const std::vector<int> without = times_sent(g, kK, 300, false);
  EXPECT_EQ(std::count_if(without.begin(), without.end(), [](int c) { return c > 0; }), kK);
}

}  // namespace
}  // namespace memfront
