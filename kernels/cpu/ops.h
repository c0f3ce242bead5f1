#pragma once
// The CPU ops of the GPT training step: one forward and one backward function
// per op, plain loops over raw fp32 arrays (GEMMs, attention's included,
// through OpenBLAS), shapes in the comments. Ops allocate nothing: every buffer, scratch included, comes from
// the caller (which takes it from the Arena).
//
// Conventions:
// - Row-major. N = B*T rows. qkv rows hold [q | k | v], each C wide; head h uses
//   columns h*hs .. (h+1)*hs of each, hs = C / NH.
// - Forward functions write their outputs.
// - Backward functions ADD (+=) into every gradient they produce, inputs and
//   parameters alike; the caller zeroes gradients when it needs a fresh sum.
//   The one exception is softmax_crossentropy_backward, which writes dlogits.
#include <cstddef>
#include <cstdint>

namespace memfront::cpu {

// out (B,T,C) = wte[tokens[b,t]] + wpe[t]; wte (V,C), wpe (T,C).
void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                       int B, int T, int C);
// dwte (V,C) += ..., dwpe (T,C) += ...; dout (B,T,C).
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                        int B, int T, int C);

// out (N,C) = (inp - mean) * rstd * weight + bias, per row; mean, rstd (N) are saved
// for backward. eps = 1e-5.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C);
// dinp (N,C), dweight (C), dbias (C) +=.
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean,
                        const float* rstd, int N, int C);

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC); bias may be null. cblas_sgemm.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                    int N, int C, int OC);
// dinp (N,C) += dout @ weight; dweight (OC,C) += dout^T @ inp; dbias (OC) += column sums
// of dout (skipped when dbias is null).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int C, int OC);

// Causal multi-head attention, dense: per batch and head, QK^T, PV and the
// backward products through cblas_sgemm, the causal mask and softmax between.
// qkv (B,T,3C) -> out (B,T,C); probs (B,NH,T,T) softmax rows, entries t2 > t are 0.
// Scores are scaled by 1/sqrt(hs).
void attention_forward(float* out, float* probs, const float* qkv, int B, int T, int C, int NH);
// dqkv (B,T,3C) +=; dout (B,T,C); probs as saved by forward.
// scratch: attention_scratch_floats(T).
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs,
                        float* scratch, int B, int T, int C, int NH);
size_t attention_scratch_floats(int T);

// Causal Top-K attention: query t keeps the min(K, t+1) keys t2 <= t with the highest
// scores, softmax over those only. The selection rule, which the CUDA kernels
// (kernels/cuda/attention.cu) follow too: scores are ordered as floats, with NaN
// ranked as -inf (tied with it) and -0 tied with +0; every key above the n-th
// largest is kept, and of the keys tied with it the lowest-indexed ones.
// vals (B,NH,T,K) softmax weights, idx (B,NH,T,K) key indices, both in ascending key
// order; unused slots have idx 0 and val 0. scratch: attention_topk_scratch_floats(T)
// (also enough for attention_backward).
// Scores and products are the dense functions' (the kept weights scattered into
// rows of zeros), so with K >= T the results are bitwise equal to theirs.
void attention_topk_forward(float* out, float* vals, uint16_t* idx, const float* qkv,
                            float* scratch, int B, int T, int C, int NH, int K);
void attention_topk_backward(float* dqkv, const float* dout, const float* qkv, const float* vals,
                             const uint16_t* idx, float* scratch, int B, int T, int C, int NH,
                             int K);
size_t attention_topk_scratch_floats(int T);

// GELU, tanh approximation. out, inp (N).
void gelu_forward(float* out, const float* inp, size_t N);
// dinp (N) += gelu'(inp) * dout.
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t N);

// out (N) = a + b.
void residual_forward(float* out, const float* a, const float* b, size_t N);
// da, db (N) += dout.
void residual_backward(float* da, float* db, const float* dout, size_t N);

// probs (N,V) = softmax(logits) per row (probs may alias logits);
// losses (N) = -log probs[target]. targets in [0, V).
void softmax_crossentropy_forward(float* losses, float* probs, const float* logits,
                                  const int32_t* targets, int N, int V);
// dlogits (N,V) = dloss * (probs - onehot(target)): written, not accumulated
// (dlogits may alias probs). dloss is the weight of each row's loss (1/N for a mean).
void softmax_crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets,
                                   float dloss, int N, int V);

// AdamW with bias correction and decoupled weight decay, t = 1, 2, ... :
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + weight_decay * p).
void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t);

// Floating-point operations each op performs (a multiply-add counts 2), for the
// achieved-FLOP/s figure. Attention counts only the causal entries it touches.
double matmul_forward_flops(int N, int C, int OC);
double matmul_backward_flops(int N, int C, int OC);
double attention_forward_flops(int B, int T, int C, int NH);
double attention_backward_flops(int B, int T, int C, int NH);
double attention_topk_forward_flops(int B, int T, int C, int NH, int K);
double attention_topk_backward_flops(int B, int T, int C, int NH, int K);

}  // namespace memfront::cpu
