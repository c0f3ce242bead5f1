#include "kernels/ops.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"
#include "kernels/compress.h"
#include "kernels/cpu/ops.h"
#include "kernels/quantize.h"
#ifdef MEMFRONT_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace memfront {

namespace {

// The CPU backend forwards to the CPU functions one for one, so a CPU trial
// computes exactly what those functions (and their tests) define.
class CpuOps final : public Ops {
 public:
  Backend backend() const override { return Backend::cpu; }
  std::string device_name() const override { return "cpu (OpenBLAS)"; }
  std::unique_ptr<MemoryResource> make_memory() override { return std::make_unique<HostMemory>(); }

  void upload(void* dst, const void* host_src, uint64_t bytes) override { std::memcpy(dst, host_src, bytes); }
  void download(void* host_dst, const void* src, uint64_t bytes) override { std::memcpy(host_dst, src, bytes); }
  void copy(void* dst, const void* src, uint64_t bytes) override { std::memcpy(dst, src, bytes); }
  void fill(float* x, uint64_t n, float value) override { std::fill_n(x, n, value); }
  void synchronize() override {}

  void add(float* y, const float* x, uint64_t n) override {
    for (uint64_t i = 0; i < n; ++i) y[i] += x[i];
  }
  void scale(float* x, uint64_t n, float factor) override {
    for (uint64_t i = 0; i < n; ++i) x[i] *= factor;
  }
  double sum(const float* x, uint64_t n) override {
    double total = 0;
    for (uint64_t i = 0; i < n; ++i) total += x[i];
    return total;
  }

  void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                         int C) override {
    cpu::embedding_forward(out, tokens, wte, wpe, B, T, C);
  }
  void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                          int C) override {
    cpu::embedding_backward(dwte, dwpe, dout, tokens, B, T, C);
  }
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                         const float* bias, int N, int C) override {
    cpu::layernorm_forward(out, mean, rstd, inp, weight, bias, N, C);
  }
  void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, const float* mean, const float* rstd, int N, int C) override {
    cpu::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  }
  void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                      int OC) override {
    cpu::matmul_forward(out, inp, weight, bias, N, C, OC);
  }
  void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const float* weight, int N, int C, int OC) override {
    cpu::matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
  }
  size_t attention_scratch_floats(int, int T, int, int K) const override {
    return K == 0 ? cpu::attention_scratch_floats(T) : cpu::attention_topk_scratch_floats(T);
  }
  void attention_forward(float* out, float* probs, const float* qkv, float*, int B, int T, int C,
                         int NH) override {
    cpu::attention_forward(out, probs, qkv, B, T, C, NH);
  }
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs, float* scratch,
                          int B, int T, int C, int NH) override {
    cpu::attention_backward(dqkv, dout, qkv, probs, scratch, B, T, C, NH);
  }
  void attention_topk_forward(float* out, float* vals, uint16_t* idx, const float* qkv, float* scratch, int B,
                              int T, int C, int NH, int K) override {
    cpu::attention_topk_forward(out, vals, idx, qkv, scratch, B, T, C, NH, K);
  }
  void attention_topk_backward(float* dqkv, const float* dout, const float* qkv, const float* vals,
                               const uint16_t* idx, float* scratch, int B, int T, int C, int NH, int K) override {
    cpu::attention_topk_backward(dqkv, dout, qkv, vals, idx, scratch, B, T, C, NH, K);
  }
  void gelu_forward(float* out, const float* inp, size_t N) override { cpu::gelu_forward(out, inp, N); }
  void gelu_backward(float* dinp, const float* inp, const float* dout, size_t N) override {
    cpu::gelu_backward(dinp, inp, dout, N);
  }
  void residual_forward(float* out, const float* a, const float* b, size_t N) override {
    cpu::residual_forward(out, a, b, N);
  }
  void residual_backward(float* da, float* db, const float* dout, size_t N) override {
    cpu::residual_backward(da, db, dout, N);
  }
  void softmax_crossentropy_forward(float* losses, float* probs, const float* logits, const int32_t* targets, int N,
                                    int V) override {
    cpu::softmax_crossentropy_forward(losses, probs, logits, targets, N, V);
  }
  void softmax_crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, float dloss, int N,
                                     int V) override {
    cpu::softmax_crossentropy_backward(dlogits, probs, targets, dloss, N, V);
  }
  void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, int t) override {
    cpu::adamw_update(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t);
  }

  void quantize_rows(void* codes, float* scales, const float* src, uint64_t rows, uint64_t cols,
                     DType format) override {
    memfront::quantize_rows(codes, scales, src, rows, cols, format);
  }
  void dequantize_rows(float* dst, const void* codes, const float* scales, uint64_t rows, uint64_t cols,
                       DType format) override {
    memfront::dequantize_rows(dst, codes, scales, rows, cols, format);
  }

  void encode_blockwise(void* payload, const float* x, uint64_t n, DType format, int block) override {
    memfront::encode_blockwise(payload, x, n, format, block);
  }
  void decode_blockwise(float* x, const void* payload, uint64_t n, DType format, int block) override {
    memfront::decode_blockwise(x, payload, n, format, block);
  }
  void add_decoded_blockwise(float* x, const void* payload, uint64_t n, DType format, int block) override {
    memfront::add_decoded_blockwise(x, payload, n, format, block);
  }
  void encode_blockwise_with_feedback(void* payload, float* x, float* residual, uint64_t n, DType format,
                                      int block) override {
    memfront::encode_blockwise_with_feedback(payload, x, residual, n, format, block);
  }
  uint64_t topk_scratch_bytes(uint64_t n) const override { return n * sizeof(float); }
  void encode_topk_with_feedback(void* payload, float* x, float* residual, uint64_t n, uint64_t k,
                                 void* scratch) override {
    memfront::encode_topk_with_feedback(payload, x, residual, n, k, static_cast<float*>(scratch));
  }
  void add_topk(float* dense, const void* payload, uint64_t k, uint64_t n) override {
    memfront::add_topk(dense, payload, k, n);
  }
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops() { return std::make_unique<CpuOps>(); }

Ops& cpu_ops() {
  static CpuOps shared;
  return shared;
}

std::unique_ptr<Ops> make_ops(const Config& config, int local_rank, std::string_view source) {
  if (config.backend == Backend::cpu) return make_cpu_ops();
  const std::string where = std::string(source) + ": /backend: backend=cuda ";
#ifdef MEMFRONT_HAVE_CUDA
  try {
    return make_cuda_ops(config, local_rank);
  } catch (const std::runtime_error& e) {
    throw InputError(where + "cannot run here: " + e.what());
  }
#else
  (void)local_rank;
  throw InputError(where + "needs a build with CUDA (nvcc, cuBLAS, CUPTI and NCCL were not found when this build "
                           "was configured)");
#endif
}

}  // namespace memfront
