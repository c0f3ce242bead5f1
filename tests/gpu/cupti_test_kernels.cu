#include "cupti_test_kernels.h"

#include <algorithm>

namespace {

__global__ void cupti_probe_test_fill_kernel(float* data, size_t n, float value) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    data[i] = value;
  }
}

}  // namespace

void cupti_probe_test_fill(float* data, size_t n, float value, cudaStream_t stream) {
  constexpr int kThreads = 256;
  constexpr size_t kMostBlocks = 4096;  // grid-stride beyond this
  const size_t blocks = std::min(kMostBlocks, (n + kThreads - 1) / kThreads);
  cupti_probe_test_fill_kernel<<<static_cast<unsigned>(blocks == 0 ? 1 : blocks), kThreads, 0, stream>>>(data, n,
                                                                                                          value);
}
