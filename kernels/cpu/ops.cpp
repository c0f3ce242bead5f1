#include "kernels/cpu/ops.h"

#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/annotate.h"
#include "core/closed_forms.h"
#include "kernels/cpu/isa.h"

namespace memfront::cpu {

// Each op opens an annotation range named after itself: an NVTX range for
// Nsight and CUPTI, and an event for memfront's own probes. It costs a few
// nanoseconds against the microseconds an op takes.

// ---------------------------------------------------------------------------
// Vectorizable math. glibc's expf and tanhf are scalar calls (about 20 ns an
// element for GELU here), and a single running sum cannot be vectorized
// without reordering it. These helpers are plain arithmetic the compiler turns
// into SIMD code at -O2/-O3 with no fast-math flag, and they are deterministic:
// the same inputs give the same bits on every call.
// ---------------------------------------------------------------------------

namespace {

// exp(x) within 2 ulp: x = k ln2 + r with |r| <= ln2/2, exp(r) by a degree-6
// polynomial, and 2^k written straight into the exponent bits. Inputs are
// clamped to where the result is a normal float (below -87.3 it returns
// ~1e-38, not 0 or a denormal), which is all softmax and tanh need.
MEMFRONT_CPU_INLINE float exp_fast(float x) {
  x = std::min(std::max(x, -87.3f), 88.3f);
  // Round x / ln2 to the nearest integer by adding and removing 1.5 * 2^23.
  const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  // r = x - k ln2, with ln2 split in two so the product is exact (Cody-Waite).
  const float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;  // Taylor-like minimax coefficients of exp(r)
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

// tanh(u) = 1 - 2 / (exp(2u) + 1): saturates cleanly to +-1, and near 0 its
// absolute error stays at float rounding (~6e-8), which is what GELU adds it to.
MEMFRONT_CPU_INLINE float tanh_fast(float u) { return 1.0f - 2.0f / (exp_fast(2.0f * u) + 1.0f); }

// Sums with eight independent partial sums (one SIMD register of lanes), then
// the lanes in a fixed order: vectorizable, and deterministic.
constexpr int kLanes = 8;

MEMFRONT_CPU_INLINE float lane_total(const float (&lanes)[kLanes]) {
  float total = 0.0f;
  for (int l = 0; l < kLanes; l++) total += lanes[l];
  return total;
}

MEMFRONT_CPU_INLINE float sum(const float* x, int n) {
  float lanes[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; l++) lanes[l] += x[i + l];
  }
  float total = lane_total(lanes);
  for (; i < n; i++) total += x[i];
  return total;
}

// Sum of a[i] * b[i].
MEMFRONT_CPU_INLINE float dot(const float* a, const float* b, int n) {
  float lanes[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; l++) lanes[l] += a[i + l] * b[i + l];
  }
  float total = lane_total(lanes);
  for (; i < n; i++) total += a[i] * b[i];
  return total;
}

// Sum of (x[i] - centre)^2.
MEMFRONT_CPU_INLINE float centred_squares(const float* x, float centre, int n) {
  float lanes[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; l++) lanes[l] += (x[i + l] - centre) * (x[i + l] - centre);
  }
  float total = lane_total(lanes);
  for (; i < n; i++) total += (x[i] - centre) * (x[i] - centre);
  return total;
}

}  // namespace

// ---------------------------------------------------------------------------
// Embedding
// ---------------------------------------------------------------------------

// out (B,T,C) = wte[tokens[b,t]] (V,C) + wpe[t] (T,C).
MEMFRONT_CPU_KERNEL
void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                       int B, int T, int C) {
  annotate::Range range("embedding_forward");
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      float* out_bt = out + (static_cast<size_t>(b) * T + t) * C;
      const float* wte_row = wte + static_cast<size_t>(tokens[b * T + t]) * C;
      const float* wpe_row = wpe + static_cast<size_t>(t) * C;
      for (int i = 0; i < C; i++) out_bt[i] = wte_row[i] + wpe_row[i];
    }
  }
}

// dwte (V,C) += dout rows at their tokens; dwpe (T,C) += dout rows at their positions.
// A token that occurs several times collects the sum of its rows.
MEMFRONT_CPU_KERNEL
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                        int B, int T, int C) {
  annotate::Range range("embedding_backward");
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      const float* dout_bt = dout + (static_cast<size_t>(b) * T + t) * C;
      float* dwte_row = dwte + static_cast<size_t>(tokens[b * T + t]) * C;
      float* dwpe_row = dwpe + static_cast<size_t>(t) * C;
      for (int i = 0; i < C; i++) {
        dwte_row[i] += dout_bt[i];
        dwpe_row[i] += dout_bt[i];
      }
    }
  }
}

// ---------------------------------------------------------------------------
// LayerNorm
// ---------------------------------------------------------------------------

// out (N,C) = (inp - mean) * rstd * weight (C) + bias (C); mean, rstd (N) saved.
MEMFRONT_CPU_KERNEL
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C) {
  annotate::Range range("layernorm_forward");
  const float eps = 1e-5f;
  for (int n = 0; n < N; n++) {
    const float* x = inp + static_cast<size_t>(n) * C;
    float* y = out + static_cast<size_t>(n) * C;
    const float m = sum(x, C) / C;
    // Variance from the centred values: more accurate than E[x^2] - m^2.
    const float s = 1.0f / std::sqrt(centred_squares(x, m, C) / C + eps);
    for (int i = 0; i < C; i++) y[i] = (x[i] - m) * s * weight[i] + bias[i];
    mean[n] = m;
    rstd[n] = s;
  }
}

// With norm = (x - mean) * rstd and dnorm = weight * dout, per row:
// dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm));
// dweight += norm * dout; dbias += dout.
MEMFRONT_CPU_KERNEL
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean,
                        const float* rstd, int N, int C) {
  annotate::Range range("layernorm_backward");
  for (int n = 0; n < N; n++) {
    const float* x = inp + static_cast<size_t>(n) * C;
    const float* dy = dout + static_cast<size_t>(n) * C;
    float* dx = dinp + static_cast<size_t>(n) * C;
    const float m = mean[n];
    const float s = rstd[n];
    // Both row sums in lanes, as sum() keeps them: vectorizable.
    float dnorm_lanes[kLanes] = {}, dnorm_norm_lanes[kLanes] = {};
    int i = 0;
    for (; i + kLanes <= C; i += kLanes) {
      for (int l = 0; l < kLanes; l++) {
        const float norm = (x[i + l] - m) * s;
        const float dnorm = weight[i + l] * dy[i + l];
        dnorm_lanes[l] += dnorm;
        dnorm_norm_lanes[l] += dnorm * norm;
      }
    }
    float dnorm_mean = lane_total(dnorm_lanes);
    float dnorm_norm_mean = lane_total(dnorm_norm_lanes);
    for (; i < C; i++) {
      const float norm = (x[i] - m) * s;
      const float dnorm = weight[i] * dy[i];
      dnorm_mean += dnorm;
      dnorm_norm_mean += dnorm * norm;
    }
    dnorm_mean /= C;
    dnorm_norm_mean /= C;
    // Two loops, not one: a loop that writes three arrays which might overlap
    // its inputs needs more run-time overlap checks than GCC makes, and stays scalar.
    for (int i = 0; i < C; i++) {
      const float norm = (x[i] - m) * s;
      const float dnorm = weight[i] * dy[i];
      dx[i] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
    }
    for (int i = 0; i < C; i++) {
      const float norm = (x[i] - m) * s;
      dbias[i] += dy[i];
      dweight[i] += norm * dy[i];
    }
  }
}

// ---------------------------------------------------------------------------
// Matmul (fully connected layer)
// ---------------------------------------------------------------------------

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC).
// With a bias, out starts as the bias rows and the GEMM adds into it (beta = 1):
// with beta = 0 OpenBLAS would first zero out in a pass of its own, and the bias
// would take another, read-modify-write, pass after it.
MEMFRONT_CPU_KERNEL
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                    int N, int C, int OC) {
  annotate::Range range("matmul_forward");
  if (bias != nullptr) {
    for (int n = 0; n < N; n++) std::memcpy(out + static_cast<size_t>(n) * OC, bias, sizeof(float) * OC);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C,
              bias != nullptr ? 1.0f : 0.0f, out, OC);
}

// dinp (N,C) += dout (N,OC) @ weight (OC,C); dweight (OC,C) += dout^T @ inp (N,C);
// dbias (OC) += column sums of dout. beta = 1 makes the GEMMs accumulate.
MEMFRONT_CPU_KERNEL
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int C, int OC) {
  annotate::Range range("matmul_backward");
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C,
              1.0f, dinp, C);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
              dweight, C);
  if (dbias == nullptr) return;
  for (int n = 0; n < N; n++) {
    const float* row = dout + static_cast<size_t>(n) * OC;
    for (int o = 0; o < OC; o++) dbias[o] += row[o];
  }
}

// ---------------------------------------------------------------------------
// Attention
//
// Per (batch, head), as matrix products through the BLAS, with the causal mask
// and the softmax between them, row by row:
//   forward   S = scale Q K^T (T x T);  P = causal softmax of S's rows;  O = P V
//   backward  dV += P^T dO;  dP = dO V^T;  dS = P o (dP - rowsum(P o dP)) scale;
//             dQ += dS K;  dK += dS^T Q
// Q, K, V, dQ, dK, dV are head slices of the qkv rows (leading dimension 3C),
// O and dO of the out rows (C). The products run over whole T x T squares: the
// entries above the diagonal are computed and then masked (P is zero there), a
// BLAS product being many times faster than the loops over the causal half.
//
// Top-K attention computes S the same way, selects on each score row, and
// scatters its kept softmax weights back into a T x T row of zeros: from there
// on it runs the dense products on that P. With K >= T it keeps every causal
// key, its P is the dense P, so its results are bitwise the dense ones.
// ---------------------------------------------------------------------------

namespace {

// In place: x (n) = softmax(x). Subtracting the max keeps exp from overflowing.
MEMFRONT_CPU_INLINE void softmax_inplace(float* x, int n) {
  float maxval = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < n; i++) maxval = std::max(maxval, x[i]);
  for (int i = 0; i < n; i++) x[i] = exp_fast(x[i] - maxval);
  const float inv_sum = 1.0f / sum(x, n);
  for (int i = 0; i < n; i++) x[i] *= inv_sum;
}

// Top-K's order on scores (ops.h, attention_topk_forward) as unsigned integers
// that compare like it: NaN is made -inf and -0 is made +0 (adding +0 does
// that), then negative floats have every bit flipped and the others their sign
// bit set. Branch-free, so a loop of it is SIMD code.
MEMFRONT_CPU_INLINE uint32_t selection_rank(float score) {
  const float key = std::isnan(score) ? -std::numeric_limits<float>::infinity() : score + 0.0f;
  const uint32_t bits = std::bit_cast<uint32_t>(key);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

// One query's ranks are kept in float scratch; memcpy moves the bits without
// breaking C++'s aliasing rules and compiles to plain loads and stores.
MEMFRONT_CPU_INLINE void store_bits(float* slot, uint32_t bits) { std::memcpy(slot, &bits, sizeof bits); }
MEMFRONT_CPU_INLINE uint32_t load_bits(const float* slot) {
  uint32_t bits;
  std::memcpy(&bits, slot, sizeof bits);
  return bits;
}

// The n-th largest of the ranks in slots[0..count), 1 <= n <= count, found one bit
// at a time from the top (kernels/cuda/attention.cu does the same per warp): a bit
// is 1 in it when at least the `wanted` still to find share the bits decided so
// far with that bit 1. Once the ranks that share the decided bits (candidates) are
// exactly the ones wanted, it is the least of them: for distinct scores that comes
// after about log2(count) bits, not 32. Each pass is a count or a minimum over the
// row, which the compiler makes SIMD code without per-element branches.
MEMFRONT_CPU_INLINE uint32_t nth_largest_rank(const float* slots, int count, int n) {
  uint32_t prefix = 0;
  uint32_t decided = 0;  // the bits of prefix fixed so far
  int wanted = n;
  int candidates = count;
  for (int bit = 31; bit >= 0 && candidates > wanted; bit--) {
    const uint32_t with_one = prefix | (1u << bit);
    const uint32_t mask = decided | (1u << bit);
    int matches = 0;
    for (int j = 0; j < count; j++) matches += (load_bits(slots + j) & mask) == with_one;
    if (matches >= wanted) {
      prefix = with_one;
      candidates = matches;
    } else {
      wanted -= matches;
      candidates -= matches;
    }
    decided = mask;
  }
  uint32_t least = std::numeric_limits<uint32_t>::max();
  for (int j = 0; j < count; j++) {
    const uint32_t rank = load_bits(slots + j);
    least = std::min(least, (rank & decided) == prefix ? rank : std::numeric_limits<uint32_t>::max());
  }
  return least;
}

// The n kept keys of one query's scores (count of them, n < count), by the
// rule of ops.h: every key ranked above the n-th largest rank, then of the keys
// tied with it the lowest-indexed, n in all. Writes their positions, ascending,
// to ix[0..n); slots (count floats of scratch) holds the ranks meanwhile.
MEMFRONT_CPU_INLINE void select_top_keys(uint16_t* ix, float* slots, const float* scores, int count, int n) {
  for (int j = 0; j < count; j++) store_bits(slots + j, selection_rank(scores[j]));
  const uint32_t threshold = nth_largest_rank(slots, count, n);
  int above = 0;
  for (int j = 0; j < count; j++) above += load_bits(slots + j) > threshold;
  // Compacted in place and without branches: position `kept` is written every
  // time and advanced only past a kept key; it never passes j, whose rank has
  // been read by then.
  int ties_left = n - above;
  int kept = 0;
  for (int j = 0; j < count; j++) {
    const uint32_t rank = load_bits(slots + j);
    const bool tie = rank == threshold;
    const bool keep = rank > threshold || (tie && ties_left > 0);
    ties_left -= tie;
    store_bits(slots + kept, static_cast<uint32_t>(j));
    kept += keep;
  }
  for (int s = 0; s < n; s++) ix[s] = static_cast<uint16_t>(load_bits(slots + s));
}

// Where head h of batch b lives: its q, k, v slices in the qkv rows (3C) and
// its slice of the out rows (C).
struct Head {
  Head(const float* qkv, int b, int h, int T, int C, int NH)
      : hs(C / NH),
        qkv_offset(static_cast<size_t>(b) * T * 3 * C + static_cast<size_t>(h) * hs),
        out_offset(static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * hs),
        q(qkv + qkv_offset),
        k(q + C),
        v(q + 2 * C) {}
  int hs;
  size_t qkv_offset, out_offset;
  const float *q, *k, *v;
};

// scores (T x T) = scale * Q K^T.
MEMFRONT_CPU_INLINE void head_scores(float* scores, const Head& head, int T, int C) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(head.hs));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, head.hs, scale, head.q, 3 * C, head.k,
              3 * C, 0.0f, scores, T);
}

// out = P V: P (T x T) zero wherever a key is not attended.
MEMFRONT_CPU_INLINE void head_output(float* out, const float* p, const Head& head, int T, int C) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, head.hs, T, 1.0f, p, T, head.v, 3 * C,
              0.0f, out + head.out_offset, C);
}

// The backward of one head from its P (T x T, zero wherever a key is not
// attended); dp: T x T scratch. Adds into the head's slices of dqkv.
MEMFRONT_CPU_INLINE void head_backward(float* dqkv, const float* dout, const float* p, float* dp,
                                       const Head& head, int T, int C) {
  const int hs = head.hs;
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  float* dq = dqkv + head.qkv_offset;
  float* dk = dq + C;
  float* dv = dq + 2 * C;
  const float* dout_h = dout + head.out_offset;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, p, T, dout_h, C, 1.0f, dv, C3);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dout_h, C, head.v, C3, 0.0f, dp, T);
  // dS over the causal entries; above the diagonal P is 0, so dS is too.
  for (int t = 0; t < T; t++) {
    const float* p_t = p + static_cast<size_t>(t) * T;
    float* ds_t = dp + static_cast<size_t>(t) * T;
    const float weighted = dot(p_t, ds_t, t + 1);
    for (int j = 0; j <= t; j++) ds_t[j] = p_t[j] * (ds_t[j] - weighted) * scale;
    for (int j = t + 1; j < T; j++) ds_t[j] = 0.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T, head.k, C3, 1.0f, dq, C3);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T, head.q, C3, 1.0f, dk, C3);
}

// Top-K's P row of query t: its n kept weights at their keys, zeros elsewhere.
MEMFRONT_CPU_INLINE void scatter_kept(float* p_t, const float* val, const uint16_t* ix, int n, int T) {
  for (int j = 0; j < T; j++) p_t[j] = 0.0f;
  for (int s = 0; s < n; s++) p_t[ix[s]] = val[s];
}

}  // namespace

// qkv (B,T,3C) -> out (B,T,C); probs (B,NH,T,T): each row the softmax of the
// query's causal scores, zero for t2 > t.
MEMFRONT_CPU_KERNEL
void attention_forward(float* out, float* probs, const float* qkv, int B, int T, int C, int NH) {
  annotate::Range range("attention_forward");
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const Head head(qkv, b, h, T, C, NH);
      float* p = probs + (static_cast<size_t>(b) * NH + h) * T * T;
      head_scores(p, head, T, C);
      for (int t = 0; t < T; t++) {
        float* p_t = p + static_cast<size_t>(t) * T;
        softmax_inplace(p_t, t + 1);
        for (int t2 = t + 1; t2 < T; t2++) p_t[t2] = 0.0f;
      }
      head_output(out, p, head, T, C);
    }
  }
}

size_t attention_scratch_floats(int T) { return static_cast<size_t>(T) * T; }

// dqkv (B,T,3C) +=; dout (B,T,C); probs (B,NH,T,T); scratch: dP (T x T).
MEMFRONT_CPU_KERNEL
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* probs,
                        float* scratch, int B, int T, int C, int NH) {
  annotate::Range range("attention_backward");
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const Head head(qkv, b, h, T, C, NH);
      head_backward(dqkv, dout, probs + (static_cast<size_t>(b) * NH + h) * T * T, scratch, head, T, C);
    }
  }
}

// One head's P (T x T), and beside it one query's selection ranks and kept
// keys (forward) or dP (backward).
size_t attention_topk_scratch_floats(int T) { return static_cast<size_t>(2) * T * T; }

// qkv (B,T,3C) -> out (B,T,C); vals, idx (B,NH,T,K).
// Query t keeps n = min(K, t+1) causal keys (ops.h says which), in ascending key
// order; softmax runs over them only.
// K >= 1: dense attention (the knob's 0) is attention_forward.
MEMFRONT_CPU_KERNEL
void attention_topk_forward(float* out, float* vals, uint16_t* idx, const float* qkv,
                            float* scratch, int B, int T, int C, int NH, int K) {
  annotate::Range range("attention_topk_forward");
  float* p = scratch;                                   // the head's scores, then its P (T x T)
  float* slots = scratch + static_cast<size_t>(T) * T;  // one query's ranks, then its kept keys (t+1)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const Head head(qkv, b, h, T, C, NH);
      head_scores(p, head, T, C);
      for (int t = 0; t < T; t++) {
        float* scores = p + static_cast<size_t>(t) * T;
        const int count = t + 1;
        const int n = std::min(K, count);
        const size_t row = ((static_cast<size_t>(b) * NH + h) * T + t) * K;
        float* val = vals + row;
        uint16_t* ix = idx + row;
        if (n == count) {  // every causal key fits
          for (int t2 = 0; t2 < count; t2++) ix[t2] = static_cast<uint16_t>(t2);
        } else {
          select_top_keys(ix, slots, scores, count, n);
        }
        for (int s = 0; s < n; s++) val[s] = scores[ix[s]];
        softmax_inplace(val, n);
        for (int s = n; s < K; s++) {
          ix[s] = 0;
          val[s] = 0.0f;
        }
        scatter_kept(scores, val, ix, n, T);
      }
      head_output(out, p, head, T, C);
    }
  }
}

// dqkv (B,T,3C) +=; dout (B,T,C); vals, idx (B,NH,T,K) as saved by forward.
MEMFRONT_CPU_KERNEL
void attention_topk_backward(float* dqkv, const float* dout, const float* qkv, const float* vals,
                             const uint16_t* idx, float* scratch, int B, int T, int C, int NH,
                             int K) {
  annotate::Range range("attention_topk_backward");
  float* p = scratch;
  float* dp = scratch + static_cast<size_t>(T) * T;
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const Head head(qkv, b, h, T, C, NH);
      for (int t = 0; t < T; t++) {
        const size_t row = ((static_cast<size_t>(b) * NH + h) * T + t) * K;
        scatter_kept(p + static_cast<size_t>(t) * T, vals + row, idx + row, std::min(K, t + 1), T);
      }
      head_backward(dqkv, dout, p, dp, head, T, C);
    }
  }
}

// ---------------------------------------------------------------------------
// GELU (tanh approximation)
// ---------------------------------------------------------------------------

namespace {
const float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)
const float kGeluCubic = 0.044715f;
}  // namespace

// out (N) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
MEMFRONT_CPU_KERNEL
void gelu_forward(float* out, const float* inp, size_t N) {
  annotate::Range range("gelu_forward");
  for (size_t i = 0; i < N; i++) {
    const float x = inp[i];
    const float u = kGeluScale * (x + kGeluCubic * x * x * x);
    out[i] = 0.5f * x * (1.0f + tanh_fast(u));
  }
}

// dinp (N) += gelu'(x) dout, with
// gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
MEMFRONT_CPU_KERNEL
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t N) {
  annotate::Range range("gelu_backward");
  for (size_t i = 0; i < N; i++) {
    const float x = inp[i];
    const float u = kGeluScale * (x + kGeluCubic * x * x * x);
    const float th = tanh_fast(u);
    const float du_dx = kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
    const float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du_dx;
    dinp[i] += grad * dout[i];
  }
}

// ---------------------------------------------------------------------------
// Residual
// ---------------------------------------------------------------------------

// out (N) = a + b.
MEMFRONT_CPU_KERNEL
void residual_forward(float* out, const float* a, const float* b, size_t N) {
  for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

// da, db (N) += dout.
MEMFRONT_CPU_KERNEL
void residual_backward(float* da, float* db, const float* dout, size_t N) {
  for (size_t i = 0; i < N; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

// ---------------------------------------------------------------------------
// Softmax cross-entropy
// ---------------------------------------------------------------------------

// probs (N,V) = softmax(logits (N,V)); losses (N) = -log probs[target].
// The loss is taken as log(sum) - (logit[target] - max), which equals -log probs[target]
// but stays finite when probs[target] underflows to 0. It is computed before probs is
// written, since probs may alias logits.
MEMFRONT_CPU_KERNEL
void softmax_crossentropy_forward(float* losses, float* probs, const float* logits,
                                  const int32_t* targets, int N, int V) {
  annotate::Range range("softmax_crossentropy_forward");
  for (int n = 0; n < N; n++) {
    const float* z = logits + static_cast<size_t>(n) * V;
    float* p = probs + static_cast<size_t>(n) * V;
    float maxval = -std::numeric_limits<float>::infinity();
    for (int v = 0; v < V; v++) maxval = std::max(maxval, z[v]);
    // Read the target's logit before p (which may alias z) is written.
    const float target_logit = z[targets[n]];
    for (int v = 0; v < V; v++) p[v] = exp_fast(z[v] - maxval);
    const float total = sum(p, V);
    losses[n] = std::log(total) - (target_logit - maxval);
    const float inv_sum = 1.0f / total;
    for (int v = 0; v < V; v++) p[v] *= inv_sum;
  }
}

// dlogits (N,V) = dloss * (probs - onehot(target)), written.
MEMFRONT_CPU_KERNEL
void softmax_crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets,
                                   float dloss, int N, int V) {
  annotate::Range range("softmax_crossentropy_backward");
  for (int n = 0; n < N; n++) {
    const float* p = probs + static_cast<size_t>(n) * V;
    float* d = dlogits + static_cast<size_t>(n) * V;
    for (int v = 0; v < V; v++) {
      const float indicator = v == targets[n] ? 1.0f : 0.0f;
      d[v] = dloss * (p[v] - indicator);
    }
  }
}

// ---------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------

MEMFRONT_CPU_KERNEL
void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t) {
  annotate::Range range("adamw_update");
  const float correction1 = 1.0f - std::pow(beta1, static_cast<float>(t));
  const float correction2 = 1.0f - std::pow(beta2, static_cast<float>(t));
  for (size_t i = 0; i < n; i++) {
    const float g = grads[i];
    m[i] = beta1 * m[i] + (1.0f - beta1) * g;
    v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
    const float m_hat = m[i] / correction1;
    const float v_hat = v[i] / correction2;
    params[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * params[i]);
  }
}

// ---------------------------------------------------------------------------
// FLOP counts: the closed forms of core/closed_forms.h, which the cost model
// and the calibration share. Matmul counts the GEMMs only (bias adds and bias
// column sums are left out); attention its products over the causal entries it
// touches, softmax and exp left out:
//   forward:  q.k and p*v                          -> 2 products per entry
//   backward: dout.v, p*dout, ds*k, ds*q           -> 4 products per entry
// Top-K computes every causal score (to select), then works on its min(K, t+1)
// kept keys only; backward reuses the saved weights, so it touches kept keys only.
// ---------------------------------------------------------------------------

double matmul_forward_flops(int N, int C, int OC) { return memfront::matmul_forward_flops(N, C, OC); }
double matmul_backward_flops(int N, int C, int OC) { return memfront::matmul_backward_flops(N, C, OC); }
double attention_forward_flops(int B, int T, int C, int /*NH*/) { return memfront::attention_forward_flops(B, T, C); }
double attention_backward_flops(int B, int T, int C, int /*NH*/) { return memfront::attention_backward_flops(B, T, C); }
double attention_topk_forward_flops(int B, int T, int C, int /*NH*/, int K) {
  return memfront::attention_topk_forward_flops(B, T, C, K);
}
double attention_topk_backward_flops(int B, int T, int C, int /*NH*/, int K) {
  return memfront::attention_topk_backward_flops(B, T, C, K);
}

}  // namespace memfront::cpu
