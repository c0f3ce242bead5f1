// Number formats on the GPU, bit for bit those of kernels/quantize.cpp (row-wise
// formats of saved activations) and kernels/compress.cpp (blockwise formats of
// the wire): the same rounding written with the same operations. Division,
// rintf (round half to even) and ldexpf are exact or correctly rounded on the
// GPU as on the host, and every product that is later added to is rounded on
// its own (__fmul_rn), where nvcc would otherwise fuse it into an FMA.
//
// One difference cannot be avoided: the GPU writes the canonical NaN
// (0x7FFFFFFF) where the host propagates its operand's NaN bits, so a decoded
// NaN is NaN on both but not the same bits.
#include <stdexcept>
#include <string>

#include "core/closed_forms.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/launchers.h"

namespace memfront::cuda {

namespace {

// ---------------------------------------------------------------------------
// Scalar conversions (kernels/quantize.cpp)
// ---------------------------------------------------------------------------

// Round to nearest even; a NaN keeps its quiet bit set.
__device__ uint16_t float_to_bf16(float x) {
  const uint32_t bits = __float_as_uint(x);
  if (isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

__device__ float bf16_to_float(uint16_t code) { return __uint_as_float(static_cast<uint32_t>(code) << 16); }

constexpr uint8_t kFp8Nan = 0x7F;
constexpr uint8_t kFp8Max = 0x7E;  // 448
constexpr float kFp8MaxValue = 448.0f;
constexpr float kInt8Limit = 127.0f;
constexpr float kInt4Limit = 7.0f;

// fp8 e4m3 (no infinities, saturating): see float_to_fp8e4m3 in kernels/quantize.cpp.
__device__ uint8_t float_to_fp8e4m3(float x) {
  if (isnan(x)) return kFp8Nan;
  const uint8_t sign = signbit(x) ? 0x80 : 0x00;
  const float a = fabsf(x);
  if (a >= kFp8MaxValue) return sign | kFp8Max;
  if (a < 0x1p-6f) return sign | static_cast<uint8_t>(rintf(a * 0x1p9f));  // subnormal steps of 2^-9
  const int u = ilogbf(a);
  const int q = static_cast<int>(rintf(ldexpf(a, 3 - u)));  // mantissa * 8 in [8, 16]
  return sign | static_cast<uint8_t>(8 * (u + 6) + q);
}

__device__ float fp8e4m3_to_float(uint8_t bits) {
  const int exponent = (bits >> 3) & 0xF;
  const int mantissa = bits & 0x7;
  if (exponent == 15 && mantissa == 7) return __uint_as_float(0x7FC00000u);  // the host's nanf("")
  const float magnitude = exponent == 0 ? ldexpf(static_cast<float>(mantissa), -9)
                                        : ldexpf(static_cast<float>(8 + mantissa), exponent - 10);
  return (bits & 0x80) != 0 ? -magnitude : magnitude;
}

// Symmetric integer code of x on the grid scale * {-limit..limit}: round half to even,
// saturated; NaN and a zero scale give 0 (kernels/compress.cpp symmetric_code; the
// row-wise int8 code is the same with the zero scale handled by its caller).
__device__ int symmetric_code(float x, float scale, float limit) {
  const float scaled = scale == 0.0f ? 0.0f : x / scale;
  if (isnan(scaled)) return 0;
  const float clamped = scaled < -limit ? -limit : (scaled > limit ? limit : scaled);
  return static_cast<int>(rintf(clamped));
}

// ---------------------------------------------------------------------------
// Row-wise formats: one warp per row for the scaled ones
// ---------------------------------------------------------------------------

__global__ void bf16_encode_kernel(uint16_t* codes, const float* src, uint64_t n) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) codes[i] = float_to_bf16(src[i]);
}

__global__ void bf16_decode_kernel(float* dst, const uint16_t* codes, uint64_t n) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) dst[i] = bf16_to_float(codes[i]);
}

// Largest |x| of a row with NaNs skipped (fmaxf ignores a NaN operand, as std::max
// does in the CPU's loop); a maximum is exact in any order.
__device__ float warp_row_amax(const float* row, uint64_t cols) {
  float amax = 0.0f;
  for (uint64_t c = lane_id(); c < cols; c += kWarpSize) amax = fmaxf(amax, fabsf(row[c]));
  return warp_reduce(amax, Max{});
}

// codes (rows, cols) bytes, scales (rows): scale = amax / 448, code = fp8(x / scale),
// 0 for a zero scale.
__global__ void fp8_rows_encode_kernel(uint8_t* codes, float* scales, const float* src, uint64_t rows, uint64_t cols) {
  const uint64_t r = global_warp();
  if (r >= rows) return;
  const float* row = src + r * cols;
  const float scale = warp_row_amax(row, cols) / kFp8MaxValue;
  if (lane_id() == 0) scales[r] = scale;
  for (uint64_t c = lane_id(); c < cols; c += kWarpSize) {
    codes[r * cols + c] = float_to_fp8e4m3(scale == 0.0f ? 0.0f : row[c] / scale);
  }
}

// codes (rows, cols) int8, scales (rows): scale = amax / 127; a zero row has codes 0.
__global__ void int8_rows_encode_kernel(int8_t* codes, float* scales, const float* src, uint64_t rows, uint64_t cols) {
  const uint64_t r = global_warp();
  if (r >= rows) return;
  const float* row = src + r * cols;
  const float scale = warp_row_amax(row, cols) / kInt8Limit;
  if (lane_id() == 0) scales[r] = scale;
  for (uint64_t c = lane_id(); c < cols; c += kWarpSize) {
    codes[r * cols + c] = static_cast<int8_t>(symmetric_code(row[c], scale, kInt8Limit));
  }
}

__global__ void fp8_rows_decode_kernel(float* dst, const uint8_t* codes, const float* scales, uint64_t rows,
                                       uint64_t cols) {
  const uint64_t n = rows * cols;
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) {
    dst[i] = fp8e4m3_to_float(codes[i]) * scales[i / cols];
  }
}

__global__ void int8_rows_decode_kernel(float* dst, const int8_t* codes, const float* scales, uint64_t rows,
                                        uint64_t cols) {
  const uint64_t n = rows * cols;
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) {
    dst[i] = static_cast<float>(codes[i]) * scales[i / cols];
  }
}

[[noreturn]] void unsupported_row_format(DType format) {
  throw std::invalid_argument("row quantization does not support format " + std::string(to_string(format)));
}

}  // namespace

void quantize_rows(cudaStream_t stream, void* codes, float* scales, const float* src, uint64_t rows, uint64_t cols,
                   DType format) {
  if (format == DType::int4) unsupported_row_format(format);
  const uint64_t n = rows * cols;
  if (n == 0) return;
  switch (format) {
    case DType::fp32:
      MEMFRONT_CUDA_CHECK(cudaMemcpyAsync(codes, src, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
      return;
    case DType::bf16:
      bf16_encode_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(static_cast<uint16_t*>(codes), src, n);
      check_launch("bf16_encode");
      return;
    case DType::fp8e4m3:
      fp8_rows_encode_kernel<<<warp_per_row_blocks(rows), kThreads, 0, stream>>>(static_cast<uint8_t*>(codes), scales,
                                                                                 src, rows, cols);
      check_launch("fp8_rows_encode");
      return;
    case DType::int8:
      int8_rows_encode_kernel<<<warp_per_row_blocks(rows), kThreads, 0, stream>>>(static_cast<int8_t*>(codes), scales,
                                                                                  src, rows, cols);
      check_launch("int8_rows_encode");
      return;
    case DType::int4:
      break;
  }
}

void dequantize_rows(cudaStream_t stream, float* dst, const void* codes, const float* scales, uint64_t rows,
                     uint64_t cols, DType format) {
  if (format == DType::int4) unsupported_row_format(format);
  const uint64_t n = rows * cols;
  if (n == 0) return;
  switch (format) {
    case DType::fp32:
      MEMFRONT_CUDA_CHECK(cudaMemcpyAsync(dst, codes, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
      return;
    case DType::bf16:
      bf16_decode_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(dst, static_cast<const uint16_t*>(codes), n);
      check_launch("bf16_decode");
      return;
    case DType::fp8e4m3:
      fp8_rows_decode_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(
          dst, static_cast<const uint8_t*>(codes), scales, rows, cols);
      check_launch("fp8_rows_decode");
      return;
    case DType::int8:
      int8_rows_decode_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(
          dst, static_cast<const int8_t*>(codes), scales, rows, cols);
      check_launch("int8_rows_decode");
      return;
    case DType::int4:
      break;
  }
}

// ---------------------------------------------------------------------------
// Blockwise formats (kernels/compress.h): payload = [block scales (fp32)] codes,
// at any byte alignment. Scales first (one warp per block), then codes (one
// thread per element; for int4 one thread per byte, since neighbouring elements
// share a byte even across block boundaries).
// ---------------------------------------------------------------------------

namespace {

struct MaxBits {
  __device__ uint32_t operator()(uint32_t a, uint32_t b) const { return a > b ? a : b; }
};

// scale of block b = amax(block) / limit, amax over the bit patterns with NaNs as 0
// and infinity kept (kernels/compress.cpp block_amax), stored at payload + 4b.
__global__ void block_scales_kernel(unsigned char* payload, const float* x, uint64_t n, int block, float limit) {
  const uint64_t b = global_warp();
  const uint64_t begin = b * block;
  if (begin >= n) return;
  const uint64_t end = begin + block < n ? begin + block : n;
  constexpr uint32_t kInfinityBits = 0x7F800000u;
  uint32_t amax_bits = 0;
  for (uint64_t i = begin + lane_id(); i < end; i += kWarpSize) {
    const uint32_t magnitude = __float_as_uint(x[i]) & 0x7FFFFFFFu;
    amax_bits = MaxBits{}(amax_bits, magnitude > kInfinityBits ? 0u : magnitude);
  }
  amax_bits = warp_reduce(amax_bits, MaxBits{});
  if (lane_id() == 0) store_float(payload + b * sizeof(float), __uint_as_float(amax_bits) / limit);
}

__device__ float block_scale(const unsigned char* payload, uint64_t i, int block) {
  return load_float(payload + (i / block) * sizeof(float));
}

__global__ void bf16_payload_encode_kernel(unsigned char* payload, const float* x, uint64_t n) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) store_u16(payload + 2 * i, float_to_bf16(x[i]));
}

// codes (n bytes) after the scales.
__global__ void int8_payload_encode_kernel(const unsigned char* payload, unsigned char* codes, const float* x, uint64_t n,
                                           int block) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) {
    codes[i] = static_cast<uint8_t>(static_cast<int8_t>(symmetric_code(x[i], block_scale(payload, i, block), kInt8Limit)));
  }
}

// codes ((n+1)/2 bytes) after the scales: element 2j in the low nibble of byte j,
// 2j+1 in the high one (0 past the end), two's-complement nibbles.
__global__ void int4_payload_encode_kernel(const unsigned char* payload, unsigned char* codes, const float* x, uint64_t n,
                                           int block) {
  const uint64_t bytes = (n + 1) / 2;
  for (uint64_t j = global_thread(); j < bytes; j += global_thread_count()) {
    const uint64_t low = 2 * j;
    const uint64_t high = low + 1;
    const int low_code = symmetric_code(x[low], block_scale(payload, low, block), kInt4Limit);
    const int high_code = high < n ? symmetric_code(x[high], block_scale(payload, high, block), kInt4Limit) : 0;
    codes[j] = static_cast<uint8_t>((low_code & 0x0F) | (high_code & 0x0F) << 4);
  }
}

__device__ void deliver(float& out, float value, Delivery delivery) {
  if (delivery == Delivery::add) {
    out += value;
  } else {
    out = value;
  }
}

__global__ void fp32_payload_decode_kernel(float* x, const unsigned char* payload, uint64_t n, Delivery delivery) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) deliver(x[i], load_float(payload + 4 * i), delivery);
}

__global__ void bf16_payload_decode_kernel(float* x, const unsigned char* payload, uint64_t n, Delivery delivery) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) {
    deliver(x[i], bf16_to_float(load_u16(payload + 2 * i)), delivery);
  }
}

__global__ void int8_payload_decode_kernel(float* x, const unsigned char* payload, const unsigned char* codes, uint64_t n,
                                           int block, Delivery delivery) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) {
    const int code = static_cast<int8_t>(codes[i]);
    deliver(x[i], __fmul_rn(static_cast<float>(code), block_scale(payload, i, block)), delivery);
  }
}

__global__ void int4_payload_decode_kernel(float* x, const unsigned char* payload, const unsigned char* codes, uint64_t n,
                                           int block, Delivery delivery) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) {
    const uint8_t byte = codes[i / 2];
    // Sign-extend the nibble: move it to the top of an int8 and shift back.
    const int code = i % 2 == 0 ? static_cast<int8_t>(static_cast<uint8_t>(byte << 4)) >> 4 : static_cast<int8_t>(byte) >> 4;
    deliver(x[i], __fmul_rn(static_cast<float>(code), block_scale(payload, i, block)), delivery);
  }
}

// residual (n) = x - residual, where residual holds the decoded payload: what the
// receivers will not see.
__global__ void rounding_error_kernel(float* residual, const float* x, uint64_t n) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) residual[i] = x[i] - residual[i];
}

// The payload's codes, after its block scales (core/closed_forms.h).
uint64_t scale_bytes(uint64_t n, int block) { return blockwise_block_count(n, block) * sizeof(float); }

}  // namespace

void encode_blockwise(cudaStream_t stream, void* payload, const float* x, uint64_t n, DType format, int block) {
  check_blockwise_format(format, block);
  if (n == 0) return;
  auto* bytes = static_cast<unsigned char*>(payload);
  switch (format) {
    case DType::fp32:
      MEMFRONT_CUDA_CHECK(cudaMemcpyAsync(bytes, x, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
      return;
    case DType::bf16:
      bf16_payload_encode_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(bytes, x, n);
      check_launch("bf16_payload_encode");
      return;
    case DType::int8:
      block_scales_kernel<<<warp_per_row_blocks(blockwise_block_count(n, block)), kThreads, 0, stream>>>(
          bytes, x, n, block, kInt8Limit);
      check_launch("block_scales");
      int8_payload_encode_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(bytes, bytes + scale_bytes(n, block), x, n,
                                                                                 block);
      check_launch("int8_payload_encode");
      return;
    case DType::int4:
      block_scales_kernel<<<warp_per_row_blocks(blockwise_block_count(n, block)), kThreads, 0, stream>>>(
          bytes, x, n, block, kInt4Limit);
      check_launch("block_scales");
      int4_payload_encode_kernel<<<elementwise_blocks((n + 1) / 2), kThreads, 0, stream>>>(
          bytes, bytes + scale_bytes(n, block), x, n, block);
      check_launch("int4_payload_encode");
      return;
    case DType::fp8e4m3:
      return;  // rejected by check_blockwise_format
  }
}

void decode_blockwise(cudaStream_t stream, float* x, const void* payload, uint64_t n, DType format, int block,
                      Delivery delivery) {
  check_blockwise_format(format, block);
  if (n == 0) return;
  const auto* bytes = static_cast<const unsigned char*>(payload);
  switch (format) {
    case DType::fp32:
      if (delivery == Delivery::overwrite) {
        MEMFRONT_CUDA_CHECK(cudaMemcpyAsync(x, bytes, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
        return;
      }
      fp32_payload_decode_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(x, bytes, n, delivery);
      check_launch("fp32_payload_decode");
      return;
    case DType::bf16:
      bf16_payload_decode_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(x, bytes, n, delivery);
      check_launch("bf16_payload_decode");
      return;
    case DType::int8:
      int8_payload_decode_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(x, bytes, bytes + scale_bytes(n, block), n,
                                                                                 block, delivery);
      check_launch("int8_payload_decode");
      return;
    case DType::int4:
      int4_payload_decode_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(x, bytes, bytes + scale_bytes(n, block), n,
                                                                                 block, delivery);
      check_launch("int4_payload_decode");
      return;
    case DType::fp8e4m3:
      return;  // rejected by check_blockwise_format
  }
}

// x += residual; encode x; residual = x - decode(payload) (kernels/compress.cpp).
void encode_blockwise_with_feedback(cudaStream_t stream, void* payload, float* x, float* residual, uint64_t n,
                                    DType format, int block) {
  if (residual == nullptr) {
    encode_blockwise(stream, payload, x, n, format, block);
    return;
  }
  check_blockwise_format(format, block);
  add(stream, x, residual, n);
  encode_blockwise(stream, payload, x, n, format, block);
  decode_blockwise(stream, residual, payload, n, format, block, Delivery::overwrite);
  if (n == 0) return;
  rounding_error_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(residual, x, n);
  check_launch("rounding_error");
}

}  // namespace memfront::cuda
