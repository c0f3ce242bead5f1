// Causal multi-head attention, dense and Top-K, as in kernels/cpu/ops.h: one warp
// per query (forward, and the query half of backward) or per key (the key half of
// backward). hs = C / NH; query t of head h of sequence b is "row"
// (b*NH + h)*T + t of probs (B,NH,T,T) and of vals, idx (B,NH,T,K).
//
// Dense and Top-K share every step: a query's kept keys are positions 0..t
// (dense) or idx[0..n) (Top-K), in ascending key order either way, so with
// K >= T Top-K does exactly the dense arithmetic and gives the same bits.
//
// Scores are computed with the CPU's dot product order and without fused
// multiply-adds, so that they are the CPU's bits and Top-K selects the same keys
// as the CPU even where two scores nearly tie. Softmax and the sums over keys
// use warp reductions (within float rounding of the CPU).
//
// Backward without atomics, in two passes:
//   queries: dval_j = dout_t . v_j, weighted_t = sum_j p_j dval_j (saved in
//            scratch), dq_t += sum_j ds_j k_j * scale, ds_j = p_j (dval_j - weighted_t);
//   keys:    for each query t that kept key j (ascending t, as the CPU adds them):
//            dv_j += p dout_t, dk_j += ds q_t * scale, with dval recomputed.
// Each dq, dk and dv element has one owner thread.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/launchers.h"

namespace memfront::cuda {

namespace {

// Where a query or key of a (b, h) lives in qkv (B,T,3C).
struct HeadView {
  const float* qkv_b;  // sequence b: T rows of 3C
  float* dqkv_b;       // the same rows of dqkv (backward), or null
  uint64_t C3;         // row stride
  int q_off;           // column of head h's q slice: h*hs; k at C + h*hs, v at 2C + h*hs
  int k_off;
  int v_off;
  int hs;

  __device__ const float* q(uint64_t t) const { return qkv_b + t * C3 + q_off; }
  __device__ const float* k(uint64_t t) const { return qkv_b + t * C3 + k_off; }
  __device__ const float* v(uint64_t t) const { return qkv_b + t * C3 + v_off; }
  __device__ float* dq(uint64_t t) const { return dqkv_b + t * C3 + q_off; }
  __device__ float* dk(uint64_t t) const { return dqkv_b + t * C3 + k_off; }
  __device__ float* dv(uint64_t t) const { return dqkv_b + t * C3 + v_off; }
};

// The query row of this warp: row = (b*NH + h)*T + t.
struct QueryRow {
  uint64_t row;
  uint64_t bh;
  int b;
  int h;
  int t;
};

__device__ QueryRow query_row(uint64_t row, int T, int NH) {
  const uint64_t bh = row / T;
  return {row, bh, static_cast<int>(bh / NH), static_cast<int>(bh % NH), static_cast<int>(row % T)};
}

__device__ HeadView head_view(const float* qkv, float* dqkv, int b, int h, int T, int C, int NH) {
  const int hs = C / NH;
  const uint64_t C3 = uint64_t{3} * C;
  const uint64_t offset = static_cast<uint64_t>(b) * T * C3;
  return {qkv + offset, dqkv != nullptr ? dqkv + offset : nullptr, C3, h * hs, C + h * hs, 2 * C + h * hs, hs};
}

// a . b (n) in the order of kernels/cpu/ops.cpp dot(): eight running sums over the
// elements i = l (mod 8), added up in lane order, then the leftover tail; each
// product and sum rounded on its own (the _rn intrinsics are never fused).
__device__ float dot_like_cpu(const float* a, const float* b, int n) {
  constexpr int kLanes = 8;
  float lanes[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; l++) lanes[l] = __fadd_rn(lanes[l], __fmul_rn(a[i + l], b[i + l]));
  }
  float total = 0.0f;
  for (int l = 0; l < kLanes; l++) total = __fadd_rn(total, lanes[l]);
  for (; i < n; i++) total = __fadd_rn(total, __fmul_rn(a[i], b[i]));
  return total;
}

// row[t2] = q_t . k_t2 * scale for the keys t2 < count; lane l computes keys l, l+32, ...
__device__ void causal_scores(float* row, const HeadView& view, int t, int count, float scale) {
  const float* q = view.q(t);
  for (int t2 = lane_id(); t2 < count; t2 += kWarpSize) row[t2] = __fmul_rn(dot_like_cpu(q, view.k(t2), view.hs), scale);
}

// In place: row (n) = softmax(row), by the warp; the same lanes touch the same
// entries as causal_scores. Ends with the row visible to the whole warp.
__device__ void warp_softmax(float* row, int n) {
  const int lane = lane_id();
  float local_max = -INFINITY;
  for (int j = lane; j < n; j += kWarpSize) local_max = fmaxf(local_max, row[j]);
  const float maxval = warp_reduce(local_max, Max{});
  float local_sum = 0.0f;
  for (int j = lane; j < n; j += kWarpSize) {
    const float e = expf(row[j] - maxval);
    row[j] = e;
    local_sum += e;
  }
  const float inv_sum = 1.0f / warp_reduce(local_sum, Sum{});
  for (int j = lane; j < n; j += kWarpSize) row[j] *= inv_sum;
  __syncwarp();
}

// Key position of kept entry j: idx[j], or j itself when idx is null (dense).
__device__ int kept_key(const uint16_t* idx, int j) { return idx != nullptr ? idx[j] : j; }

// out (hs) = sum_j p_j v_(key j) over the n kept keys in ascending order; lanes own
// output dimensions.
__device__ void weighted_values(float* out, const float* p, const uint16_t* idx, int n, const HeadView& view) {
  for (int i = lane_id(); i < view.hs; i += kWarpSize) {
    float acc = 0.0f;
    for (int j = 0; j < n; j++) acc += p[j] * view.v(kept_key(idx, j))[i];
    out[i] = acc;
  }
}

// ---- Top-K selection ------------------------------------------------------

// The selection rule is kernels/cpu/ops.h's (attention_topk_forward). Its order as
// uint32: NaN made -inf and -0 made +0, then negative floats flipped entirely and
// the others' sign bit set, which orders them like the floats.
__device__ uint32_t rank_bits(float score) {
  float key = isnan(score) ? -INFINITY : score;
  if (key == 0.0f) key = 0.0f;
  const uint32_t bits = __float_as_uint(key);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

// The n-th largest rank among scores[0..count), 1 <= n <= count, decided one bit at
// a time from the top: keep the 1 branch while it holds at least the n still wanted.
__device__ uint32_t nth_largest_rank(const float* scores, int count, int n) {
  uint32_t prefix = 0;
  uint32_t decided = 0;  // the bits of prefix fixed so far
  int wanted = n;
  for (int bit = 31; bit >= 0; bit--) {
    const uint32_t with_one = prefix | (1u << bit);
    const uint32_t mask = decided | (1u << bit);
    int matches = 0;
    for (int j = lane_id(); j < count; j += kWarpSize) matches += (rank_bits(scores[j]) & mask) == with_one;
    matches = warp_reduce(matches, Sum{});
    if (matches >= wanted) {
      prefix = with_one;
    } else {
      wanted -= matches;
    }
    decided = mask;
  }
  return prefix;
}

// Writes the n kept keys of scores[0..count) into ix (their positions) and val (their
// scores), in ascending key order: every key ranked above the n-th largest, then of
// the keys tied with it the lowest-indexed ones, which make n in all. With n == count
// every key is kept.
__device__ void keep_top_keys(float* val, uint16_t* ix, const float* scores, int count, int n) {
  const bool keep_all = n == count;
  uint32_t threshold = 0;
  int ties_left = 0;
  if (!keep_all) {
    threshold = nth_largest_rank(scores, count, n);
    int above = 0;
    for (int j = lane_id(); j < count; j += kWarpSize) above += rank_bits(scores[j]) > threshold;
    ties_left = n - warp_reduce(above, Sum{});
  }
  int written = 0;
  for (int base = 0; base < count; base += kWarpSize) {
    const int j = base + lane_id();
    const bool active = j < count;
    const uint32_t rank = active ? rank_bits(scores[j]) : 0;
    const bool tie = active && !keep_all && rank == threshold;
    const unsigned ties = __ballot_sync(kFullWarp, tie);
    const bool tie_kept = tie && __popc(ties & lanes_below()) < ties_left;
    ties_left -= min(ties_left, __popc(ties));
    const bool kept = active && (keep_all || rank > threshold || tie_kept);
    const unsigned kept_lanes = __ballot_sync(kFullWarp, kept);
    if (kept) {
      const int slot = written + __popc(kept_lanes & lanes_below());
      ix[slot] = static_cast<uint16_t>(j);
      val[slot] = scores[j];
    }
    written += __popc(kept_lanes);
  }
  __syncwarp();
}

// ---- forward --------------------------------------------------------------

// qkv (B,T,3C) -> out (B,T,C), probs (B,NH,T,T): the scores are written into the
// probs row, softmaxed there, and the entries t2 > t zeroed.
__global__ void attention_forward_kernel(float* out, float* probs, const float* qkv, int B, int T, int C, int NH,
                                         float scale) {
  const uint64_t rows = uint64_t{1} * B * NH * T;
  if (global_warp() >= rows) return;
  const QueryRow q = query_row(global_warp(), T, NH);
  const HeadView view = head_view(qkv, nullptr, q.b, q.h, T, C, NH);
  float* p = probs + q.row * T;
  const int count = q.t + 1;
  causal_scores(p, view, q.t, count, scale);
  warp_softmax(p, count);
  for (int t2 = count + lane_id(); t2 < T; t2 += kWarpSize) p[t2] = 0.0f;
  weighted_values(out + (static_cast<uint64_t>(q.b) * T + q.t) * C + view.q_off, p, nullptr, count, view);
}

// qkv (B,T,3C) -> out (B,T,C), vals and idx (B,NH,T,K). The scores of a query sit in
// shared memory (T floats per warp) while its keys are selected.
__global__ void attention_topk_forward_kernel(float* out, float* vals, uint16_t* idx, const float* qkv, int B, int T,
                                              int C, int NH, int K, float scale) {
  extern __shared__ float shared_rows[];
  const uint64_t rows = uint64_t{1} * B * NH * T;
  if (global_warp() >= rows) return;
  float* scores = shared_rows + static_cast<uint64_t>(threadIdx.x / kWarpSize) * T;
  const QueryRow q = query_row(global_warp(), T, NH);
  const HeadView view = head_view(qkv, nullptr, q.b, q.h, T, C, NH);
  const int count = q.t + 1;
  const int n = min(K, count);
  causal_scores(scores, view, q.t, count, scale);
  __syncwarp();
  float* val = vals + q.row * K;
  uint16_t* ix = idx + q.row * K;
  keep_top_keys(val, ix, scores, count, n);
  warp_softmax(val, n);
  for (int s = n + lane_id(); s < K; s += kWarpSize) {
    ix[s] = 0;
    val[s] = 0.0f;
  }
  weighted_values(out + (static_cast<uint64_t>(q.b) * T + q.t) * C + view.q_off, val, ix, n, view);
}

// ---- backward -------------------------------------------------------------

// The saved softmax weights of both forms: query row r kept min(keep, t+1) keys, with
// weights at weights[r * keep ...] and positions at idx (same layout), or 0..t
// when idx is null. keep is T for dense attention (probs rows), K for Top-K.
struct SavedWeights {
  const float* weights;
  const uint16_t* idx;
  int keep;
};

// Query pass: weighted (B,NH,T) = sum_j p_j dval_j, and dq += sum_j ds_j k_j * scale.
// dval_j sits in shared memory (min(keep, T) floats per warp).
__global__ void attention_backward_queries_kernel(float* dqkv, float* weighted, const float* dout, const float* qkv,
                                                  SavedWeights saved, int B, int T, int C, int NH, float scale) {
  extern __shared__ float shared_rows[];
  const uint64_t rows = uint64_t{1} * B * NH * T;
  if (global_warp() >= rows) return;
  const int lane = lane_id();
  float* dval = shared_rows + static_cast<uint64_t>(threadIdx.x / kWarpSize) * min(saved.keep, T);
  const QueryRow q = query_row(global_warp(), T, NH);
  const HeadView view = head_view(qkv, dqkv, q.b, q.h, T, C, NH);
  const int n = min(saved.keep, q.t + 1);
  const float* p = saved.weights + q.row * saved.keep;
  const uint16_t* ix = saved.idx != nullptr ? saved.idx + q.row * saved.keep : nullptr;
  const float* dout_t = dout + (static_cast<uint64_t>(q.b) * T + q.t) * C + view.q_off;

  float local = 0.0f;
  for (int j = lane; j < n; j += kWarpSize) {
    dval[j] = dot_like_cpu(dout_t, view.v(kept_key(ix, j)), view.hs);
    local += p[j] * dval[j];
  }
  const float weighted_t = warp_reduce(local, Sum{});
  if (lane == 0) weighted[q.row] = weighted_t;
  __syncwarp();

  float* dq = view.dq(q.t);
  for (int i = lane; i < view.hs; i += kWarpSize) {
    float acc = 0.0f;
    for (int j = 0; j < n; j++) {
      const float ds = p[j] * (dval[j] - weighted_t) * scale;
      acc += ds * view.k(kept_key(ix, j))[i];
    }
    dq[i] += acc;
  }
}

// Slot of key j among the n ascending kept keys of a Top-K row, or -1.
__device__ int find_kept_slot(const uint16_t* ix, int n, int j) {
  int lo = 0;
  int hi = n;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (ix[mid] < j) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < n && ix[lo] == j ? lo : -1;
}

// Key pass: one warp per key j of (b, h). Lanes look up 32 queries t >= j at a time
// (is key j among those t kept?), then the warp handles the users in ascending t:
// dv_j += p dout_t; dk_j += ds q_t * scale, ds = p (dout_t . v_j - weighted_t).
__global__ void attention_backward_keys_kernel(float* dqkv, const float* weighted, const float* dout, const float* qkv,
                                               SavedWeights saved, int B, int T, int C, int NH, float scale) {
  const uint64_t rows = uint64_t{1} * B * NH * T;
  if (global_warp() >= rows) return;
  const int lane = lane_id();
  const QueryRow key = query_row(global_warp(), T, NH);  // the same (b, h, position) indexing
  const HeadView view = head_view(qkv, dqkv, key.b, key.h, T, C, NH);
  const int j = key.t;
  const float* v_j = view.v(j);
  float* dk = view.dk(j);
  float* dv = view.dv(j);
  for (int base = j; base < T; base += kWarpSize) {
    const int t = base + lane;
    int slot = -1;
    if (t < T) {
      const uint64_t row = key.bh * T + t;
      slot = saved.idx != nullptr ? find_kept_slot(saved.idx + row * saved.keep, min(saved.keep, t + 1), j) : j;
    }
    unsigned users = __ballot_sync(kFullWarp, slot >= 0);
    while (users != 0) {
      const int user_lane = __ffs(users) - 1;
      users &= users - 1;
      const int user_slot = __shfl_sync(kFullWarp, slot, user_lane);
      const int tq = base + user_lane;
      const uint64_t row = key.bh * T + tq;
      const float p = saved.weights[row * saved.keep + user_slot];
      const float* dout_t = dout + (static_cast<uint64_t>(key.b) * T + tq) * C + view.q_off;
      const float* q_t = view.q(tq);
      float local = 0.0f;
      for (int i = lane; i < view.hs; i += kWarpSize) local += dout_t[i] * v_j[i];
      const float dval = warp_reduce(local, Sum{});
      const float ds = p * (dval - weighted[row]) * scale;
      for (int i = lane; i < view.hs; i += kWarpSize) {
        dv[i] += p * dout_t[i];
        dk[i] += ds * q_t[i];
      }
    }
  }
}

// ---- launch helpers -------------------------------------------------------

float attention_scale(int C, int NH) {
  // As on the CPU, so that the scores are the same bits.
  return 1.0f / std::sqrt(static_cast<float>(C / NH));
}

void check_attention_shape(int T, int C, int NH) {
  if (NH < 1 || C % NH != 0) {
    throw std::invalid_argument("attention needs C divisible by NH, got C = " + std::to_string(C) +
                                ", NH = " + std::to_string(NH));
  }
  // Top-K stores key positions as uint16.
  if (T > 65536) throw std::invalid_argument("attention supports T <= 65536, got " + std::to_string(T));
}

// Launch shape of a warp-per-row kernel that keeps `floats_per_warp` floats of
// shared memory per warp: as many warps per block as fit the default 48 KiB, at
// least one (beyond 48 KiB the kernel is allowed more, up to the device's limit).
struct SharedRowLaunch {
  unsigned blocks;
  unsigned threads;
  size_t shared_bytes;
};

template <class Kernel>
SharedRowLaunch shared_row_launch(Kernel kernel, uint64_t rows, size_t floats_per_warp) {
  constexpr size_t kDefaultSharedBytes = 48 * 1024;
  const size_t bytes_per_warp = floats_per_warp * sizeof(float);
  const size_t warps = std::clamp<size_t>(kDefaultSharedBytes / bytes_per_warp, 1, kWarpsPerBlock);
  const size_t shared_bytes = warps * bytes_per_warp;
  if (shared_bytes > kDefaultSharedBytes) {
    MEMFRONT_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes)));
  }
  return {static_cast<unsigned>((rows + warps - 1) / warps), static_cast<unsigned>(warps * kWarpSize), shared_bytes};
}

void attention_backward_rows(cudaStream_t stream, float* dqkv, const float* dout, const float* qkv,
                             SavedWeights saved, float* scratch, int B, int T, int C, int NH) {
  const uint64_t rows = uint64_t{1} * B * NH * T;
  const float scale = attention_scale(C, NH);
  const SharedRowLaunch launch =
      shared_row_launch(attention_backward_queries_kernel, rows, static_cast<size_t>(std::min(saved.keep, T)));
  attention_backward_queries_kernel<<<launch.blocks, launch.threads, launch.shared_bytes, stream>>>(
      dqkv, scratch, dout, qkv, saved, B, T, C, NH, scale);
  check_launch("attention_backward_queries");
  attention_backward_keys_kernel<<<warp_per_row_blocks(rows), kThreads, 0, stream>>>(dqkv, scratch, dout, qkv, saved,
                                                                                     B, T, C, NH, scale);
  check_launch("attention_backward_keys");
}

}  // namespace

// weighted_t of every query, between the two backward passes.
size_t attention_scratch_floats(int B, int T, int NH) { return static_cast<size_t>(B) * NH * T; }

void attention_forward(cudaStream_t stream, float* out, float* probs, const float* qkv, int B, int T, int C, int NH) {
  check_attention_shape(T, C, NH);
  const uint64_t rows = uint64_t{1} * B * NH * T;
  if (rows == 0) return;
  attention_forward_kernel<<<warp_per_row_blocks(rows), kThreads, 0, stream>>>(out, probs, qkv, B, T, C, NH,
                                                                               attention_scale(C, NH));
  check_launch("attention_forward");
}

void attention_backward(cudaStream_t stream, float* dqkv, const float* dout, const float* qkv, const float* probs,
                        float* scratch, int B, int T, int C, int NH) {
  check_attention_shape(T, C, NH);
  if (uint64_t{1} * B * NH * T == 0) return;
  attention_backward_rows(stream, dqkv, dout, qkv, SavedWeights{probs, nullptr, T}, scratch, B, T, C, NH);
}

void attention_topk_forward(cudaStream_t stream, float* out, float* vals, uint16_t* idx, const float* qkv, int B,
                            int T, int C, int NH, int K) {
  check_attention_shape(T, C, NH);
  if (K < 1) throw std::invalid_argument("Top-K attention needs K >= 1, got " + std::to_string(K));
  const uint64_t rows = uint64_t{1} * B * NH * T;
  if (rows == 0) return;
  const SharedRowLaunch launch = shared_row_launch(attention_topk_forward_kernel, rows, static_cast<size_t>(T));
  attention_topk_forward_kernel<<<launch.blocks, launch.threads, launch.shared_bytes, stream>>>(
      out, vals, idx, qkv, B, T, C, NH, K, attention_scale(C, NH));
  check_launch("attention_topk_forward");
}

void attention_topk_backward(cudaStream_t stream, float* dqkv, const float* dout, const float* qkv,
                             const float* vals, const uint16_t* idx, float* scratch, int B, int T, int C, int NH,
                             int K) {
  check_attention_shape(T, C, NH);
  if (K < 1) throw std::invalid_argument("Top-K attention needs K >= 1, got " + std::to_string(K));
  if (uint64_t{1} * B * NH * T == 0) return;
  attention_backward_rows(stream, dqkv, dout, qkv, SavedWeights{vals, idx, K}, scratch, B, T, C, NH);
}

}  // namespace memfront::cuda
