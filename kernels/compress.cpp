#include "kernels/compress.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>

#include "kernels/quantize.h"

namespace memfront {

// ---------------------------------------------------------------------------
// Payload access. A payload is a byte buffer at any alignment (the encoders may
// write into the middle of a larger send buffer), so every float and index in
// it is read and written with memcpy, which compiles to a plain unaligned move.
// ---------------------------------------------------------------------------

namespace {

float load_float(const unsigned char* at) {
  float value;
  std::memcpy(&value, at, sizeof value);
  return value;
}

void store_float(unsigned char* at, float value) { std::memcpy(at, &value, sizeof value); }

uint32_t load_index(const unsigned char* at) {
  uint32_t index;
  std::memcpy(&index, at, sizeof index);
  return index;
}

void store_index(unsigned char* at, uint32_t index) { std::memcpy(at, &index, sizeof index); }

}  // namespace

// ---------------------------------------------------------------------------
// Blockwise quantization
// ---------------------------------------------------------------------------

namespace {

constexpr float kInt8Limit = 127.0f;
constexpr float kInt4Limit = 7.0f;

// The elements [begin, end) of one block; the last block may be shorter.
struct BlockRange {
  uint64_t begin;
  uint64_t end;
};

BlockRange block_range(uint64_t b, uint64_t n, int block) {
  const uint64_t begin = b * static_cast<uint64_t>(block);
  return {begin, std::min(begin + static_cast<uint64_t>(block), n)};
}

// Largest |x| of a block; NaNs are skipped, so a NaN costs its own code but not the
// block's scale. Computed on the bit patterns: with the sign bit cleared, floats order
// like their bits read as integers, and NaNs are exactly the patterns above
// infinity's. GCC vectorizes this integer max, but not a float max that must keep
// NaN and signed-zero semantics.
float block_amax(const float* x, BlockRange range) {
  constexpr int32_t kInfinityBits = 0x7F800000;
  int32_t amax_bits = 0;
  for (uint64_t i = range.begin; i < range.end; i++) {
    const auto magnitude_bits = static_cast<int32_t>(std::bit_cast<uint32_t>(x[i]) & 0x7FFFFFFFu);
    amax_bits = std::max(amax_bits, magnitude_bits > kInfinityBits ? 0 : magnitude_bits);
  }
  return std::bit_cast<float>(amax_bits);
}

// Symmetric integer code of x on the grid scale * {-limit, ..., limit}: x / scale
// rounded half to even and saturated; NaN has no code and becomes 0. A zero scale
// (a block of zeros, or one so small that amax / limit underflows) gives code 0,
// where x / 0 would be NaN or infinite.
// Written without branches or libm calls so that the block loops are SIMD: adding
// and removing 1.5 * 2^23 rounds a float of magnitude below 2^22 to the nearest
// integer, ties to even (the default rounding mode).
int symmetric_code(float x, float scale, float limit) {
  const float scaled = scale == 0.0f ? 0.0f : x / scale;
  const float clamped = std::clamp(scaled, -limit, limit);  // NaN stays NaN
  const float finite = clamped == clamped ? clamped : 0.0f;
  const float rounded = (finite + 12582912.0f) - 12582912.0f;
  return static_cast<int>(rounded);
}

// int4 codes are two's-complement nibbles: element 2i in the low nibble of byte i,
// element 2i+1 in the high one.
uint8_t low_nibble(int code) { return static_cast<uint8_t>(code & 0x0F); }
uint8_t high_nibble(int code) { return static_cast<uint8_t>((code & 0x0F) << 4); }
// Sign-extend by moving the nibble to the top of an int8 and shifting back (arithmetic).
int low_code(uint8_t byte) { return static_cast<int8_t>(static_cast<uint8_t>(byte << 4)) >> 4; }
int high_code(uint8_t byte) { return static_cast<int8_t>(byte) >> 4; }

void encode_int8(unsigned char* payload, const float* x, uint64_t n, int block) {
  const uint64_t blocks = blockwise_block_count(n, block);
  unsigned char* codes = payload + blocks * sizeof(float);
  for (uint64_t b = 0; b < blocks; b++) {
    const BlockRange range = block_range(b, n, block);
    const float scale = block_amax(x, range) / kInt8Limit;
    store_float(payload + b * sizeof(float), scale);
    for (uint64_t i = range.begin; i < range.end; i++) {
      codes[i] = static_cast<uint8_t>(static_cast<int8_t>(symmetric_code(x[i], scale, kInt8Limit)));
    }
  }
}

// Packing is over the element index of the whole tensor, so with an odd block size a
// block may begin in the high nibble of a byte whose low nibble ends the previous
// block. Each block therefore writes an odd first element into that shared byte, then
// whole bytes, then a leftover last element alone (its high nibble 0: padding, or the
// next block's first element, added there).
void encode_int4(unsigned char* payload, const float* x, uint64_t n, int block) {
  const uint64_t blocks = blockwise_block_count(n, block);
  unsigned char* codes = payload + blocks * sizeof(float);
  for (uint64_t b = 0; b < blocks; b++) {
    const BlockRange range = block_range(b, n, block);
    const float scale = block_amax(x, range) / kInt4Limit;
    store_float(payload + b * sizeof(float), scale);
    uint64_t i = range.begin;
    if (i % 2 == 1) {
      const uint8_t high = high_nibble(symmetric_code(x[i], scale, kInt4Limit));
      codes[i / 2] = static_cast<uint8_t>(codes[i / 2] | high);
      i++;
    }
    // Counted in bytes from i (now even) so that GCC sees the two interleaved streams.
    const float* pairs = x + i;
    unsigned char* pair_codes = codes + i / 2;
    const uint64_t pair_count = (range.end - i) / 2;
    for (uint64_t p = 0; p < pair_count; p++) {
      pair_codes[p] = static_cast<uint8_t>(low_nibble(symmetric_code(pairs[2 * p], scale, kInt4Limit)) |
                                           high_nibble(symmetric_code(pairs[2 * p + 1], scale, kInt4Limit)));
    }
    i += 2 * pair_count;
    if (i < range.end) codes[i / 2] = low_nibble(symmetric_code(x[i], scale, kInt4Limit));
  }
}

// decode_blockwise and add_decoded_blockwise differ only in what they do with each
// decoded value: overwrite the output, or add to it.
enum class Delivery { overwrite, add };

template <Delivery kDelivery>
void deliver(float& out, float value) {
  if constexpr (kDelivery == Delivery::add) {
    out += value;
  } else {
    out = value;
  }
}

template <Delivery kDelivery>
void decode_into(float* out, const void* payload, uint64_t n, DType format, int block) {
  check_blockwise_format(format, block);
  const auto* bytes = static_cast<const unsigned char*>(payload);
  switch (format) {
    case DType::fp32:
      for (uint64_t i = 0; i < n; i++) deliver<kDelivery>(out[i], load_float(bytes + i * sizeof(float)));
      return;
    case DType::bf16:
      for (uint64_t i = 0; i < n; i++) {
        uint16_t code;
        std::memcpy(&code, bytes + i * sizeof code, sizeof code);
        deliver<kDelivery>(out[i], bf16_to_float(code));
      }
      return;
    case DType::int8: {
      const uint64_t blocks = blockwise_block_count(n, block);
      const unsigned char* codes = bytes + blocks * sizeof(float);
      for (uint64_t b = 0; b < blocks; b++) {
        const BlockRange range = block_range(b, n, block);
        const float scale = load_float(bytes + b * sizeof(float));
        for (uint64_t i = range.begin; i < range.end; i++) {
          deliver<kDelivery>(out[i], static_cast<float>(static_cast<int8_t>(codes[i])) * scale);
        }
      }
      return;
    }
    case DType::int4: {
      // The same first element / whole bytes / last element split as encode_int4.
      const uint64_t blocks = blockwise_block_count(n, block);
      const unsigned char* codes = bytes + blocks * sizeof(float);
      for (uint64_t b = 0; b < blocks; b++) {
        const BlockRange range = block_range(b, n, block);
        const float scale = load_float(bytes + b * sizeof(float));
        uint64_t i = range.begin;
        if (i % 2 == 1) {
          deliver<kDelivery>(out[i], static_cast<float>(high_code(codes[i / 2])) * scale);
          i++;
        }
        float* pairs = out + i;
        const unsigned char* pair_codes = codes + i / 2;
        const uint64_t pair_count = (range.end - i) / 2;
        for (uint64_t p = 0; p < pair_count; p++) {
          deliver<kDelivery>(pairs[2 * p], static_cast<float>(low_code(pair_codes[p])) * scale);
          deliver<kDelivery>(pairs[2 * p + 1], static_cast<float>(high_code(pair_codes[p])) * scale);
        }
        i += 2 * pair_count;
        if (i < range.end) {
          deliver<kDelivery>(out[i], static_cast<float>(low_code(codes[i / 2])) * scale);
        }
      }
      return;
    }
    case DType::fp8e4m3:
      break;  // rejected by check_blockwise_format
  }
}

}  // namespace

void encode_blockwise(void* payload, const float* x, uint64_t n, DType format, int block) {
  check_blockwise_format(format, block);
  auto* bytes = static_cast<unsigned char*>(payload);
  switch (format) {
    case DType::fp32:
      std::memcpy(bytes, x, n * sizeof(float));
      return;
    case DType::bf16:
      for (uint64_t i = 0; i < n; i++) {
        const uint16_t code = float_to_bf16(x[i]);
        std::memcpy(bytes + i * sizeof code, &code, sizeof code);
      }
      return;
    case DType::int8:
      encode_int8(bytes, x, n, block);
      return;
    case DType::int4:
      encode_int4(bytes, x, n, block);
      return;
    case DType::fp8e4m3:
      return;  // rejected by check_blockwise_format
  }
}

void decode_blockwise(float* x, const void* payload, uint64_t n, DType format, int block) {
  decode_into<Delivery::overwrite>(x, payload, n, format, block);
}

void add_decoded_blockwise(float* x, const void* payload, uint64_t n, DType format, int block) {
  decode_into<Delivery::add>(x, payload, n, format, block);
}

// Why error feedback works: the rounding error of every step is kept and sent later,
// so nothing is lost, only delayed. Over T steps the decoded values sum to the inputs'
// sum minus the last residual, and the residual stays within one step's rounding
// error, so the time-averaged error shrinks like 1/T. Without it, an input that rounds
// the same way every step (say 0.3 of a grid step, always rounded to 0) is biased forever.
void encode_blockwise_with_feedback(void* payload, float* x, float* residual, uint64_t n, DType format,
                                    int block) {
  if (residual == nullptr) {
    encode_blockwise(payload, x, n, format, block);
    return;
  }
  for (uint64_t i = 0; i < n; i++) x[i] += residual[i];
  encode_blockwise(payload, x, n, format, block);
  decode_blockwise(residual, payload, n, format, block);  // what the receivers will see ...
  for (uint64_t i = 0; i < n; i++) residual[i] = x[i] - residual[i];  // ... and what they will not
}

// ---------------------------------------------------------------------------
// Top-K sparsification
// ---------------------------------------------------------------------------

namespace {

// The key Top-K ranks by: |x|, with NaN below every number (-1 < 0 <= |x|) so that
// it is never preferred and the ordering std::nth_element needs stays strict.
float topk_rank(float x) { return std::isnan(x) ? -1.0f : std::fabs(x); }

void check_topk_arguments(uint64_t n, uint64_t k) {
  if (k > n) {
    throw std::invalid_argument("Top-K of " + std::to_string(n) + " entries cannot send " +
                                std::to_string(k));
  }
  // Indices travel as uint32: the largest, n - 1, must fit.
  if (n > (uint64_t{1} << 32)) {
    throw std::invalid_argument("Top-K indices are 32-bit; " + std::to_string(n) + " entries are too many");
  }
}

}  // namespace

void encode_topk(void* payload, const float* x, uint64_t n, uint64_t k, float* scratch) {
  check_topk_arguments(n, k);
  if (k == 0) return;
  auto* bytes = static_cast<unsigned char*>(payload);

  // The k-th largest rank is the threshold: everything above it is sent, and of the
  // entries equal to it only as many as fill k, lowest indices first. After
  // nth_element, scratch[0, k-1) holds the k-1 ranks at or above the threshold, so
  // counting those strictly above tells how many ties are taken.
  for (uint64_t i = 0; i < n; i++) scratch[i] = topk_rank(x[i]);
  std::nth_element(scratch, scratch + (k - 1), scratch + n, std::greater<float>());
  const float threshold = scratch[k - 1];
  const auto above = static_cast<uint64_t>(
      std::count_if(scratch, scratch + (k - 1), [threshold](float rank) { return rank > threshold; }));
  uint64_t ties_left = k - above;

  // One ascending pass writes the entries in index order.
  uint64_t sent = 0;
  for (uint64_t i = 0; i < n && sent < k; i++) {
    const float rank = topk_rank(x[i]);
    const bool tie_taken = rank == threshold && ties_left > 0;
    if (rank > threshold || tie_taken) {
      if (tie_taken) ties_left--;
      store_index(bytes + sent * kTopkEntryBytes, static_cast<uint32_t>(i));
      store_float(bytes + sent * kTopkEntryBytes + sizeof(uint32_t), x[i]);
      sent++;
    }
  }
}

void add_topk(float* dense, const void* payload, uint64_t k, uint64_t n) {
  const auto* bytes = static_cast<const unsigned char*>(payload);
  // Check every index before adding any, so that a corrupt payload leaves dense as it was.
  for (uint64_t j = 0; j < k; j++) {
    const uint32_t index = load_index(bytes + j * kTopkEntryBytes);
    if (index >= n) {
      throw std::invalid_argument("Top-K payload entry " + std::to_string(j) + " has index " +
                                  std::to_string(index) + ", past the " + std::to_string(n) + " entries");
    }
  }
  for (uint64_t j = 0; j < k; j++) {
    const unsigned char* entry = bytes + j * kTopkEntryBytes;
    dense[load_index(entry)] += load_float(entry + sizeof(uint32_t));
  }
}

// Error feedback for Top-K: an entry not sent is not dropped but accumulates in the
// residual until it is large enough to be among the k largest, so every coordinate's
// contribution is sent eventually, in full.
void encode_topk_with_feedback(void* payload, float* x, float* residual, uint64_t n, uint64_t k,
                               float* scratch) {
  if (residual == nullptr) {
    encode_topk(payload, x, n, k, scratch);
    return;
  }
  for (uint64_t i = 0; i < n; i++) x[i] += residual[i];
  encode_topk(payload, x, n, k, scratch);
  std::memcpy(residual, x, n * sizeof(float));
  const auto* bytes = static_cast<const unsigned char*>(payload);
  for (uint64_t j = 0; j < k; j++) residual[load_index(bytes + j * kTopkEntryBytes)] = 0.0f;
}

}  // namespace memfront
