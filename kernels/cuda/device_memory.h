#pragma once
// Device-memory figures of the CUDA backend, for cross-checking the arena.
//
// The arena's bytes (Ops::make_memory() of the CUDA ops) come from the device's
// default memory pool through stream-ordered cudaMallocFromPoolAsync /
// cudaFreeAsync; the pool keeps what it has reserved (release threshold
// UINT64_MAX), so after warm-up an allocation costs no driver call. Nothing else
// of memfront allocates from that pool, so its "used" figures are the arena's
// bytes, each rounded up to the pool's allocation granularity. The ops' own
// device memory (kCudaOpsHeldBytes, below) is a separate cudaMalloc, outside both
// the arena and the pool; cudaMemGetInfo sees everything on the device, other
// processes and the CUDA context included.
#include <cstdint>

#include "kernels/ops.h"

namespace memfront {

// Device memory the CUDA ops hold from construction to destruction, outside the
// arena: the cuBLAS workspace (32 MiB, the size cuBLAS recommends for Hopper),
// the partial sums of sum() (256 doubles) and its result, and one status word
// of add_topk(). cuBLAS and the CUDA context hold a little more of their own,
// which only cudaMemGetInfo sees.
inline constexpr uint64_t kCublasWorkspaceBytes = uint64_t{32} << 20;
inline constexpr uint64_t kCudaOpsHeldBytes = kCublasWorkspaceBytes + (256 + 2) * sizeof(double);

struct DevicePoolUsage {
  int device = 0;
  uint64_t used_bytes = 0;           // cudaMemPoolAttrUsedMemCurrent: held by live allocations now
  uint64_t used_high_bytes = 0;      // cudaMemPoolAttrUsedMemHigh: most ever held (since the last reset)
  uint64_t reserved_bytes = 0;       // cudaMemPoolAttrReservedMemCurrent: backing memory the pool holds
  uint64_t reserved_high_bytes = 0;  // cudaMemPoolAttrReservedMemHigh (since the last reset)
  uint64_t device_free_bytes = 0;    // cudaMemGetInfo: free on the device, all processes considered
  uint64_t device_total_bytes = 0;   // cudaMemGetInfo: the device's capacity
  uint64_t ops_held_bytes = kCudaOpsHeldBytes;  // the ops' own memory, in neither pool figure
};

// The figures for the pool that `ops`' make_memory() allocates from. Waits for
// the ops' stream first, so that stream-ordered frees already queued are counted.
// Throws std::invalid_argument when ops is not the CUDA backend's.
DevicePoolUsage device_pool_usage(Ops& ops);

// Restarts the pool's high-water marks (used and reserved) at their current
// values, e.g. at the start of a timed step. Throws as device_pool_usage does.
void reset_device_pool_high(Ops& ops);

}  // namespace memfront
