// Gradient Top-K (kernels/compress.h) on the GPU with CUB radix sorts:
//   1. rank every entry by |x| (as order-preserving uint32 bits; NaN lowest),
//   2. sort (rank, index) pairs by rank, descending; the sort is stable, so of
//      equal magnitudes the lower index comes first, which is the CPU's tie rule,
//   3. sort the first k indices ascending, and write (index, value) pairs.
// The selection is therefore exactly the CPU's, bit for bit.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/launchers.h"

namespace memfront::cuda {

namespace {

constexpr uint64_t kEntryBytes = sizeof(uint32_t) + sizeof(float);
constexpr int kRankBits = 32;
constexpr unsigned long long kNoBadEntry = ~0ull;

// The scratch of n entries: the ranks and the indices, each with the second buffer
// of its radix sort, then CUB's temporary storage.
struct TopkScratch {
  uint32_t* ranks;
  uint32_t* ranks_alternate;
  uint32_t* indices;
  uint32_t* indices_alternate;
  void* sort_storage;
  size_t sort_storage_bytes;
};

uint64_t aligned_array_bytes(uint64_t n) {
  constexpr uint64_t kAlignment = 256;  // what cudaMalloc gives, so CUB's buffers start aligned too
  return (n * sizeof(uint32_t) + kAlignment - 1) / kAlignment * kAlignment;
}

// CUB's temporary storage for both sorts of up to n items (the second sorts k <= n).
size_t sort_storage_bytes(uint64_t n) {
  cub::DoubleBuffer<uint32_t> keys(nullptr, nullptr);
  cub::DoubleBuffer<uint32_t> values(nullptr, nullptr);
  size_t pair_bytes = 0;
  size_t key_bytes = 0;
  MEMFRONT_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(nullptr, pair_bytes, keys, values, n));
  MEMFRONT_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, key_bytes, keys, n));
  return std::max(pair_bytes, key_bytes);
}

TopkScratch topk_scratch(void* scratch, uint64_t n) {
  auto* base = static_cast<unsigned char*>(scratch);
  const uint64_t array_bytes = aligned_array_bytes(n);
  return {reinterpret_cast<uint32_t*>(base), reinterpret_cast<uint32_t*>(base + array_bytes),
          reinterpret_cast<uint32_t*>(base + 2 * array_bytes), reinterpret_cast<uint32_t*>(base + 3 * array_bytes),
          base + 4 * array_bytes, sort_storage_bytes(n)};
}

// ranks (n): the bits of |x| plus one, so that a NaN (rank 0) ranks below every
// number and -0 ties with +0 (kernels/compress.cpp topk_rank); indices (n) = 0..n-1.
__global__ void topk_ranks_kernel(uint32_t* ranks, uint32_t* indices, const float* x, uint64_t n) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) {
    const float value = x[i];
    ranks[i] = isnan(value) ? 0u : __float_as_uint(fabsf(value)) + 1u;
    indices[i] = static_cast<uint32_t>(i);
  }
}

// payload entry j (8 bytes, any alignment) = (chosen[j], x[chosen[j]]).
__global__ void topk_payload_kernel(unsigned char* payload, const uint32_t* chosen, const float* x, uint64_t k) {
  for (uint64_t j = global_thread(); j < k; j += global_thread_count()) {
    const uint32_t index = chosen[j];
    store_u32(payload + j * kEntryBytes, index);
    store_float(payload + j * kEntryBytes + sizeof(uint32_t), x[index]);
  }
}

// residual[chosen[j]] = 0: the sent entries leave the residual.
__global__ void zero_sent_kernel(float* residual, const uint32_t* chosen, uint64_t k) {
  for (uint64_t j = global_thread(); j < k; j += global_thread_count()) residual[chosen[j]] = 0.0f;
}

// bad_entry = the lowest j whose index is >= n (left at kNoBadEntry when none is).
__global__ void find_bad_entry_kernel(unsigned long long* bad_entry, const unsigned char* payload, uint64_t k,
                                      uint64_t n) {
  for (uint64_t j = global_thread(); j < k; j += global_thread_count()) {
    if (load_u32(payload + j * kEntryBytes) >= n) atomicMin(bad_entry, static_cast<unsigned long long>(j));
  }
}

// dense[index] += value for every entry, unless an entry was bad. An encoder's
// indices are distinct, so each add is the only one to its element; the atomic
// only keeps a payload with repeated indices (never produced here) correct.
__global__ void add_topk_kernel(float* dense, const unsigned char* payload, uint64_t k,
                                const unsigned long long* bad_entry) {
  if (*bad_entry != kNoBadEntry) return;
  for (uint64_t j = global_thread(); j < k; j += global_thread_count()) {
    const unsigned char* entry = payload + j * kEntryBytes;
    atomicAdd(dense + load_u32(entry), load_float(entry + sizeof(uint32_t)));
  }
}

void check_topk_arguments(uint64_t n, uint64_t k) {
  if (k > n) {
    throw std::invalid_argument("Top-K of " + std::to_string(n) + " entries cannot send " + std::to_string(k));
  }
  if (n > (uint64_t{1} << 32)) {
    throw std::invalid_argument("Top-K indices are 32-bit; " + std::to_string(n) + " entries are too many");
  }
}

}  // namespace

uint64_t topk_scratch_bytes(uint64_t n) { return 4 * aligned_array_bytes(n) + sort_storage_bytes(n); }

// x (n) += residual; payload = the Top-K of x; residual = x with the sent entries zeroed.
void encode_topk_with_feedback(cudaStream_t stream, void* payload, float* x, float* residual, uint64_t n, uint64_t k,
                               void* scratch) {
  check_topk_arguments(n, k);
  if (residual != nullptr) add(stream, x, residual, n);
  if (k > 0) {
    const TopkScratch s = topk_scratch(scratch, n);
    topk_ranks_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(s.ranks, s.indices, x, n);
    check_launch("topk_ranks");
    cub::DoubleBuffer<uint32_t> ranks(s.ranks, s.ranks_alternate);
    cub::DoubleBuffer<uint32_t> indices(s.indices, s.indices_alternate);
    size_t storage_bytes = s.sort_storage_bytes;
    MEMFRONT_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(s.sort_storage, storage_bytes, ranks, indices, n, 0,
                                                                  kRankBits, stream));
    // The first k sorted indices are the entries sent; the other index buffer is free.
    cub::DoubleBuffer<uint32_t> chosen(indices.Current(), indices.Alternate());
    storage_bytes = s.sort_storage_bytes;
    MEMFRONT_CUDA_CHECK(
        cub::DeviceRadixSort::SortKeys(s.sort_storage, storage_bytes, chosen, k, 0, kRankBits, stream));
    topk_payload_kernel<<<elementwise_blocks(k), kThreads, 0, stream>>>(static_cast<unsigned char*>(payload),
                                                                        chosen.Current(), x, k);
    check_launch("topk_payload");
    if (residual != nullptr) {
      MEMFRONT_CUDA_CHECK(cudaMemcpyAsync(residual, x, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
      zero_sent_kernel<<<elementwise_blocks(k), kThreads, 0, stream>>>(residual, chosen.Current(), k);
      check_launch("zero_sent");
    }
  } else if (residual != nullptr && n > 0) {
    MEMFRONT_CUDA_CHECK(cudaMemcpyAsync(residual, x, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  }
}

void add_topk(cudaStream_t stream, float* dense, const void* payload, uint64_t k, uint64_t n, uint64_t* bad_entry) {
  if (k == 0) return;
  const auto* bytes = static_cast<const unsigned char*>(payload);
  auto* bad = reinterpret_cast<unsigned long long*>(bad_entry);
  static_assert(sizeof(unsigned long long) == sizeof(uint64_t));
  MEMFRONT_CUDA_CHECK(cudaMemsetAsync(bad, 0xFF, sizeof *bad, stream));  // kNoBadEntry
  find_bad_entry_kernel<<<elementwise_blocks(k), kThreads, 0, stream>>>(bad, bytes, k, n);
  check_launch("find_bad_entry");
  add_topk_kernel<<<elementwise_blocks(k), kThreads, 0, stream>>>(dense, bytes, k, bad);
  check_launch("add_topk");
  unsigned long long first_bad = kNoBadEntry;
  MEMFRONT_CUDA_CHECK(cudaMemcpyAsync(&first_bad, bad, sizeof first_bad, cudaMemcpyDeviceToHost, stream));
  MEMFRONT_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (first_bad == kNoBadEntry) return;
  uint32_t index = 0;
  MEMFRONT_CUDA_CHECK(
      cudaMemcpyAsync(&index, bytes + first_bad * kEntryBytes, sizeof index, cudaMemcpyDeviceToHost, stream));
  MEMFRONT_CUDA_CHECK(cudaStreamSynchronize(stream));
  throw std::invalid_argument("Top-K payload entry " + std::to_string(first_bad) + " has index " +
                              std::to_string(index) + ", past the " + std::to_string(n) + " entries");
}

}  // namespace memfront::cuda
