#pragma once
// Errors of the CUDA backend: every CUDA runtime and cuBLAS status that is not
// success becomes a std::runtime_error that says where (file:line), which call,
// and what the library reported.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace memfront::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " +
                           cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
}

[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call +
                           " failed: " + cublasGetStatusName(status) + ": " + cublasGetStatusString(status));
}

// A kernel launch reports a bad configuration (too much shared memory, a grid
// too large) only through cudaGetLastError; faults inside the kernel surface
// later, at the next synchronizing call.
inline void check_launch(const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA kernel ") + kernel + " failed to launch: " + cudaGetErrorName(status) +
                             ": " + cudaGetErrorString(status));
  }
}

}  // namespace memfront::cuda

#define MEMFRONT_CUDA_CHECK(call)                                                              \
  do {                                                                                         \
    const cudaError_t memfront_cuda_status = (call);                                           \
    if (memfront_cuda_status != cudaSuccess) {                                                 \
      ::memfront::cuda::throw_cuda_error(memfront_cuda_status, #call, __FILE__, __LINE__);     \
    }                                                                                          \
  } while (0)

#define MEMFRONT_CUBLAS_CHECK(call)                                                            \
  do {                                                                                         \
    const cublasStatus_t memfront_cublas_status = (call);                                      \
    if (memfront_cublas_status != CUBLAS_STATUS_SUCCESS) {                                     \
      ::memfront::cuda::throw_cublas_error(memfront_cublas_status, #call, __FILE__, __LINE__); \
    }                                                                                          \
  } while (0)
