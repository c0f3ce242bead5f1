// The CUDA kernels of the model ops and the elementwise helpers: one forward and
// one backward kernel per op, plain indexing, shapes as in kernels/cpu/ops.h.
//
// Determinism: no atomics. Where several rows add into one gradient (embedding
// tables, LayerNorm weights, biases) a single thread or warp owns each output
// element and adds the contributions in a fixed order.
#include <cmath>

#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/launchers.h"

namespace memfront::cuda {

// ---------------------------------------------------------------------------
// Elementwise helpers
// ---------------------------------------------------------------------------

namespace {

__global__ void fill_kernel(float* x, uint64_t n, float value) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) x[i] = value;
}

__global__ void add_kernel(float* y, const float* x, uint64_t n) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) y[i] += x[i];
}

__global__ void scale_kernel(float* x, uint64_t n, float factor) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) x[i] *= factor;
}

// partials (kSumBlocks): block b sums the elements b*kThreads + thread + k*(kSumBlocks*kThreads).
__global__ void sum_partials_kernel(double* partials, const float* x, uint64_t n) {
  double total = 0.0;
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) total += x[i];
  total = block_reduce(total, Sum{}, 0.0);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// One block of kSumBlocks threads adds the partial sums.
__global__ void sum_total_kernel(double* result, const double* partials) {
  const double total = block_reduce(partials[threadIdx.x], Sum{}, 0.0);
  if (threadIdx.x == 0) *result = total;
}

}  // namespace

void fill(cudaStream_t stream, float* x, uint64_t n, float value) {
  if (n == 0) return;
  fill_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(x, n, value);
  check_launch("fill");
}

void add(cudaStream_t stream, float* y, const float* x, uint64_t n) {
  if (n == 0) return;
  add_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(y, x, n);
  check_launch("add");
}

void scale(cudaStream_t stream, float* x, uint64_t n, float factor) {
  if (n == 0) return;
  scale_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(x, n, factor);
  check_launch("scale");
}

void sum(cudaStream_t stream, double* result, double* partials, const float* x, uint64_t n) {
  // Always kSumBlocks blocks, even for small n (idle threads add 0): the grid, and
  // so the order of the additions, depends on nothing but n.
  sum_partials_kernel<<<kSumBlocks, kThreads, 0, stream>>>(partials, x, n);
  check_launch("sum_partials");
  static_assert(kSumBlocks % kWarpSize == 0 && kSumBlocks <= 1024, "one block adds the partial sums");
  sum_total_kernel<<<1, kSumBlocks, 0, stream>>>(result, partials);
  check_launch("sum_total");
}

// ---------------------------------------------------------------------------
// Embedding
// ---------------------------------------------------------------------------

namespace {

// out (B,T,C) = wte[tokens[b,t]] (V,C) + wpe[t] (T,C); one thread per output element.
__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                                         int T, int C) {
  const uint64_t total = uint64_t{1} * B * T * C;
  for (uint64_t e = global_thread(); e < total; e += global_thread_count()) {
    const uint64_t bt = e / C;
    const uint64_t i = e % C;
    const uint64_t t = bt % T;
    out[e] = wte[static_cast<uint64_t>(tokens[bt]) * C + i] + wpe[t * C + i];
  }
}

// dwpe (T,C) += dout summed over b; one thread per (t, i), adding b in order as the CPU does.
__global__ void embedding_backward_wpe_kernel(float* dwpe, const float* dout, int B, int T, int C) {
  const uint64_t total = uint64_t{1} * T * C;
  for (uint64_t e = global_thread(); e < total; e += global_thread_count()) {
    float acc = dwpe[e];
    for (int b = 0; b < B; b++) acc += dout[uint64_t{1} * b * T * C + e];
    dwpe[e] = acc;
  }
}

// dwte (V,C) += dout rows at their tokens. One warp per position p = b*T + t; the
// warp of the first position holding a token owns that token's dwte row and adds
// the dout rows of all positions holding it, in position order (the CPU's order);
// the warps of later positions find an earlier one and leave.
__global__ void embedding_backward_wte_kernel(float* dwte, const float* dout, const int32_t* tokens, int positions,
                                              int C) {
  const uint64_t p = global_warp();
  if (p >= static_cast<uint64_t>(positions)) return;
  const int lane = lane_id();
  const int32_t token = tokens[p];
  for (uint64_t base = 0; base < p; base += kWarpSize) {
    const uint64_t q = base + lane;
    if (__any_sync(kFullWarp, q < p && tokens[q] == token)) return;
  }
  float* row = dwte + static_cast<uint64_t>(token) * C;
  for (uint64_t base = p; base < static_cast<uint64_t>(positions); base += kWarpSize) {
    const uint64_t q = base + lane;
    unsigned holders = __ballot_sync(kFullWarp, q < static_cast<uint64_t>(positions) && tokens[q] == token);
    while (holders != 0) {
      const uint64_t holder = base + (__ffs(holders) - 1);
      holders &= holders - 1;
      for (int i = lane; i < C; i += kWarpSize) row[i] += dout[holder * C + i];
    }
  }
}

}  // namespace

void embedding_forward(cudaStream_t stream, float* out, const int32_t* tokens, const float* wte, const float* wpe,
                       int B, int T, int C) {
  const uint64_t total = uint64_t{1} * B * T * C;
  if (total == 0) return;
  embedding_forward_kernel<<<elementwise_blocks(total), kThreads, 0, stream>>>(out, tokens, wte, wpe, B, T, C);
  check_launch("embedding_forward");
}

void embedding_backward(cudaStream_t stream, float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                        int T, int C) {
  if (uint64_t{1} * B * T * C == 0) return;
  embedding_backward_wpe_kernel<<<elementwise_blocks(uint64_t{1} * T * C), kThreads, 0, stream>>>(dwpe, dout, B, T, C);
  check_launch("embedding_backward_wpe");
  const int positions = B * T;
  embedding_backward_wte_kernel<<<warp_per_row_blocks(positions), kThreads, 0, stream>>>(dwte, dout, tokens,
                                                                                         positions, C);
  check_launch("embedding_backward_wte");
}

// ---------------------------------------------------------------------------
// Column sums over rows (LayerNorm weight gradients, matmul bias gradient)
//
// A block of kColumnTile x kRowLanes threads owns kColumnTile columns: row lane r
// sums rows r, r + kRowLanes, ... (neighbouring threads read neighbouring
// columns: coalesced), then row lane 0 adds the kRowLanes partial sums in order.
// ---------------------------------------------------------------------------

namespace {

constexpr int kColumnTile = 32;
constexpr int kRowLanes = 32;

// dweight (C) += sum_n norm * dout; dbias (C) += sum_n dout, norm = (inp - mean) * rstd.
__global__ void layernorm_params_backward_kernel(float* dweight, float* dbias, const float* dout, const float* inp,
                                                 const float* mean, const float* rstd, int N, int C) {
  __shared__ float weight_sums[kRowLanes][kColumnTile + 1];  // +1: no bank conflicts reading a column
  __shared__ float bias_sums[kRowLanes][kColumnTile + 1];
  const int col = blockIdx.x * kColumnTile + threadIdx.x;
  float dw = 0.0f;
  float db = 0.0f;
  if (col < C) {
    for (int n = threadIdx.y; n < N; n += kRowLanes) {
      const uint64_t at = static_cast<uint64_t>(n) * C + col;
      const float norm = (inp[at] - mean[n]) * rstd[n];
      dw += norm * dout[at];
      db += dout[at];
    }
  }
  weight_sums[threadIdx.y][threadIdx.x] = dw;
  bias_sums[threadIdx.y][threadIdx.x] = db;
  __syncthreads();
  if (threadIdx.y != 0 || col >= C) return;
  float total_w = 0.0f;
  float total_b = 0.0f;
  for (int r = 0; r < kRowLanes; r++) {
    total_w += weight_sums[r][threadIdx.x];
    total_b += bias_sums[r][threadIdx.x];
  }
  dweight[col] += total_w;
  dbias[col] += total_b;
}

// dbias (OC) += column sums of dout (N,OC).
__global__ void bias_backward_kernel(float* dbias, const float* dout, int N, int OC) {
  __shared__ float sums[kRowLanes][kColumnTile + 1];
  const int col = blockIdx.x * kColumnTile + threadIdx.x;
  float acc = 0.0f;
  if (col < OC) {
    for (int n = threadIdx.y; n < N; n += kRowLanes) acc += dout[static_cast<uint64_t>(n) * OC + col];
  }
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || col >= OC) return;
  float total = 0.0f;
  for (int r = 0; r < kRowLanes; r++) total += sums[r][threadIdx.x];
  dbias[col] += total;
}

unsigned column_tiles(int columns) { return static_cast<unsigned>((columns + kColumnTile - 1) / kColumnTile); }

}  // namespace

// ---------------------------------------------------------------------------
// LayerNorm
// ---------------------------------------------------------------------------

namespace {

constexpr float kLayerNormEps = 1e-5f;

// out (N,C) = (inp - mean) * rstd * weight + bias; mean, rstd (N). One warp per row.
__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                         const float* bias, int N, int C) {
  const uint64_t n = global_warp();
  if (n >= static_cast<uint64_t>(N)) return;
  const int lane = lane_id();
  const float* x = inp + n * C;
  float* y = out + n * C;
  float sum = 0.0f;
  for (int i = lane; i < C; i += kWarpSize) sum += x[i];
  const float m = warp_reduce(sum, Sum{}) / C;
  // Variance from the centred values, as on the CPU.
  float sq = 0.0f;
  for (int i = lane; i < C; i += kWarpSize) sq += (x[i] - m) * (x[i] - m);
  const float s = 1.0f / sqrtf(warp_reduce(sq, Sum{}) / C + kLayerNormEps);
  for (int i = lane; i < C; i += kWarpSize) y[i] = (x[i] - m) * s * weight[i] + bias[i];
  if (lane == 0) {
    mean[n] = m;
    rstd[n] = s;
  }
}

// dinp (N,C) += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = weight * dout.
// One warp per row.
__global__ void layernorm_backward_kernel(float* dinp, const float* dout, const float* inp, const float* weight,
                                          const float* mean, const float* rstd, int N, int C) {
  const uint64_t n = global_warp();
  if (n >= static_cast<uint64_t>(N)) return;
  const int lane = lane_id();
  const float* x = inp + n * C;
  const float* dy = dout + n * C;
  float* dx = dinp + n * C;
  const float m = mean[n];
  const float s = rstd[n];
  float dnorm_sum = 0.0f;
  float dnorm_norm_sum = 0.0f;
  for (int i = lane; i < C; i += kWarpSize) {
    const float norm = (x[i] - m) * s;
    const float dnorm = weight[i] * dy[i];
    dnorm_sum += dnorm;
    dnorm_norm_sum += dnorm * norm;
  }
  const float dnorm_mean = warp_reduce(dnorm_sum, Sum{}) / C;
  const float dnorm_norm_mean = warp_reduce(dnorm_norm_sum, Sum{}) / C;
  for (int i = lane; i < C; i += kWarpSize) {
    const float norm = (x[i] - m) * s;
    const float dnorm = weight[i] * dy[i];
    dx[i] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
  }
}

}  // namespace

void layernorm_forward(cudaStream_t stream, float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C) {
  if (N == 0 || C == 0) return;
  layernorm_forward_kernel<<<warp_per_row_blocks(N), kThreads, 0, stream>>>(out, mean, rstd, inp, weight, bias, N, C);
  check_launch("layernorm_forward");
}

void layernorm_backward(cudaStream_t stream, float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd, int N, int C) {
  if (N == 0 || C == 0) return;
  layernorm_backward_kernel<<<warp_per_row_blocks(N), kThreads, 0, stream>>>(dinp, dout, inp, weight, mean, rstd, N,
                                                                             C);
  check_launch("layernorm_backward");
  layernorm_params_backward_kernel<<<column_tiles(C), dim3(kColumnTile, kRowLanes), 0, stream>>>(
      dweight, dbias, dout, inp, mean, rstd, N, C);
  check_launch("layernorm_params_backward");
}

// ---------------------------------------------------------------------------
// Matmul bias (the GEMMs themselves are cuBLAS calls in cuda_ops.cpp)
// ---------------------------------------------------------------------------

namespace {

// out (N,OC) += bias (OC).
__global__ void add_bias_kernel(float* out, const float* bias, int N, int OC) {
  const uint64_t total = uint64_t{1} * N * OC;
  for (uint64_t e = global_thread(); e < total; e += global_thread_count()) out[e] += bias[e % OC];
}

}  // namespace

void add_bias(cudaStream_t stream, float* out, const float* bias, int N, int OC) {
  const uint64_t total = uint64_t{1} * N * OC;
  if (total == 0) return;
  add_bias_kernel<<<elementwise_blocks(total), kThreads, 0, stream>>>(out, bias, N, OC);
  check_launch("add_bias");
}

void bias_backward(cudaStream_t stream, float* dbias, const float* dout, int N, int OC) {
  if (OC == 0) return;
  bias_backward_kernel<<<column_tiles(OC), dim3(kColumnTile, kRowLanes), 0, stream>>>(dbias, dout, N, OC);
  check_launch("bias_backward");
}

// ---------------------------------------------------------------------------
// GELU (tanh approximation) and residual
// ---------------------------------------------------------------------------

namespace {

constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;

// out (N) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
__global__ void gelu_forward_kernel(float* out, const float* inp, uint64_t N) {
  for (uint64_t i = global_thread(); i < N; i += global_thread_count()) {
    const float x = inp[i];
    const float u = kGeluScale * (x + kGeluCubic * x * x * x);
    out[i] = 0.5f * x * (1.0f + tanhf(u));
  }
}

// dinp (N) += gelu'(x) dout.
__global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, uint64_t N) {
  for (uint64_t i = global_thread(); i < N; i += global_thread_count()) {
    const float x = inp[i];
    const float u = kGeluScale * (x + kGeluCubic * x * x * x);
    const float th = tanhf(u);
    const float du_dx = kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
    const float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du_dx;
    dinp[i] += grad * dout[i];
  }
}

// out (N) = a + b.
__global__ void residual_forward_kernel(float* out, const float* a, const float* b, uint64_t N) {
  for (uint64_t i = global_thread(); i < N; i += global_thread_count()) out[i] = a[i] + b[i];
}

// da, db (N) += dout.
__global__ void residual_backward_kernel(float* da, float* db, const float* dout, uint64_t N) {
  for (uint64_t i = global_thread(); i < N; i += global_thread_count()) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

}  // namespace

void gelu_forward(cudaStream_t stream, float* out, const float* inp, size_t N) {
  if (N == 0) return;
  gelu_forward_kernel<<<elementwise_blocks(N), kThreads, 0, stream>>>(out, inp, N);
  check_launch("gelu_forward");
}

void gelu_backward(cudaStream_t stream, float* dinp, const float* inp, const float* dout, size_t N) {
  if (N == 0) return;
  gelu_backward_kernel<<<elementwise_blocks(N), kThreads, 0, stream>>>(dinp, inp, dout, N);
  check_launch("gelu_backward");
}

void residual_forward(cudaStream_t stream, float* out, const float* a, const float* b, size_t N) {
  if (N == 0) return;
  residual_forward_kernel<<<elementwise_blocks(N), kThreads, 0, stream>>>(out, a, b, N);
  check_launch("residual_forward");
}

void residual_backward(cudaStream_t stream, float* da, float* db, const float* dout, size_t N) {
  if (N == 0) return;
  residual_backward_kernel<<<elementwise_blocks(N), kThreads, 0, stream>>>(da, db, dout, N);
  check_launch("residual_backward");
}

// ---------------------------------------------------------------------------
// Softmax cross-entropy
// ---------------------------------------------------------------------------

namespace {

// probs (N,V) = softmax(logits); losses (N) = log(sum) - (logit[target] - max). One block
// per row. probs may alias logits: each thread reads and writes only its own columns,
// and the target's logit is read by all before the first barrier (inside the max),
// so before any thread writes.
__global__ void softmax_crossentropy_forward_kernel(float* losses, float* probs, const float* logits,
                                                    const int32_t* targets, int V) {
  const uint64_t n = blockIdx.x;
  const float* z = logits + n * V;
  float* p = probs + n * V;
  const float target_logit = z[targets[n]];
  float local_max = -INFINITY;
  for (int v = threadIdx.x; v < V; v += blockDim.x) local_max = fmaxf(local_max, z[v]);
  const float maxval = block_reduce(local_max, Max{}, -INFINITY);
  float local_sum = 0.0f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    const float e = expf(z[v] - maxval);
    p[v] = e;
    local_sum += e;
  }
  const float total = block_reduce(local_sum, Sum{}, 0.0f);
  if (threadIdx.x == 0) losses[n] = logf(total) - (target_logit - maxval);
  const float inv_sum = 1.0f / total;
  for (int v = threadIdx.x; v < V; v += blockDim.x) p[v] *= inv_sum;
}

// dlogits (N,V) = dloss * (probs - onehot(target)), written; dlogits may alias probs
// (each element is read and written by the same thread).
__global__ void softmax_crossentropy_backward_kernel(float* dlogits, const float* probs, const int32_t* targets,
                                                     float dloss, int N, int V) {
  const uint64_t total = uint64_t{1} * N * V;
  for (uint64_t e = global_thread(); e < total; e += global_thread_count()) {
    const uint64_t n = e / V;
    const float indicator = static_cast<int64_t>(e % V) == targets[n] ? 1.0f : 0.0f;
    dlogits[e] = dloss * (probs[e] - indicator);
  }
}

}  // namespace

void softmax_crossentropy_forward(cudaStream_t stream, float* losses, float* probs, const float* logits,
                                  const int32_t* targets, int N, int V) {
  if (N == 0 || V == 0) return;
  softmax_crossentropy_forward_kernel<<<N, kThreads, 0, stream>>>(losses, probs, logits, targets, V);
  check_launch("softmax_crossentropy_forward");
}

void softmax_crossentropy_backward(cudaStream_t stream, float* dlogits, const float* probs, const int32_t* targets,
                                   float dloss, int N, int V) {
  const uint64_t total = uint64_t{1} * N * V;
  if (total == 0) return;
  softmax_crossentropy_backward_kernel<<<elementwise_blocks(total), kThreads, 0, stream>>>(dlogits, probs, targets,
                                                                                           dloss, N, V);
  check_launch("softmax_crossentropy_backward");
}

// ---------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------

namespace {

// The bias corrections 1 - beta^t are computed once on the host, as on the CPU.
__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, uint64_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float correction1, float correction2) {
  for (uint64_t i = global_thread(); i < n; i += global_thread_count()) {
    const float g = grads[i];
    const float m_i = beta1 * m[i] + (1.0f - beta1) * g;
    const float v_i = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = m_i;
    v[i] = v_i;
    const float m_hat = m_i / correction1;
    const float v_hat = v_i / correction2;
    params[i] -= lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * params[i]);
  }
}

}  // namespace

void adamw_update(cudaStream_t stream, float* params, const float* grads, float* m, float* v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t) {
  if (n == 0) return;
  const float correction1 = 1.0f - std::pow(beta1, static_cast<float>(t));
  const float correction2 = 1.0f - std::pow(beta2, static_cast<float>(t));
  adamw_kernel<<<elementwise_blocks(n), kThreads, 0, stream>>>(params, grads, m, v, n, lr, beta1, beta2, eps,
                                                                weight_decay, correction1, correction2);
  check_launch("adamw_update");
}

}  // namespace memfront::cuda
