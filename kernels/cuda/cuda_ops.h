#pragma once
// The CUDA backend of Ops (kernels/ops.h). Plain C++: no CUDA header needed to
// use it.
#include <memory>

#include "core/config.h"
#include "kernels/ops.h"

namespace memfront {

// Ops on GPU `local_rank % device count`, running everything in order on one
// non-blocking stream of that device, with a cuBLAS handle bound to it. GEMMs
// follow config.precision.compute: fp32 (true fp32, no TF32) or bf16 (tensor
// cores, fp32 accumulation). Throws std::runtime_error with a one-line reason
// when no device can be used ("no CUDA device: ..."), std::invalid_argument for
// a compute precision other than fp32 or bf16.
//
// The ops are used from one host thread (the one that made them: the device is
// made current there). Besides the arena's memory they hold
// kCudaOpsHeldBytes of device memory of their own (kernels/cuda/device_memory.h).
std::unique_ptr<Ops> make_cuda_ops(const Config& config, int local_rank);

}  // namespace memfront
