#pragma once
// Ops: the compute layer of the training step on one device. The model
// (kernels/model) and the training state (kernels/shard) call only these, so
// the same step runs on the CPU (kernels/cpu) or on an NVIDIA GPU
// (kernels/cuda). Every pointer is to memory of the backend's device: the
// tensors come from an Arena whose MemoryResource is make_memory()'s.
//
// Semantics are those of the CPU functions named beside each group
// (kernels/cpu/ops.h, kernels/quantize.h, kernels/compress.h): same shapes,
// same layouts, same "backward adds" convention. The CPU backend reproduces
// them bit for bit; the CUDA backend within the tolerances its tests state.
//
// Work may be queued asynchronously (the CUDA backend runs everything on one
// stream, in order). download(), sum() and synchronize() wait for it; upload()
// may too (the CUDA backend's does, so the host buffer is free on return).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/arena.h"
#include "core/config.h"
#include "core/dtype.h"

namespace memfront {

class Ops {
 public:
  virtual ~Ops() = default;

  virtual Backend backend() const = 0;
  // "cpu (OpenBLAS)", "NVIDIA H100 80GB HBM3 (sm_90, CUDA 13.0)": for records.
  virtual std::string device_name() const = 0;
  // Where the arena's bytes come from on this device.
  virtual std::unique_ptr<MemoryResource> make_memory() = 0;
  // The backend's stream (cudaStream_t) for libraries that queue work beside
  // it (NCCL, CUPTI); nullptr on the CPU.
  virtual void* native_stream() const { return nullptr; }

  // ---- memory --------------------------------------------------------------
  virtual void upload(void* dst, const void* host_src, uint64_t bytes) = 0;    // host -> device
  virtual void download(void* host_dst, const void* src, uint64_t bytes) = 0;  // device -> host, waits
  virtual void copy(void* dst, const void* src, uint64_t bytes) = 0;           // device -> device
  virtual void fill(float* x, uint64_t n, float value) = 0;
  virtual void synchronize() = 0;  // waits for all queued work

  // ---- elementwise helpers of the training state ---------------------------
  virtual void add(float* y, const float* x, uint64_t n) = 0;  // y += x
  virtual void scale(float* x, uint64_t n, float factor) = 0;  // x *= factor
  // Sum of x (n), returned to the host (waits). Summed in index order on the CPU.
  virtual double sum(const float* x, uint64_t n) = 0;

  // ---- model ops (kernels/cpu/ops.h) ---------------------------------------
  virtual void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                                 int T, int C) = 0;
  virtual void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                                  int C) = 0;
  virtual void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                 const float* bias, int N, int C) = 0;
  virtual void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                  const float* weight, const float* mean, const float* rstd, int N, int C) = 0;
  // GEMM math follows precision.compute: fp32, or bf16 tensor cores with fp32
  // accumulation (CUDA only; the config rejects bf16 on the CPU).
  virtual void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                              int OC) = 0;
  virtual void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* weight, int N, int C, int OC) = 0;
  // scratch: attention_scratch_floats(T) floats, from the arena (workspace).
  virtual size_t attention_scratch_floats(int B, int T, int NH, int K) const = 0;
  virtual void attention_forward(float* out, float* probs, const float* qkv, float* scratch, int B, int T, int C,
                                 int NH) = 0;
  virtual void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs,
                                  float* scratch, int B, int T, int C, int NH) = 0;
  virtual void attention_topk_forward(float* out, float* vals, uint16_t* idx, const float* qkv, float* scratch, int B,
                                      int T, int C, int NH, int K) = 0;
  virtual void attention_topk_backward(float* dqkv, const float* dout, const float* qkv, const float* vals,
                                       const uint16_t* idx, float* scratch, int B, int T, int C, int NH, int K) = 0;
  virtual void gelu_forward(float* out, const float* inp, size_t N) = 0;
  virtual void gelu_backward(float* dinp, const float* inp, const float* dout, size_t N) = 0;
  virtual void residual_forward(float* out, const float* a, const float* b, size_t N) = 0;
  virtual void residual_backward(float* da, float* db, const float* dout, size_t N) = 0;
  virtual void softmax_crossentropy_forward(float* losses, float* probs, const float* logits,
                                            const int32_t* targets, int N, int V) = 0;
  virtual void softmax_crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, float dloss,
                                             int N, int V) = 0;
  virtual void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                            float beta2, float eps, float weight_decay, int t) = 0;

  // ---- saved-activation formats (kernels/quantize.h) -----------------------
  virtual void quantize_rows(void* codes, float* scales, const float* src, uint64_t rows, uint64_t cols,
                             DType format) = 0;
  virtual void dequantize_rows(float* dst, const void* codes, const float* scales, uint64_t rows, uint64_t cols,
                               DType format) = 0;

  // ---- gradient and weight compression (kernels/compress.h) ----------------
  virtual void encode_blockwise(void* payload, const float* x, uint64_t n, DType format, int block) = 0;
  virtual void decode_blockwise(float* x, const void* payload, uint64_t n, DType format, int block) = 0;
  virtual void add_decoded_blockwise(float* x, const void* payload, uint64_t n, DType format, int block) = 0;
  virtual void encode_blockwise_with_feedback(void* payload, float* x, float* residual, uint64_t n, DType format,
                                              int block) = 0;
  // scratch: topk_scratch_bytes(n) bytes, from the arena (workspace).
  virtual uint64_t topk_scratch_bytes(uint64_t n) const = 0;
  virtual void encode_topk_with_feedback(void* payload, float* x, float* residual, uint64_t n, uint64_t k,
                                         void* scratch) = 0;
  virtual void add_topk(float* dense, const void* payload, uint64_t k, uint64_t n) = 0;
};

// The CPU backend: kernels/cpu/ops, OpenBLAS, and the CPU quantizers. It holds
// no state, so one instance serves every model and training state that is
// given no other.
std::unique_ptr<Ops> make_cpu_ops();
Ops& cpu_ops();

// The backend the config asks for. `local_rank` picks the GPU among the
// node's devices (CUDA). Throws InputError "<source>: /backend: why" when this
// build or this machine cannot run it (no CUDA at build time; no device now).
std::unique_ptr<Ops> make_ops(const Config& config, int local_rank, std::string_view source);

}  // namespace memfront
