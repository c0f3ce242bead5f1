#pragma once
// The kernels of the CUDA backend, as host functions that queue them on a
// stream (defined in the .cu files of this folder, called by cuda_ops.cpp).
// Shapes and semantics are those of the CPU functions of the same names
// (kernels/cpu/ops.h, kernels/quantize.h, kernels/compress.h); every pointer is
// device memory. Arguments the CPU rejects are rejected here with the same
// exception type, before anything is queued.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace memfront::cuda {

// ---- elementwise helpers (model_kernels.cu) --------------------------------
void fill(cudaStream_t stream, float* x, uint64_t n, float value);
void add(cudaStream_t stream, float* y, const float* x, uint64_t n);  // y += x
void scale(cudaStream_t stream, float* x, uint64_t n, float factor);  // x *= factor
// Sum of x (n) in double, into *result (device): kSumBlocks partial sums, then
// their total, in an order fixed by n alone.
constexpr int kSumBlocks = 256;
void sum(cudaStream_t stream, double* result, double* partials, const float* x, uint64_t n);

// ---- model ops (model_kernels.cu) ------------------------------------------
void embedding_forward(cudaStream_t stream, float* out, const int32_t* tokens, const float* wte, const float* wpe,
                       int B, int T, int C);
void embedding_backward(cudaStream_t stream, float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                        int T, int C);
void layernorm_forward(cudaStream_t stream, float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C);
void layernorm_backward(cudaStream_t stream, float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd, int N, int C);
// The non-GEMM parts of matmul: out (N,OC) += bias (OC); dbias (OC) += column sums of dout (N,OC).
void add_bias(cudaStream_t stream, float* out, const float* bias, int N, int OC);
void bias_backward(cudaStream_t stream, float* dbias, const float* dout, int N, int OC);
void gelu_forward(cudaStream_t stream, float* out, const float* inp, size_t N);
void gelu_backward(cudaStream_t stream, float* dinp, const float* inp, const float* dout, size_t N);
void residual_forward(cudaStream_t stream, float* out, const float* a, const float* b, size_t N);
void residual_backward(cudaStream_t stream, float* da, float* db, const float* dout, size_t N);
void softmax_crossentropy_forward(cudaStream_t stream, float* losses, float* probs, const float* logits,
                                  const int32_t* targets, int N, int V);
void softmax_crossentropy_backward(cudaStream_t stream, float* dlogits, const float* probs, const int32_t* targets,
                                   float dloss, int N, int V);
void adamw_update(cudaStream_t stream, float* params, const float* grads, float* m, float* v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t);

// ---- attention (attention.cu) ----------------------------------------------
// Floats of scratch the backward functions need (forward needs none).
size_t attention_scratch_floats(int B, int T, int NH);
void attention_forward(cudaStream_t stream, float* out, float* probs, const float* qkv, int B, int T, int C, int NH);
void attention_backward(cudaStream_t stream, float* dqkv, const float* dout, const float* qkv, const float* probs,
                        float* scratch, int B, int T, int C, int NH);
void attention_topk_forward(cudaStream_t stream, float* out, float* vals, uint16_t* idx, const float* qkv, int B,
                            int T, int C, int NH, int K);
void attention_topk_backward(cudaStream_t stream, float* dqkv, const float* dout, const float* qkv,
                             const float* vals, const uint16_t* idx, float* scratch, int B, int T, int C, int NH,
                             int K);

// ---- number formats (quantize.cu) ------------------------------------------
void quantize_rows(cudaStream_t stream, void* codes, float* scales, const float* src, uint64_t rows, uint64_t cols,
                   DType format);
void dequantize_rows(cudaStream_t stream, float* dst, const void* codes, const float* scales, uint64_t rows,
                     uint64_t cols, DType format);
void encode_blockwise(cudaStream_t stream, void* payload, const float* x, uint64_t n, DType format, int block);
// Decoded payload values overwrite x, or are added to it.
enum class Delivery { overwrite, add };
void decode_blockwise(cudaStream_t stream, float* x, const void* payload, uint64_t n, DType format, int block,
                      Delivery delivery);
void encode_blockwise_with_feedback(cudaStream_t stream, void* payload, float* x, float* residual, uint64_t n,
                                    DType format, int block);

// ---- gradient Top-K (topk.cu) ----------------------------------------------
// Bytes of scratch encode_topk_with_feedback needs for n entries, on the current device.
uint64_t topk_scratch_bytes(uint64_t n);
void encode_topk_with_feedback(cudaStream_t stream, void* payload, float* x, float* residual, uint64_t n, uint64_t k,
                               void* scratch);
// Validates every index against n before adding any; bad_entry is one device
// uint64 of working space. Waits for the stream (it must know whether to throw).
void add_topk(cudaStream_t stream, float* dense, const void* payload, uint64_t k, uint64_t n, uint64_t* bad_entry);

}  // namespace memfront::cuda
