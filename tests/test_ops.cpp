// CPU ops: every backward against finite differences of its forward, the
// accumulate-into-gradients contract, Top-K attention against dense attention and
// against a brute-force selection, the loss, AdamW and the FLOP counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/ops.h"

namespace memfront::cpu {
namespace {

std::vector<float> random_normal(size_t n, std::mt19937& rng, float stddev = 1.0f) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// The scalar objective L = sum(w * out), in double so that the finite differences
// below see only the rounding of out itself.
double weighted_sum(const std::vector<float>& out, const std::vector<float>& w) {
  double sum = 0.0;
  for (size_t i = 0; i < out.size(); i++) sum += static_cast<double>(w[i]) * out[i];
  return sum;
}

// Checks analytic = dL/dx element by element against the central difference
// (L(x+h) - L(x-h)) / 2h, where loss() recomputes L from the current x. The ops run
// in float, so L carries rounding of about 1e-6; divided by 2h that is ~1e-4, well
// inside the tolerance, while a wrong formula is off by O(1).
// loss() may return NaN to say that L is not differentiable at this perturbation
// (Top-K changed its selection); such elements are skipped. Returns how many were
// checked.
int expect_gradient(std::vector<float>& x, const std::vector<float>& analytic,
                    const std::function<double()>& loss, const char* name) {
  const float h = 1e-2f;
  int checked = 0;
  for (size_t i = 0; i < x.size(); i++) {
    const float saved = x[i];
    x[i] = saved + h;
    const double plus = loss();
    const float x_plus = x[i];
    x[i] = saved - h;
    const double minus = loss();
    const float x_minus = x[i];
    x[i] = saved;
    if (std::isnan(plus) || std::isnan(minus)) continue;
    const double numeric = (plus - minus) / (static_cast<double>(x_plus) - x_minus);
    EXPECT_NEAR(analytic[i], numeric, 2e-3 * (1.0 + std::fabs(numeric))) << name << "[" << i << "]";
    checked++;
  }
  return checked;
}

// Backward functions add into their gradients: after a second identical call each
// gradient is twice what one call gave.
void expect_doubled(const std::vector<float>& once, const std::vector<float>& twice,
                    const char* name) {
  ASSERT_EQ(once.size(), twice.size());
  for (size_t i = 0; i < once.size(); i++) {
    EXPECT_NEAR(twice[i], 2.0f * once[i], 1e-5f * (1.0f + std::fabs(once[i])))
        << name << "[" << i << "]";
  }
}

// ---------------------------------------------------------------------------
// Gradient checks, one op at a time
// ---------------------------------------------------------------------------

TEST(OpsGradient, Embedding) {
  const int B = 2, T = 5, C = 8, V = 4;
  std::mt19937 rng(1);
  // Tokens repeat, so dwte rows collect several contributions.
  const std::vector<int32_t> tokens = {0, 3, 3, 1, 0, 2, 3, 0, 0, 1};
  std::vector<float> wte = random_normal(static_cast<size_t>(V) * C, rng);
  std::vector<float> wpe = random_normal(static_cast<size_t>(T) * C, rng);
  const std::vector<float> w = random_normal(static_cast<size_t>(B) * T * C, rng);
  std::vector<float> out(w.size());
  auto loss = [&] {
    embedding_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
    return weighted_sum(out, w);
  };
  std::vector<float> dwte(wte.size(), 0.0f), dwpe(wpe.size(), 0.0f);
  embedding_backward(dwte.data(), dwpe.data(), w.data(), tokens.data(), B, T, C);
  expect_gradient(wte, dwte, loss, "dwte");
  expect_gradient(wpe, dwpe, loss, "dwpe");

  const std::vector<float> dwte_once = dwte, dwpe_once = dwpe;
  embedding_backward(dwte.data(), dwpe.data(), w.data(), tokens.data(), B, T, C);
  expect_doubled(dwte_once, dwte, "dwte");
  expect_doubled(dwpe_once, dwpe, "dwpe");
}

TEST(OpsGradient, LayerNorm) {
  const int N = 6, C = 8;
  std::mt19937 rng(2);
  std::vector<float> inp = random_normal(static_cast<size_t>(N) * C, rng, 2.0f);
  std::vector<float> weight = random_normal(C, rng);
  std::vector<float> bias = random_normal(C, rng);
  const std::vector<float> w = random_normal(inp.size(), rng);
  std::vector<float> out(inp.size()), mean(N), rstd(N);
  auto loss = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(),
                      bias.data(), N, C);
    return weighted_sum(out, w);
  };
  loss();  // fills mean and rstd for backward
  std::vector<float> dinp(inp.size(), 0.0f), dweight(C, 0.0f), dbias(C, 0.0f);
  auto backward = [&] {
    layernorm_backward(dinp.data(), dweight.data(), dbias.data(), w.data(), inp.data(),
                       weight.data(), mean.data(), rstd.data(), N, C);
  };
  backward();
  expect_gradient(inp, dinp, loss, "dinp");
  expect_gradient(weight, dweight, loss, "dweight");
  expect_gradient(bias, dbias, loss, "dbias");

  const std::vector<float> dinp_once = dinp, dweight_once = dweight, dbias_once = dbias;
  loss();  // restore mean and rstd of the unperturbed input
  backward();
  expect_doubled(dinp_once, dinp, "dinp");
  expect_doubled(dweight_once, dweight, "dweight");
  expect_doubled(dbias_once, dbias, "dbias");
}

void check_matmul_gradient(bool with_bias) {
  const int N = 6, C = 8, OC = 5;
  std::mt19937 rng(3);
  std::vector<float> inp = random_normal(static_cast<size_t>(N) * C, rng);
  std::vector<float> weight = random_normal(static_cast<size_t>(OC) * C, rng);
  std::vector<float> bias = random_normal(OC, rng);
  const std::vector<float> w = random_normal(static_cast<size_t>(N) * OC, rng);
  std::vector<float> out(w.size());
  auto loss = [&] {
    matmul_forward(out.data(), inp.data(), weight.data(), with_bias ? bias.data() : nullptr, N,
                   C, OC);
    return weighted_sum(out, w);
  };
  std::vector<float> dinp(inp.size(), 0.0f), dweight(weight.size(), 0.0f), dbias(OC, 0.0f);
  auto backward = [&] {
    matmul_backward(dinp.data(), dweight.data(), with_bias ? dbias.data() : nullptr, w.data(),
                    inp.data(), weight.data(), N, C, OC);
  };
  backward();
  expect_gradient(inp, dinp, loss, "dinp");
  expect_gradient(weight, dweight, loss, "dweight");
  if (with_bias) {
    expect_gradient(bias, dbias, loss, "dbias");
  } else {
    // Without bias the output does not depend on it, and dbias is left alone.
    for (float g : dbias) EXPECT_EQ(g, 0.0f);
  }

  const std::vector<float> dinp_once = dinp, dweight_once = dweight, dbias_once = dbias;
  backward();
  expect_doubled(dinp_once, dinp, "dinp");
  expect_doubled(dweight_once, dweight, "dweight");
  expect_doubled(dbias_once, dbias, "dbias");
}

TEST(OpsGradient, MatmulWithBias) { check_matmul_gradient(true); }
TEST(OpsGradient, MatmulWithoutBias) { check_matmul_gradient(false); }

TEST(OpsGradient, AttentionDense) {
  const int B = 2, T = 7, C = 8, NH = 2;
  std::mt19937 rng(4);
  std::vector<float> qkv = random_normal(static_cast<size_t>(B) * T * 3 * C, rng);
  const std::vector<float> w = random_normal(static_cast<size_t>(B) * T * C, rng);
  std::vector<float> out(w.size()), probs(static_cast<size_t>(B) * NH * T * T), scratch(attention_scratch_floats(T));
  auto loss = [&] {
    attention_forward(out.data(), probs.data(), qkv.data(), B, T, C, NH);
    return weighted_sum(out, w);
  };
  loss();
  std::vector<float> dqkv(qkv.size(), 0.0f);
  auto backward = [&] {
    attention_backward(dqkv.data(), w.data(), qkv.data(), probs.data(), scratch.data(), B, T,
                       C, NH);
  };
  backward();
  expect_gradient(qkv, dqkv, loss, "dqkv");

  const std::vector<float> dqkv_once = dqkv;
  loss();
  backward();
  expect_doubled(dqkv_once, dqkv, "dqkv");
}

void check_topk_gradient(int K) {
  const int B = 2, T = 7, C = 8, NH = 2;
  std::mt19937 rng(5);
  std::vector<float> qkv = random_normal(static_cast<size_t>(B) * T * 3 * C, rng);
  const std::vector<float> w = random_normal(static_cast<size_t>(B) * T * C, rng);
  const size_t slots = static_cast<size_t>(B) * NH * T * K;
  std::vector<float> out(w.size()), vals(slots), scratch(attention_topk_scratch_floats(T));
  std::vector<uint16_t> idx(slots);
  auto forward = [&] {
    attention_topk_forward(out.data(), vals.data(), idx.data(), qkv.data(), scratch.data(), B,
                           T, C, NH, K);
  };
  forward();
  const std::vector<uint16_t> base_idx = idx;
  // The output is differentiable only while the selection stays the same.
  auto loss = [&] {
    forward();
    return idx == base_idx ? weighted_sum(out, w) : std::nan("");
  };
  std::vector<float> dqkv(qkv.size(), 0.0f);
  auto backward = [&] {
    attention_topk_backward(dqkv.data(), w.data(), qkv.data(), vals.data(), idx.data(),
                            scratch.data(), B, T, C, NH, K);
  };
  backward();
  const int checked = expect_gradient(qkv, dqkv, loss, "dqkv");
  // A perturbation of 1e-2 rarely reorders random scores.
  EXPECT_GE(checked, static_cast<int>(qkv.size()) * 9 / 10);

  const std::vector<float> dqkv_once = dqkv;
  forward();
  backward();
  expect_doubled(dqkv_once, dqkv, "dqkv");
}

TEST(OpsGradient, AttentionTopKFewerThanT) { check_topk_gradient(3); }
TEST(OpsGradient, AttentionTopKEqualT) { check_topk_gradient(7); }

TEST(OpsGradient, Gelu) {
  const size_t N = 40;
  std::mt19937 rng(6);
  std::vector<float> inp = random_normal(N, rng, 2.0f);
  const std::vector<float> w = random_normal(N, rng);
  std::vector<float> out(N);
  auto loss = [&] {
    gelu_forward(out.data(), inp.data(), N);
    return weighted_sum(out, w);
  };
  std::vector<float> dinp(N, 0.0f);
  gelu_backward(dinp.data(), inp.data(), w.data(), N);
  expect_gradient(inp, dinp, loss, "dinp");

  const std::vector<float> dinp_once = dinp;
  gelu_backward(dinp.data(), inp.data(), w.data(), N);
  expect_doubled(dinp_once, dinp, "dinp");
}

TEST(OpsGradient, Residual) {
  const size_t N = 20;
  std::mt19937 rng(7);
  std::vector<float> a = random_normal(N, rng), b = random_normal(N, rng);
  const std::vector<float> w = random_normal(N, rng);
  std::vector<float> out(N);
  auto loss = [&] {
    residual_forward(out.data(), a.data(), b.data(), N);
    return weighted_sum(out, w);
  };
  std::vector<float> da(N, 0.0f), db(N, 0.0f);
  residual_backward(da.data(), db.data(), w.data(), N);
  expect_gradient(a, da, loss, "da");
  expect_gradient(b, db, loss, "db");

  const std::vector<float> da_once = da, db_once = db;
  residual_backward(da.data(), db.data(), w.data(), N);
  expect_doubled(da_once, da, "da");
  expect_doubled(db_once, db, "db");
}

TEST(OpsGradient, SoftmaxCrossEntropy) {
  const int N = 4, V = 7;
  const float dloss = 1.0f / N;  // the weight of each row's loss in a mean
  std::mt19937 rng(8);
  std::vector<float> logits = random_normal(static_cast<size_t>(N) * V, rng, 2.0f);
  const std::vector<int32_t> targets = {2, 0, 6, 2};
  std::vector<float> losses(N), probs(logits.size());
  auto loss = [&] {
    softmax_crossentropy_forward(losses.data(), probs.data(), logits.data(), targets.data(), N,
                                 V);
    return dloss * std::accumulate(losses.begin(), losses.end(), 0.0);
  };
  loss();
  std::vector<float> dlogits(logits.size(), 123.0f);  // garbage: backward writes
  softmax_crossentropy_backward(dlogits.data(), probs.data(), targets.data(), dloss, N, V);
  expect_gradient(logits, dlogits, loss, "dlogits");

  // The one op that writes its gradient: a second call gives the same values.
  loss();
  const std::vector<float> dlogits_once = dlogits;
  softmax_crossentropy_backward(dlogits.data(), probs.data(), targets.data(), dloss, N, V);
  EXPECT_EQ(dlogits, dlogits_once);
}

// ---------------------------------------------------------------------------
// Top-K attention
// ---------------------------------------------------------------------------

struct AttentionShape {
  int B, T, C, NH;
};

// Attention by the definition, query by query in double precision: out and dqkv
// of the causal softmax attention (what the per-query loops computed before
// attention ran through the BLAS).
void reference_attention(std::vector<double>& out, std::vector<double>& dqkv, const std::vector<float>& qkv,
                         const std::vector<float>& dout, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const size_t C3 = static_cast<size_t>(3) * C;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
  out.assign(static_cast<size_t>(B) * T * C, 0.0);
  dqkv.assign(qkv.size(), 0.0);
  auto at = [&](int b, int t, size_t column) { return static_cast<double>(qkv[(static_cast<size_t>(b) * T + t) * C3 + column]); };
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      for (int t = 0; t < T; t++) {
        std::vector<double> p(t + 1), dp(t + 1);
        double maxval = -INFINITY, total = 0;
        for (int j = 0; j <= t; j++) {
          double s = 0;
          for (int i = 0; i < hs; i++) s += at(b, t, h * hs + i) * at(b, j, C + h * hs + i);
          p[j] = s * scale;
          maxval = std::max(maxval, p[j]);
        }
        for (double& x : p) total += (x = std::exp(x - maxval));
        for (double& x : p) x /= total;
        const size_t row = (static_cast<size_t>(b) * T + t) * C + h * hs;
        double weighted = 0;
        for (int j = 0; j <= t; j++) {
          for (int i = 0; i < hs; i++) {
            out[row + i] += p[j] * at(b, j, 2 * C + h * hs + i);
            dp[j] += dout[row + i] * at(b, j, 2 * C + h * hs + i);
            dqkv[(static_cast<size_t>(b) * T + j) * C3 + 2 * C + h * hs + i] += p[j] * dout[row + i];
          }
          weighted += p[j] * dp[j];
        }
        for (int j = 0; j <= t; j++) {
          const double ds = p[j] * (dp[j] - weighted) * scale;
          for (int i = 0; i < hs; i++) {
            dqkv[(static_cast<size_t>(b) * T + t) * C3 + h * hs + i] += ds * at(b, j, C + h * hs + i);
            dqkv[(static_cast<size_t>(b) * T + j) * C3 + C + h * hs + i] += ds * at(b, t, h * hs + i);
          }
        }
      }
    }
  }
}

// Attention runs as BLAS products over whole T x T squares, masked: it must
// still be causal attention. Stated tolerance: float32 rounding of sums of at
// most T*hs terms of magnitude ~10, relative to the largest entry, 2e-5.
TEST(Attention, BlasProductsMatchTheDefinition) {
  const AttentionShape shapes[] = {{1, 1, 4, 1}, {2, 7, 12, 3}, {2, 33, 24, 4}, {1, 130, 64, 2}};
  std::mt19937 rng(21);
  for (const AttentionShape& s : shapes) {
    const auto [B, T, C, NH] = s;
    SCOPED_TRACE(::testing::Message() << "B=" << B << " T=" << T << " C=" << C << " NH=" << NH);
    const std::vector<float> qkv = random_normal(static_cast<size_t>(B) * T * 3 * C, rng, 2.0f);
    const std::vector<float> dout = random_normal(static_cast<size_t>(B) * T * C, rng);
    std::vector<float> out(dout.size()), probs(static_cast<size_t>(B) * NH * T * T);
    std::vector<float> dqkv(qkv.size(), 0.0f), scratch(attention_scratch_floats(T));
    attention_forward(out.data(), probs.data(), qkv.data(), B, T, C, NH);
    attention_backward(dqkv.data(), dout.data(), qkv.data(), probs.data(), scratch.data(), B, T, C, NH);
    std::vector<double> expected_out, expected_dqkv;
    reference_attention(expected_out, expected_dqkv, qkv, dout, B, T, C, NH);
    const auto expect_near = [](const std::vector<float>& got, const std::vector<double>& want, const char* what) {
      double largest = 0;
      for (double x : want) largest = std::max(largest, std::fabs(x));
      for (size_t i = 0; i < got.size(); i++) {
        ASSERT_NEAR(got[i], want[i], 2e-5 * std::max(largest, 1.0)) << what << "[" << i << "]";
      }
    };
    expect_near(out, expected_out, "out");
    expect_near(dqkv, expected_dqkv, "dqkv");
    for (int row = 0; row < B * NH * T; row++) {  // masked: nothing above the diagonal
      for (int j = row % T + 1; j < T; j++) ASSERT_EQ(probs[static_cast<size_t>(row) * T + j], 0.0f);
    }
  }
}

// With K >= T Top-K keeps every causal key and must do exactly the dense arithmetic.
TEST(AttentionTopK, KAtLeastTIsBitwiseDense) {
  const AttentionShape shapes[] = {{1, 1, 4, 1}, {2, 7, 12, 3}, {1, 13, 16, 2}, {2, 33, 24, 4}};
  std::mt19937 rng(9);
  for (const AttentionShape& s : shapes) {
    const auto [B, T, C, NH] = s;
    const std::vector<float> qkv = random_normal(static_cast<size_t>(B) * T * 3 * C, rng, 2.0f);
    const std::vector<float> dout = random_normal(static_cast<size_t>(B) * T * C, rng);
    const std::vector<float> dqkv_init = random_normal(qkv.size(), rng);

    std::vector<float> out(dout.size()), probs(static_cast<size_t>(B) * NH * T * T);
    std::vector<float> scratch(attention_topk_scratch_floats(T));
    attention_forward(out.data(), probs.data(), qkv.data(), B, T, C, NH);
    std::vector<float> dqkv = dqkv_init;
    attention_backward(dqkv.data(), dout.data(), qkv.data(), probs.data(), scratch.data(), B, T,
                       C, NH);

    for (int K : {T, T + 2}) {
      SCOPED_TRACE(::testing::Message() << "B=" << B << " T=" << T << " C=" << C << " NH=" << NH
                                        << " K=" << K);
      const size_t slots = static_cast<size_t>(B) * NH * T * K;
      std::vector<float> out_k(dout.size()), vals(slots);
      std::vector<uint16_t> idx(slots);
      attention_topk_forward(out_k.data(), vals.data(), idx.data(), qkv.data(), scratch.data(), B,
                             T, C, NH, K);
      std::vector<float> dqkv_k = dqkv_init;
      attention_topk_backward(dqkv_k.data(), dout.data(), qkv.data(), vals.data(), idx.data(),
                              scratch.data(), B, T, C, NH, K);

      for (size_t i = 0; i < out.size(); i++) EXPECT_EQ(out_k[i], out[i]) << "out[" << i << "]";
      for (size_t i = 0; i < dqkv.size(); i++) EXPECT_EQ(dqkv_k[i], dqkv[i]) << "dqkv[" << i << "]";
      for (int row = 0; row < B * NH * T; row++) {
        const int t = row % T;
        for (int j = 0; j < K; j++) {
          const size_t slot = static_cast<size_t>(row) * K + j;
          if (j <= t) {
            EXPECT_EQ(idx[slot], j);
            EXPECT_EQ(vals[slot], probs[static_cast<size_t>(row) * T + j]);
          } else {
            EXPECT_EQ(idx[slot], 0);
            EXPECT_EQ(vals[slot], 0.0f);
          }
        }
      }
    }
  }
}

// With K < T each query keeps its K highest-scoring causal keys, in ascending key
// order, and their softmax; compared with a brute-force sort of scores computed in
// double (random scores have no near-ties at this size).
TEST(AttentionTopK, KeepsHighestScoringKeys) {
  const int B = 2, T = 9, C = 16, NH = 2, K = 3;
  const int hs = C / NH;
  std::mt19937 rng(10);
  const std::vector<float> qkv = random_normal(static_cast<size_t>(B) * T * 3 * C, rng, 2.0f);
  const size_t slots = static_cast<size_t>(B) * NH * T * K;
  std::vector<float> out(static_cast<size_t>(B) * T * C), vals(slots);
  std::vector<float> scratch(attention_topk_scratch_floats(T));
  std::vector<uint16_t> idx(slots);
  attention_topk_forward(out.data(), vals.data(), idx.data(), qkv.data(), scratch.data(), B, T, C,
                         NH, K);

  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      for (int t = 0; t < T; t++) {
        std::vector<double> scores(t + 1);
        for (int t2 = 0; t2 <= t; t2++) {
          double d = 0.0;
          for (int i = 0; i < hs; i++) {
            d += static_cast<double>(qkv[(b * T + t) * 3 * C + h * hs + i]) *
                 qkv[(b * T + t2) * 3 * C + C + h * hs + i];
          }
          scores[t2] = d / std::sqrt(static_cast<double>(hs));
        }
        std::vector<int> order(t + 1);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](int x, int y) { return scores[x] > scores[y]; });
        const int n = std::min(K, t + 1);
        std::vector<int> expected(order.begin(), order.begin() + n);
        std::sort(expected.begin(), expected.end());

        double sum = 0.0;
        for (int j : expected) sum += std::exp(scores[j]);
        const size_t row = ((static_cast<size_t>(b) * NH + h) * T + t) * K;
        for (int j = 0; j < K; j++) {
          if (j < n) {
            EXPECT_EQ(idx[row + j], expected[j]) << "b=" << b << " h=" << h << " t=" << t;
            EXPECT_NEAR(vals[row + j], std::exp(scores[expected[j]]) / sum, 1e-5);
          } else {
            EXPECT_EQ(idx[row + j], 0);
            EXPECT_EQ(vals[row + j], 0.0f);
          }
        }
      }
    }
  }

  // Dropping keys changes the output of the later queries.
  std::vector<float> dense(out.size()), probs(static_cast<size_t>(B) * NH * T * T);
  attention_forward(dense.data(), probs.data(), qkv.data(), B, T, C, NH);
  float max_diff = 0.0f;
  for (size_t i = 0; i < out.size(); i++) max_diff = std::max(max_diff, std::fabs(out[i] - dense[i]));
  EXPECT_GT(max_diff, 1e-2f);
}

// Equal scores at the selection threshold: the lower key index wins.
TEST(AttentionTopK, TiesGoToLowerKeyIndex) {
  const int B = 1, T = 6, C = 4, NH = 1, K = 2;
  // Every query is q = (1,1,1,1) and key t2 is c[t2] * u with u > 0, so the scores
  // rank like c; equal c gives bitwise equal keys, hence exactly equal scores.
  const float c[T] = {2, 1, 2, 3, 1, 2};
  const float u[C] = {0.25f, 0.5f, 0.125f, 1.0f};
  std::mt19937 rng(11);
  std::vector<float> qkv = random_normal(static_cast<size_t>(B) * T * 3 * C, rng);
  for (int t = 0; t < T; t++) {
    for (int i = 0; i < C; i++) {
      qkv[t * 3 * C + i] = 1.0f;
      qkv[t * 3 * C + C + i] = c[t] * u[i];
    }
  }
  // Kept keys per query, ascending: t=2 keeps both tied keys 0 and 2; from t=3 on key 3
  // wins and the tie for the second slot (c = 2 at keys 0, 2 and later 5) goes to key 0.
  const int expected[T][K] = {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 3}, {0, 3}};
  const size_t slots = static_cast<size_t>(B) * NH * T * K;
  std::vector<float> out(static_cast<size_t>(B) * T * C), vals(slots);
  std::vector<float> scratch(attention_topk_scratch_floats(T));
  std::vector<uint16_t> idx(slots);
  attention_topk_forward(out.data(), vals.data(), idx.data(), qkv.data(), scratch.data(), B, T, C,
                         NH, K);
  for (int t = 0; t < T; t++) {
    EXPECT_EQ(idx[t * K], expected[t][0]) << "t=" << t;
    EXPECT_EQ(idx[t * K + 1], expected[t][1]) << "t=" << t;
  }
  EXPECT_EQ(vals[0], 1.0f);
  EXPECT_EQ(vals[1], 0.0f);  // query 0 has one key: the second slot is unused
  EXPECT_EQ(vals[2 * K], 0.5f);  // equal scores, equal weights
  EXPECT_EQ(vals[2 * K + 1], 0.5f);
}

// Many exactly equal scores, NaN (ranked as -inf, so tied with it) and infinities:
// the kept keys are those of a stable sort by the rule of ops.h, which the
// threshold selection must reproduce whichever side of a tie the threshold lands.
TEST(AttentionTopK, SelectionFollowsTheRuleOnTiesNanAndInfinities) {
  const int B = 2, T = 40, C = 8, NH = 2;
  const int hs = C / NH;  // 4: the scale 1/sqrt(hs) = 0.5 is exact
  const float inf = std::numeric_limits<float>::infinity();
  const float levels[] = {-2.0f, -1.0f, 0.0f, 1.0f, 2.0f, 3.0f, std::nanf(""), -inf, inf};
  std::mt19937 rng(12);
  std::uniform_int_distribution<int> pick(0, 8);
  // q = (1, 0, 0, 0) and k = (c, 0, 0, 0) in every head: the score is exactly c / 2.
  std::vector<float> qkv = random_normal(static_cast<size_t>(B) * T * 3 * C, rng);
  std::vector<float> score(static_cast<size_t>(B) * NH * T);  // of key t in head (b, h)
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      float* row = qkv.data() + (static_cast<size_t>(b) * T + t) * 3 * C;
      for (int h = 0; h < NH; h++) {
        const float c = levels[pick(rng)];
        for (int i = 0; i < hs; i++) {
          row[h * hs + i] = i == 0 ? 1.0f : 0.0f;
          row[C + h * hs + i] = i == 0 ? c : 0.0f;
        }
        score[(static_cast<size_t>(b) * NH + h) * T + t] = c / 2;
      }
    }
  }
  for (int K : {1, 3, 7, 16, 39}) {
    SCOPED_TRACE(::testing::Message() << "K=" << K);
    const size_t slots = static_cast<size_t>(B) * NH * T * K;
    std::vector<float> out(static_cast<size_t>(B) * T * C), vals(slots);
    std::vector<float> scratch(attention_topk_scratch_floats(T));
    std::vector<uint16_t> idx(slots);
    attention_topk_forward(out.data(), vals.data(), idx.data(), qkv.data(), scratch.data(), B, T,
                           C, NH, K);
    for (int bh = 0; bh < B * NH; bh++) {
      for (int t = 0; t < T; t++) {
        std::vector<int> order(t + 1);
        std::iota(order.begin(), order.end(), 0);
        auto key = [&](int t2) {
          const float s = score[static_cast<size_t>(bh) * T + t2];
          return std::isnan(s) ? -inf : s;
        };
        std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return key(x) > key(y); });
        const int n = std::min(K, t + 1);
        std::vector<int> expected(order.begin(), order.begin() + n);
        std::sort(expected.begin(), expected.end());
        const size_t row = (static_cast<size_t>(bh) * T + t) * K;
        for (int j = 0; j < n; j++) {
          EXPECT_EQ(idx[row + j], expected[j]) << "bh=" << bh << " t=" << t << " slot " << j;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Loss, optimizer, FLOP counts
// ---------------------------------------------------------------------------

TEST(SoftmaxCrossEntropy, LossIsMinusLogSoftmax) {
  const int N = 3, V = 5;
  // Row 2 has large logits: the max subtraction must keep it finite.
  const std::vector<float> logits = {0.1f,  -1.2f, 2.0f,  0.5f,   0.0f,   //
                                     3.0f,  3.0f,  -4.0f, 1.5f,   -0.25f,  //
                                     900.f, 905.f, 880.f, 904.5f, 901.f};
  const std::vector<int32_t> targets = {2, 4, 3};
  std::vector<float> losses(N), probs(logits.size());
  softmax_crossentropy_forward(losses.data(), probs.data(), logits.data(), targets.data(), N, V);
  for (int n = 0; n < N; n++) {
    double max = logits[n * V];
    for (int v = 0; v < V; v++) max = std::max(max, static_cast<double>(logits[n * V + v]));
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += std::exp(logits[n * V + v] - max);
    const double log_prob_target = logits[n * V + targets[n]] - max - std::log(sum);
    EXPECT_NEAR(losses[n], -log_prob_target, 1e-5) << "row " << n;
    double prob_sum = 0.0;
    for (int v = 0; v < V; v++) {
      EXPECT_NEAR(probs[n * V + v], std::exp(logits[n * V + v] - max) / sum, 1e-6);
      prob_sum += probs[n * V + v];
    }
    EXPECT_NEAR(prob_sum, 1.0, 1e-6);
  }

  // probs may alias logits (computed in place) and dlogits may alias probs.
  std::vector<float> in_place = logits, losses_in_place(N);
  softmax_crossentropy_forward(losses_in_place.data(), in_place.data(), in_place.data(),
                               targets.data(), N, V);
  EXPECT_EQ(losses_in_place, losses);
  EXPECT_EQ(in_place, probs);
  std::vector<float> dlogits(logits.size());
  softmax_crossentropy_backward(dlogits.data(), probs.data(), targets.data(), 0.5f, N, V);
  softmax_crossentropy_backward(in_place.data(), in_place.data(), targets.data(), 0.5f, N, V);
  EXPECT_EQ(in_place, dlogits);
}

TEST(AdamW, FirstStepByHand) {
  // lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.01, t = 1, m = v = 0.
  // p = 1, g = 0.5:  m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25;
  //   p -= 0.1 * (0.5 / (0.5 + 1e-8) + 0.01 * 1)    -> 1 - 0.101 = 0.899
  // p = -2, g = 0.1: m = 0.01, v = 0.00001;  m_hat = 0.1, v_hat = 0.01;
  //   p -= 0.1 * (0.1 / (0.1 + 1e-8) + 0.01 * -2)   -> -2 - 0.098 = -2.098
  std::vector<float> params = {1.0f, -2.0f};
  const std::vector<float> grads = {0.5f, 0.1f};
  std::vector<float> m(2, 0.0f), v(2, 0.0f);
  adamw_update(params.data(), grads.data(), m.data(), v.data(), 2, 0.1f, 0.9f, 0.999f, 1e-8f,
               0.01f, 1);
  // Tolerances: 1 - 0.999f is 0.000999987 in float, 1.3e-5 off in relative terms.
  EXPECT_NEAR(m[0], 0.05f, 1e-7f);
  EXPECT_NEAR(v[0], 0.00025f, 0.00025f * 2e-5f);
  EXPECT_NEAR(m[1], 0.01f, 1e-7f);
  EXPECT_NEAR(v[1], 0.00001f, 0.00001f * 2e-5f);
  EXPECT_NEAR(params[0], 0.899f, 1e-6f);
  EXPECT_NEAR(params[1], -2.098f, 1e-6f);
}

TEST(AdamW, LaterStepUsesBiasCorrection) {
  // t = 2, m = 0.05, v = 0.00025 (the state after the step above), p = 0.899, g = -0.3,
  // no weight decay: m = 0.045 - 0.03 = 0.015, v = 0.00024975 + 0.00009 = 0.00033975;
  // m_hat = 0.015 / 0.19 = 0.0789474, v_hat = 0.00033975 / 0.001999 = 0.1699600;
  // p -= 0.1 * 0.0789474 / (0.4122621 + 1e-8) -> 0.899 - 0.0191498 = 0.8798502.
  float p = 0.899f, m = 0.05f, v = 0.00025f;
  const float g = -0.3f;
  adamw_update(&p, &g, &m, &v, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 2);
  EXPECT_NEAR(m, 0.015f, 1e-7f);
  EXPECT_NEAR(v, 0.00033975f, 0.00033975f * 2e-5f);
  EXPECT_NEAR(p, 0.8798502f, 1e-6f);
}

TEST(Flops, SmallShapesByHand) {
  // Matmul N=3, C=4, OC=5: 60 multiply-adds forward, twice that backward.
  EXPECT_EQ(matmul_forward_flops(3, 4, 5), 120.0);
  EXPECT_EQ(matmul_backward_flops(3, 4, 5), 240.0);
  // Attention B=2, T=4, C=6, NH=2 (hs=3): 1+2+3+4 = 10 causal entries per (b,h),
  // 4 (b,h) pairs. Forward: q.k and p*v, 2 products of 2*hs = 6 FLOPs each per entry:
  // 4 * 10 * 12 = 480. Backward: 4 products per entry: 960.
  EXPECT_EQ(attention_forward_flops(2, 4, 6, 2), 480.0);
  EXPECT_EQ(attention_backward_flops(2, 4, 6, 2), 960.0);
  // Top-K with K=2: all 10 scores (to select), then min(2, t+1) = 1+2+2+2 = 7 kept
  // entries. Forward: 4 * (10 * 6 + 7 * 6) = 408. Backward: 4 * 7 * 24 = 672.
  EXPECT_EQ(attention_topk_forward_flops(2, 4, 6, 2, 2), 408.0);
  EXPECT_EQ(attention_topk_backward_flops(2, 4, 6, 2, 2), 672.0);
  // K >= T counts like dense.
  EXPECT_EQ(attention_topk_forward_flops(2, 4, 6, 2, 4), 480.0);
  EXPECT_EQ(attention_topk_backward_flops(2, 4, 6, 2, 9), 960.0);
}

}  // namespace
}  // namespace memfront::cpu
