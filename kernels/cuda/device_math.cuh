#pragma once
// Device-side helpers shared by the kernels of the CUDA backend: launch shapes,
// warp and block reductions, unaligned payload access.
//
// Every reduction here combines its values in an order fixed by the launch
// shape alone, so the same inputs give the same bits on every run.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace memfront::cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullWarp = 0xFFFFFFFFu;
// Threads per block of the elementwise and warp-per-row kernels.
constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / kWarpSize;
// Elementwise kernels loop over their items grid-stride, so a bounded grid covers any n.
constexpr uint64_t kMaxBlocks = uint64_t{1} << 20;

inline unsigned elementwise_blocks(uint64_t n) {
  return static_cast<unsigned>(std::clamp<uint64_t>((n + kThreads - 1) / kThreads, 1, kMaxBlocks));
}

// Blocks of kThreads that give each of `rows` rows one warp.
inline unsigned warp_per_row_blocks(uint64_t rows) {
  return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

__device__ inline uint64_t global_thread() { return blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; }
__device__ inline uint64_t global_thread_count() { return gridDim.x * uint64_t{blockDim.x}; }
__device__ inline uint64_t global_warp() { return global_thread() / kWarpSize; }
__device__ inline int lane_id() { return static_cast<int>(threadIdx.x % kWarpSize); }
// Bits of the lanes below this one, for ranking a lane among those of a ballot.
__device__ inline unsigned lanes_below() { return (1u << lane_id()) - 1u; }

struct Sum {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};

struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Butterfly over the warp: every lane ends with the same value (the two lanes of
// each exchange combine the same pair of values, and + and fmaxf commute).
template <class T, class Op>
__device__ T warp_reduce(T value, Op op) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value = op(value, __shfl_xor_sync(kFullWarp, value, offset));
  return value;
}

// Over the whole block (blockDim.x a multiple of 32); every thread gets the result.
// Every thread of the block must call it.
template <class T, class Op>
__device__ T block_reduce(T value, Op op, T identity) {
  __shared__ T warp_results[kWarpSize];
  const int warps = static_cast<int>(blockDim.x) / kWarpSize;
  value = warp_reduce(value, op);
  __syncthreads();  // a previous call may still be reading warp_results
  if (lane_id() == 0) warp_results[threadIdx.x / kWarpSize] = value;
  __syncthreads();
  return warp_reduce(lane_id() < warps ? warp_results[lane_id()] : identity, op);
}

// A payload is a byte buffer at any alignment (encoders may write into the
// middle of a send buffer), and the GPU faults on a misaligned float load, so
// payload words are assembled from bytes, little-endian as on the host.
__device__ inline uint32_t load_u32(const unsigned char* at) {
  return uint32_t{at[0]} | uint32_t{at[1]} << 8 | uint32_t{at[2]} << 16 | uint32_t{at[3]} << 24;
}
__device__ inline void store_u32(unsigned char* at, uint32_t word) {
  at[0] = static_cast<unsigned char>(word);
  at[1] = static_cast<unsigned char>(word >> 8);
  at[2] = static_cast<unsigned char>(word >> 16);
  at[3] = static_cast<unsigned char>(word >> 24);
}
__device__ inline float load_float(const unsigned char* at) { return __uint_as_float(load_u32(at)); }
__device__ inline void store_float(unsigned char* at, float value) { store_u32(at, __float_as_uint(value)); }
__device__ inline uint16_t load_u16(const unsigned char* at) {
  return static_cast<uint16_t>(at[0] | at[1] << 8);
}
__device__ inline void store_u16(unsigned char* at, uint16_t half) {
  at[0] = static_cast<unsigned char>(half);
  at[1] = static_cast<unsigned char>(half >> 8);
}

}  // namespace memfront::cuda
