// CudaOps: the Ops of kernels/ops.h on one NVIDIA GPU. The kernels are in the .cu
// files of this folder (launchers.h); this file holds the device, its stream, the
// cuBLAS GEMMs and the device memory resource.
#include "kernels/cuda/cuda_ops.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/annotate.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/launchers.h"

namespace memfront {

namespace {

// The device and stream of one CudaOps. The memory resources the ops hand out
// share it: an arena may release its buffers after the ops are gone, and
// cudaFreeAsync needs the stream.
class DeviceStream {
 public:
  explicit DeviceStream(int device) : device_(device) {
    MEMFRONT_CUDA_CHECK(cudaSetDevice(device));
    MEMFRONT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    MEMFRONT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool_, device));
    // Keep freed memory in the pool instead of returning it to the driver at
    // every synchronization: allocation stays cheap and the peak stays reserved.
    uint64_t keep_everything = UINT64_MAX;
    MEMFRONT_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep_everything));
  }
  ~DeviceStream() { cudaStreamDestroy(stream_); }  // work still queued completes first
  DeviceStream(const DeviceStream&) = delete;
  DeviceStream& operator=(const DeviceStream&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cudaMemPool_t pool() const { return pool_; }

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;
};

// The arena's device memory: stream-ordered allocations from the device's default
// pool, on the ops' stream (so a buffer freed after the work that used it is
// reused only by work queued after that). Never managed memory.
class DevicePoolMemory final : public MemoryResource {
 public:
  explicit DevicePoolMemory(std::shared_ptr<const DeviceStream> stream) : stream_(std::move(stream)) {}

  void* allocate(uint64_t bytes) override {
    void* pointer = nullptr;
    // An empty buffer still gets a real, distinct pointer, as HostMemory gives.
    const cudaError_t status =
        cudaMallocFromPoolAsync(&pointer, std::max<uint64_t>(bytes, 1), stream_->pool(), stream_->stream());
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not a sticky error: clear it, the device stays usable
      throw OutOfMemory("out of device memory: cudaMallocFromPoolAsync of " + format_bytes(bytes) + " on device " +
                        std::to_string(stream_->device()));
    }
    if (status != cudaSuccess) cuda::throw_cuda_error(status, "cudaMallocFromPoolAsync", __FILE__, __LINE__);
    return pointer;
  }

  void deallocate(void* pointer, uint64_t bytes) override {
    const cudaError_t status = cudaFreeAsync(pointer, stream_->stream());
    // Called from Buffer destructors, which must not throw: report and go on.
    if (status != cudaSuccess) {
      std::fprintf(stderr, "memfront: cudaFreeAsync of %llu bytes failed: %s: %s\n",
                   static_cast<unsigned long long>(bytes), cudaGetErrorName(status), cudaGetErrorString(status));
    }
  }

 private:
  std::shared_ptr<const DeviceStream> stream_;
};

struct CublasDestroy {
  void operator()(cublasContext* handle) const { cublasDestroy(handle); }
};
struct DeviceFree {
  void operator()(void* pointer) const { cudaFree(pointer); }
};

// The ops' own device memory (kCudaOpsHeldBytes), one cudaMalloc at construction:
// [cuBLAS workspace | sum partials (kSumBlocks doubles) | sum result | add_topk bad entry].
static_assert(kCudaOpsHeldBytes == kCublasWorkspaceBytes + (cuda::kSumBlocks + 2) * sizeof(double),
              "device_memory.h states the held bytes");

class CudaOps final : public Ops {
 public:
  CudaOps(int device, DType compute)
      : stream_(std::make_shared<DeviceStream>(device)), gemm_compute_(gemm_compute_type(compute)) {
    void* held = nullptr;
    MEMFRONT_CUDA_CHECK(cudaMalloc(&held, kCudaOpsHeldBytes));
    held_.reset(held);
    auto* bytes = static_cast<unsigned char*>(held);
    sum_partials_ = reinterpret_cast<double*>(bytes + kCublasWorkspaceBytes);
    sum_result_ = sum_partials_ + cuda::kSumBlocks;
    bad_entry_ = reinterpret_cast<uint64_t*>(sum_result_ + 1);

    cublasHandle_t handle = nullptr;
    MEMFRONT_CUBLAS_CHECK(cublasCreate(&handle));
    cublas_.reset(handle);
    MEMFRONT_CUBLAS_CHECK(cublasSetStream(handle, stream()));
    // After cublasSetStream, which resets the workspace to cuBLAS's own pool.
    MEMFRONT_CUBLAS_CHECK(cublasSetWorkspace(handle, held, kCublasWorkspaceBytes));
    // The default math mode: fp32 GEMMs stay fp32 (TF32 only if asked for).
    MEMFRONT_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));

    cudaDeviceProp properties{};
    MEMFRONT_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
    int runtime = 0;
    MEMFRONT_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
    device_name_ = std::string(properties.name) + " (sm_" + std::to_string(properties.major) +
                   std::to_string(properties.minor) + ", CUDA " + std::to_string(runtime / 1000) + "." +
                   std::to_string(runtime % 1000 / 10) + ")";
  }

  ~CudaOps() override {
    // Let queued kernels finish before their held memory and handle go away.
    cudaStreamSynchronize(stream());
  }

  Backend backend() const override { return Backend::cuda; }
  std::string device_name() const override { return device_name_; }
  std::unique_ptr<MemoryResource> make_memory() override { return std::make_unique<DevicePoolMemory>(stream_); }
  void* native_stream() const override { return stream(); }

  // ---- memory --------------------------------------------------------------

  // Waits, so that the host buffer may change as soon as upload returns.
  void upload(void* dst, const void* host_src, uint64_t bytes) override {
    MEMFRONT_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream()));
    synchronize();
  }
  void download(void* host_dst, const void* src, uint64_t bytes) override {
    MEMFRONT_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
    synchronize();
  }
  void copy(void* dst, const void* src, uint64_t bytes) override {
    MEMFRONT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
  }
  void fill(float* x, uint64_t n, float value) override { cuda::fill(stream(), x, n, value); }
  void synchronize() override { MEMFRONT_CUDA_CHECK(cudaStreamSynchronize(stream())); }

  // ---- elementwise helpers -------------------------------------------------

  void add(float* y, const float* x, uint64_t n) override { cuda::add(stream(), y, x, n); }
  void scale(float* x, uint64_t n, float factor) override { cuda::scale(stream(), x, n, factor); }
  double sum(const float* x, uint64_t n) override {
    cuda::sum(stream(), sum_result_, sum_partials_, x, n);
    double total = 0.0;
    MEMFRONT_CUDA_CHECK(cudaMemcpyAsync(&total, sum_result_, sizeof total, cudaMemcpyDeviceToHost, stream()));
    synchronize();
    return total;
  }

  // ---- model ops -----------------------------------------------------------

  void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                         int C) override {
    annotate::Range range("embedding_forward");
    cuda::embedding_forward(stream(), out, tokens, wte, wpe, B, T, C);
  }
  void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                          int C) override {
    annotate::Range range("embedding_backward");
    cuda::embedding_backward(stream(), dwte, dwpe, dout, tokens, B, T, C);
  }
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                         const float* bias, int N, int C) override {
    annotate::Range range("layernorm_forward");
    cuda::layernorm_forward(stream(), out, mean, rstd, inp, weight, bias, N, C);
  }
  void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, const float* mean, const float* rstd, int N, int C) override {
    annotate::Range range("layernorm_backward");
    cuda::layernorm_backward(stream(), dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  }

  // Row-major (rows, cols) is column-major (cols, rows), so each row-major product
  // below is computed as its transpose in cuBLAS's column-major terms.
  // out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias  <=>  out^T = weight @ inp^T.
  void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                      int OC) override {
    annotate::Range range("matmul_forward");
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, weight, C, inp, C, 0.0f, out, OC);
    if (bias != nullptr) cuda::add_bias(stream(), out, bias, N, OC);
  }
  // dinp (N,C) += dout (N,OC) @ weight (OC,C)    <=>  dinp^T += weight^T @ dout^T;
  // dweight (OC,C) += dout^T @ inp (N,C)         <=>  dweight^T += inp^T @ dout.
  void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const float* weight, int N, int C, int OC) override {
    annotate::Range range("matmul_backward");
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, weight, C, dout, OC, 1.0f, dinp, C);
    gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, inp, C, dout, OC, 1.0f, dweight, C);
    if (dbias != nullptr) cuda::bias_backward(stream(), dbias, dout, N, OC);
  }

  size_t attention_scratch_floats(int B, int T, int NH, int /*K: the same for every K*/) const override {
    return cuda::attention_scratch_floats(B, T, NH);
  }
  void attention_forward(float* out, float* probs, const float* qkv, float* /*scratch: forward needs none*/, int B,
                         int T, int C, int NH) override {
    annotate::Range range("attention_forward");
    cuda::attention_forward(stream(), out, probs, qkv, B, T, C, NH);
  }
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs, float* scratch, int B,
                          int T, int C, int NH) override {
    annotate::Range range("attention_backward");
    cuda::attention_backward(stream(), dqkv, dout, qkv, probs, scratch, B, T, C, NH);
  }
  void attention_topk_forward(float* out, float* vals, uint16_t* idx, const float* qkv,
                              float* /*scratch: forward needs none*/, int B, int T, int C, int NH, int K) override {
    annotate::Range range("attention_topk_forward");
    cuda::attention_topk_forward(stream(), out, vals, idx, qkv, B, T, C, NH, K);
  }
  void attention_topk_backward(float* dqkv, const float* dout, const float* qkv, const float* vals,
                               const uint16_t* idx, float* scratch, int B, int T, int C, int NH, int K) override {
    annotate::Range range("attention_topk_backward");
    cuda::attention_topk_backward(stream(), dqkv, dout, qkv, vals, idx, scratch, B, T, C, NH, K);
  }
  void gelu_forward(float* out, const float* inp, size_t N) override {
    annotate::Range range("gelu_forward");
    cuda::gelu_forward(stream(), out, inp, N);
  }
  void gelu_backward(float* dinp, const float* inp, const float* dout, size_t N) override {
    annotate::Range range("gelu_backward");
    cuda::gelu_backward(stream(), dinp, inp, dout, N);
  }
  void residual_forward(float* out, const float* a, const float* b, size_t N) override {
    cuda::residual_forward(stream(), out, a, b, N);
  }
  void residual_backward(float* da, float* db, const float* dout, size_t N) override {
    cuda::residual_backward(stream(), da, db, dout, N);
  }
  void softmax_crossentropy_forward(float* losses, float* probs, const float* logits, const int32_t* targets, int N,
                                    int V) override {
    annotate::Range range("softmax_crossentropy_forward");
    cuda::softmax_crossentropy_forward(stream(), losses, probs, logits, targets, N, V);
  }
  void softmax_crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, float dloss, int N,
                                     int V) override {
    annotate::Range range("softmax_crossentropy_backward");
    cuda::softmax_crossentropy_backward(stream(), dlogits, probs, targets, dloss, N, V);
  }
  void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, int t) override {
    annotate::Range range("adamw_update");
    cuda::adamw_update(stream(), params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t);
  }

  // ---- saved-activation formats --------------------------------------------

  void quantize_rows(void* codes, float* scales, const float* src, uint64_t rows, uint64_t cols,
                     DType format) override {
    cuda::quantize_rows(stream(), codes, scales, src, rows, cols, format);
  }
  void dequantize_rows(float* dst, const void* codes, const float* scales, uint64_t rows, uint64_t cols,
                       DType format) override {
    cuda::dequantize_rows(stream(), dst, codes, scales, rows, cols, format);
  }

  // ---- gradient and weight compression -------------------------------------

  void encode_blockwise(void* payload, const float* x, uint64_t n, DType format, int block) override {
    cuda::encode_blockwise(stream(), payload, x, n, format, block);
  }
  void decode_blockwise(float* x, const void* payload, uint64_t n, DType format, int block) override {
    cuda::decode_blockwise(stream(), x, payload, n, format, block, cuda::Delivery::overwrite);
  }
  void add_decoded_blockwise(float* x, const void* payload, uint64_t n, DType format, int block) override {
    cuda::decode_blockwise(stream(), x, payload, n, format, block, cuda::Delivery::add);
  }
  void encode_blockwise_with_feedback(void* payload, float* x, float* residual, uint64_t n, DType format,
                                      int block) override {
    cuda::encode_blockwise_with_feedback(stream(), payload, x, residual, n, format, block);
  }
  uint64_t topk_scratch_bytes(uint64_t n) const override { return cuda::topk_scratch_bytes(n); }
  void encode_topk_with_feedback(void* payload, float* x, float* residual, uint64_t n, uint64_t k,
                                 void* scratch) override {
    cuda::encode_topk_with_feedback(stream(), payload, x, residual, n, k, scratch);
  }
  // Waits: whether to throw depends on the payload's indices.
  void add_topk(float* dense, const void* payload, uint64_t k, uint64_t n) override {
    cuda::add_topk(stream(), dense, payload, k, n, bad_entry_);
  }

  // ---- device memory figures (device_memory.h) -----------------------------

  DevicePoolUsage pool_usage() {
    synchronize();
    DevicePoolUsage usage;
    usage.device = stream_->device();
    usage.used_bytes = pool_attribute(cudaMemPoolAttrUsedMemCurrent);
    usage.used_high_bytes = pool_attribute(cudaMemPoolAttrUsedMemHigh);
    usage.reserved_bytes = pool_attribute(cudaMemPoolAttrReservedMemCurrent);
    usage.reserved_high_bytes = pool_attribute(cudaMemPoolAttrReservedMemHigh);
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    MEMFRONT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    usage.device_free_bytes = free_bytes;
    usage.device_total_bytes = total_bytes;
    return usage;
  }

  void reset_pool_high() {
    synchronize();
    // Setting a high-water mark to 0 restarts it at the current value.
    uint64_t restart = 0;  // the pool attributes are 64-bit (cuuint64_t)
    MEMFRONT_CUDA_CHECK(cudaMemPoolSetAttribute(stream_->pool(), cudaMemPoolAttrUsedMemHigh, &restart));
    MEMFRONT_CUDA_CHECK(cudaMemPoolSetAttribute(stream_->pool(), cudaMemPoolAttrReservedMemHigh, &restart));
  }

 private:
  // GEMM math: fp32 is CUBLAS_COMPUTE_32F (fp32 FMAs, no TF32). bf16 keeps fp32
  // storage and lets cuBLAS round the inputs to bf16 for the tensor cores, with
  // fp32 accumulation (CUBLAS_COMPUTE_32F_FAST_16BF), so no conversion kernels or
  // bf16 copies (and no memory outside the arena) are needed.
  static cublasComputeType_t gemm_compute_type(DType compute) {
    switch (compute) {
      case DType::fp32:
        return CUBLAS_COMPUTE_32F;
      case DType::bf16:
        return CUBLAS_COMPUTE_32F_FAST_16BF;
      default:
        throw std::invalid_argument("CUDA GEMMs compute in fp32 or bf16, not " + std::string(to_string(compute)));
    }
  }

  // Column-major C (m,n) = op(A) (m,k) @ op(B) (k,n) + beta C, all fp32 in memory.
  void gemm(cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k, const float* a, int lda,
            const float* b, int ldb, float beta, float* c, int ldc) {
    const float alpha = 1.0f;
    MEMFRONT_CUBLAS_CHECK(cublasGemmEx(cublas_.get(), op_a, op_b, m, n, k, &alpha, a, CUDA_R_32F, lda, b, CUDA_R_32F,
                                       ldb, &beta, c, CUDA_R_32F, ldc, gemm_compute_, CUBLAS_GEMM_DEFAULT));
  }

  uint64_t pool_attribute(cudaMemPoolAttr attribute) const {
    uint64_t value = 0;  // cuuint64_t
    MEMFRONT_CUDA_CHECK(cudaMemPoolGetAttribute(stream_->pool(), attribute, &value));
    return value;
  }

  cudaStream_t stream() const { return stream_->stream(); }

  std::shared_ptr<DeviceStream> stream_;
  cublasComputeType_t gemm_compute_;
  std::unique_ptr<void, DeviceFree> held_;
  std::unique_ptr<cublasContext, CublasDestroy> cublas_;
  double* sum_partials_ = nullptr;
  double* sum_result_ = nullptr;
  uint64_t* bad_entry_ = nullptr;
  std::string device_name_;
};

CudaOps& cuda_ops_of(Ops& ops, const char* function) {
  auto* cuda_ops = dynamic_cast<CudaOps*>(&ops);
  if (cuda_ops == nullptr) {
    throw std::invalid_argument(std::string(function) + " needs the CUDA backend's ops, got the " +
                                std::string(to_string(ops.backend())) + " backend's");
  }
  return *cuda_ops;
}

}  // namespace

std::unique_ptr<Ops> make_cuda_ops(const Config& config, int local_rank) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) throw std::runtime_error(std::string("no CUDA device: ") + cudaGetErrorString(status));
  if (count == 0) throw std::runtime_error("no CUDA device: cudaGetDeviceCount found 0");
  if (local_rank < 0) throw std::invalid_argument("local rank must be >= 0, got " + std::to_string(local_rank));
  return std::make_unique<CudaOps>(local_rank % count, config.precision.compute);
}

DevicePoolUsage device_pool_usage(Ops& ops) { return cuda_ops_of(ops, "device_pool_usage").pool_usage(); }

void reset_device_pool_high(Ops& ops) { cuda_ops_of(ops, "reset_device_pool_high").reset_pool_high(); }

}  // namespace memfront
