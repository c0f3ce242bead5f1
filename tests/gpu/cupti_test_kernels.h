#pragma once
// A kernel for the CUPTI probe's tests, with a name they can look for.
#include <cstddef>

#include <cuda_runtime.h>

// Writes `value` into data[0..n) on `stream`: n * 4 bytes written, none read.
void cupti_probe_test_fill(float* data, size_t n, float value, cudaStream_t stream);
