#pragma once
// Shared by the GPU tests: skip visibly where no CUDA device exists.
#include <string>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

namespace gpu_test {

// Empty when a device is usable; otherwise why not.
inline std::string missing_device() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) return std::string("no CUDA device: ") + cudaGetErrorString(status);
  if (count == 0) return "no CUDA device: cudaGetDeviceCount found 0";
  return {};
}

}  // namespace gpu_test

// First statement of every GPU test.
#define MEMFRONT_REQUIRE_GPU()                                          \
  do {                                                                  \
    const std::string memfront_missing = gpu_test::missing_device();    \
    if (!memfront_missing.empty()) GTEST_SKIP() << memfront_missing;    \
  } while (0)
