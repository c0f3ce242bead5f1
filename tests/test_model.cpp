// The training step: whole-model gradients, checkpointing, the exact
// saved-activation memory, Top-K attention, quantized activations, gradient
// accumulation.
#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include <gtest/gtest.h>

#include "core/arena.h"
#include "core/config.h"
#include "kernels/data.h"
#include "kernels/model.h"
#include "kernels/trial.h"

using namespace memfront;

namespace {

Config shape(int V, int T, int C, int H, int L, int B) {
  Config c;
  c.model = {V, T, C, H, L};
  c.batch.micro = B;
  return c;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
};

Batch batch_of(const Config& c, uint64_t first_sample = 0) {
  SyntheticTokens source(c.model.vocab, c.model.seq, c.data.seed, c.data.noise);
  Batch b{std::vector<int32_t>(c.batch.micro * c.model.seq), std::vector<int32_t>(c.batch.micro * c.model.seq)};
  fill_batch(source, first_sample, c.batch.micro, c.model.seq, b.inputs.data(), b.targets.data());
  return b;
}

// Gradients of one forward_backward, and what the arena measured.
struct StepResult {
  std::vector<float> grads;
  float loss;
  BytesByCategory peak;
};

StepResult one_step(const Config& c) {
  Arena arena;
  Gpt model(c, arena);
  Batch b = batch_of(c);
  StepResult r;
  r.loss = model.forward_backward(b.inputs.data(), b.targets.data(), 1.0f);
  r.grads.assign(model.grads(), model.grads() + model.param_count());
  r.peak = arena.peak_by_category();
  return r;
}

uint64_t peak(const StepResult& r, MemCategory c) { return r.peak[static_cast<int>(c)]; }

// Bytes of one saved tensor, derived here from the formats' definitions and
// independent of the model's code: 4, 2 or 1 bytes a value, plus one fp32
// scale per row for the scaled formats.
uint64_t stored(DType f, uint64_t rows, uint64_t cols) {
  const uint64_t value_bytes = f == DType::fp32 ? 4 : f == DType::bf16 ? 2 : 1;
  const uint64_t scale_bytes = (f == DType::fp8e4m3 || f == DType::int8) ? 4 * rows : 0;
  return rows * cols * value_bytes + scale_bytes;
}

}  // namespace

TEST(Gpt, ParameterCountIsTheClosedForm) {
  Config c = shape(50, 16, 24, 3, 5, 2);
  Arena arena;
  Gpt model(c, arena);
  const uint64_t V = 50, T = 16, C = 24, L = 5;
  EXPECT_EQ(model.param_count(), V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C);
  // fp32 weights, gradients and two AdamW moments: 16 bytes a parameter.
  EXPECT_EQ(arena.peak(MemCategory::params), 4 * model.param_count());
  EXPECT_EQ(arena.peak(MemCategory::grads), 4 * model.param_count());
  EXPECT_EQ(arena.peak(MemCategory::optimizer), 8 * model.param_count());
}

// The kernels' layout places the units whose sizes core's closed form gives
// (the cost model predicts with those): same sizes, back to back, for a few shapes.
TEST(Gpt, ParamLayoutPlacesTheUnitsOfTheClosedForm) {
  const ModelShape shapes[] = {{50, 16, 24, 3, 5}, {61, 16, 33, 3, 3}, {97, 12, 40, 4, 1}};
  for (const ModelShape& s : shapes) {
    const ParamLayout layout(s);
    const ParamUnits units(s);
    ASSERT_EQ(layout.unit_count(), units.count());
    uint64_t next = 0;
    for (int u = 0; u < units.count(); ++u) {
      EXPECT_EQ(layout.unit_begin(u), next) << "unit " << u;
      EXPECT_EQ(layout.unit_size(u), units.size(u)) << "unit " << u;
      next += units.size(u);
    }
    EXPECT_EQ(layout.total, units.total);
    EXPECT_EQ(next, units.total);
  }
}

// Central differences of the loss against the analytic gradient of the whole
// model, over a sample of parameters from every tensor. `prepare` may change the
// initial parameters first.
//
// With `piecewise` (Top-K attention), the loss has kinks where a parameter
// change swaps which keys a query keeps. A parameter whose central differences
// at h and h/2 disagree has one within h and is skipped; few may be.
void check_whole_model_gradient(const Config& c, bool piecewise = false,
                                const std::function<void(Gpt&)>& prepare = {}) {
  Arena arena;
  Gpt model(c, arena);
  if (prepare) prepare(model);
  Batch b = batch_of(c);
  model.forward_backward(b.inputs.data(), b.targets.data(), 1.0f);
  std::vector<float> analytic(model.grads(), model.grads() + model.param_count());

  float* p = model.params();
  auto central_difference = [&](uint64_t j, float h) {
    const float saved = p[j];
    p[j] = saved + h;
    const double tokens = double(c.batch.micro) * c.model.seq;  // forward_backward's loss is their mean
    const double plus = model.evaluate(b.inputs.data(), b.targets.data(), c.batch.micro) / tokens;
    p[j] = saved - h;
    const double minus = model.evaluate(b.inputs.data(), b.targets.data(), c.batch.micro) / tokens;
    p[j] = saved;
    return (plus - minus) / (2.0 * h);
  };

  std::mt19937 rng(5);
  std::uniform_int_distribution<uint64_t> pick(0, model.param_count() - 1);
  int checked = 0, kinks = 0;
  for (int i = 0; i < 150; ++i) {
    const uint64_t j = pick(rng);
    const float h = piecewise ? 2e-3f : 1e-2f;
    const double numeric = central_difference(j, h);
    // The loss is fp32 (~3 nats, rounding ~4e-7): the quotient is good to
    // ~1e-4 absolute at h = 1e-2, ~5e-4 at h = 1e-3.
    const double tolerance = (piecewise ? 8e-4 : 2e-4) + 0.03 * std::abs(numeric);
    if (piecewise && std::abs(central_difference(j, h / 2) - numeric) > tolerance) {
      ++kinks;
      continue;
    }
    EXPECT_NEAR(analytic[j], numeric, tolerance) << "param " << j;
    ++checked;
  }
  EXPECT_LE(kinks, 15) << "too few smooth parameters to check";
}

TEST(Gpt, WholeModelGradientMatchesFiniteDifferences) {
  check_whole_model_gradient(shape(23, 7, 12, 3, 2, 2));
}

TEST(Gpt, WholeModelGradientWithTopKAttention) {
  Config c = shape(23, 7, 12, 3, 2, 2);
  c.topk.attention = 4;  // queries 4, 5 and 6 drop keys
  // Top-K is piecewise smooth: a finite difference is only meaningful where a
  // step of h does not change which keys are kept. At initialization all scores
  // are nearly equal, so spread them out by scaling the query and key weights.
  check_whole_model_gradient(c, /*piecewise=*/true, [&](Gpt& model) {
    const int C = c.model.width;
    for (int l = 0; l < c.model.layers; ++l) {
      float* qk = model.layout().block(model.params(), l).qkvw;  // rows 0..2C-1 are q and k
      for (int i = 0; i < 2 * C * C; ++i) qk[i] *= 10.0f;
    }
  });
}

TEST(Gpt, CheckpointingGivesBitwiseIdenticalGradientsAndLessActivationMemory) {
  Config c = shape(64, 16, 32, 4, 6, 2);
  StepResult full = one_step(c);
  for (int k = 1; k <= 6; ++k) {
    c.checkpoint.every = k;
    StepResult ckpt = one_step(c);
    EXPECT_EQ(ckpt.loss, full.loss) << "k=" << k;
    ASSERT_EQ(ckpt.grads.size(), full.grads.size());
    EXPECT_EQ(std::memcmp(ckpt.grads.data(), full.grads.data(), full.grads.size() * sizeof(float)), 0)
        << "k=" << k << ": gradients differ";
    EXPECT_LT(peak(ckpt, MemCategory::activations), peak(full, MemCategory::activations)) << "k=" << k;
    EXPECT_GT(peak(ckpt, MemCategory::recompute), 0u);
    EXPECT_EQ(peak(ckpt, MemCategory::params), peak(full, MemCategory::params));
  }
}

// The measured peaks of categories activations and recompute equal the closed
// form of this model's layer, to the byte, across shapes, k, formats and Top-K.
TEST(Gpt, MeasuredActivationPeakEqualsClosedForm) {
  const Config shapes[] = {shape(64, 16, 32, 4, 6, 2), shape(97, 24, 48, 6, 5, 3), shape(128, 32, 16, 2, 4, 1)};
  int cases = 0;
  for (Config c : shapes) {
    for (DType f : {DType::fp32, DType::bf16, DType::fp8e4m3, DType::int8}) {
      for (int K : {0, 5}) {
        for (int k : {0, 1, 2, 3, c.model.layers}) {
          c.precision.activations = f;
          c.topk.attention = K;
          c.checkpoint.every = k;
          const uint64_t B = c.batch.micro, T = c.model.seq, C = c.model.width, H = c.model.heads;
          const uint64_t L = c.model.layers, V = c.model.vocab, N = B * T;
          // One block keeps: its input, LN1 output, attention output, x_mid,
          // LN2 output (N x C each), qkv (N x 3C), FC output and GELU output
          // (N x 4C each), four fp32 LayerNorm statistics of N, and attention
          // weights: B*H*T rows of T (dense) or K values plus K uint16 indices.
          const uint64_t attention =
              K == 0 ? stored(f, B * H * T, T) : stored(f, B * H * T, K) + B * H * T * K * 2;
          const uint64_t block = 5 * stored(f, N, C) + stored(f, N, 3 * C) + 2 * stored(f, N, 4 * C) + 4 * N * 4 +
                                 attention;
          // The head keeps the final LayerNorm input and output, its two
          // statistics, and the fp32 probabilities N x V.
          const uint64_t head = 2 * stored(f, N, C) + 2 * N * 4 + N * V * 4;
          uint64_t activations, recompute;
          if (k == 0) {
            activations = L * block + head;
            recompute = 0;
          } else {
            // ceil(L/k) checkpointed inputs; the longest recomputed segment
            // (k blocks) keeps everything but its first input, adopted from
            // the checkpoint.
            activations = (L + k - 1) / k * stored(f, N, C) + head;
            recompute = std::min<uint64_t>(k, L) * block - stored(f, N, C);
          }
          StepResult r = one_step(c);
          SCOPED_TRACE(testing::Message() << "L=" << L << " C=" << C << " f=" << to_string(f) << " K=" << K
                                          << " k=" << k);
          EXPECT_EQ(peak(r, MemCategory::activations), activations);
          EXPECT_EQ(peak(r, MemCategory::recompute), recompute);
          // The closed form the kernels and the cost model share (core/closed_forms.h).
          const SavedActivationBytes model_formula = saved_activation_bytes(c);
          EXPECT_EQ(model_formula.activations_peak, activations);
          EXPECT_EQ(model_formula.recompute_peak, recompute);
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 3 * 4 * 2 * 5);
}

TEST(Gpt, TopKWithKEqualToTIsExactlyDenseAttention) {
  Config dense = shape(64, 12, 32, 4, 3, 2);
  Config topk = dense;
  topk.topk.attention = dense.model.seq;
  StepResult a = one_step(dense), b = one_step(topk);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(std::memcmp(a.grads.data(), b.grads.data(), a.grads.size() * sizeof(float)), 0);
}

TEST(Gpt, SmallerTopKChangesTheResultAndOnlyTheAttentionMemory) {
  Config dense = shape(64, 32, 32, 4, 3, 2);
  Config sparse = dense;
  sparse.topk.attention = 4;
  StepResult a = one_step(dense), b = one_step(sparse);
  EXPECT_NE(a.loss, b.loss);
  for (MemCategory c : {MemCategory::params, MemCategory::grads, MemCategory::optimizer, MemCategory::recompute}) {
    EXPECT_EQ(peak(a, c), peak(b, c)) << to_string(c);
  }
  // Attention keeps 4 weights + 4 indices per query instead of T = 32 weights.
  const uint64_t B = 2, H = 4, T = 32, L = 3, K = 4;
  EXPECT_EQ(peak(a, MemCategory::activations) - peak(b, MemCategory::activations),
            L * (B * H * T * T * 4 - B * H * T * K * (4 + 2)));
}

TEST(Gpt, GradientAccumulationMatchesOneLargerBatch) {
  // Four sequences at once, or two micro-batches of two with loss weight 1/2.
  Config big = shape(64, 16, 32, 4, 2, 4);
  Config half = shape(64, 16, 32, 4, 2, 2);
  StepResult whole = one_step(big);
  Arena arena;
  Gpt model(half, arena);
  for (uint64_t micro = 0; micro < 2; ++micro) {
    Batch b = batch_of(half, micro * 2);
    model.forward_backward(b.inputs.data(), b.targets.data(), 0.5f);
  }
  double max_diff = 0, max_abs = 0;
  for (uint64_t i = 0; i < model.param_count(); ++i) {
    max_diff = std::max(max_diff, double(std::abs(model.grads()[i] - whole.grads[i])));
    max_abs = std::max(max_abs, double(std::abs(whole.grads[i])));
  }
  EXPECT_LT(max_diff, 1e-5 * max_abs);
  // Half the micro-batch, half the activation memory of the blocks.
  EXPECT_LT(arena.peak(MemCategory::activations), peak(whole, MemCategory::activations));
}

// Quantized activation storage still trains: the loss falls over 50 steps.
TEST(Gpt, TrainsWithQuantizedActivations) {
  for (DType f : {DType::fp32, DType::bf16, DType::int8}) {
    Config c = shape(64, 32, 32, 4, 2, 8);
    c.precision.activations = f;
    c.train.steps = 50;
    c.train.warmup = 0;
    c.train.lr = 3e-3;
    TrialRecord r = run_trial(c, {});
    ASSERT_EQ(r.status, TrialStatus::ok) << r.error;
    const auto& curve = r.metrics->loss_curve;
    ASSERT_EQ(curve.size(), 50u);
    double first = 0, last = 0;
    for (int i = 0; i < 5; ++i) {
      first += curve[i] / 5;
      last += curve[45 + i] / 5;
    }
    SCOPED_TRACE(std::string(to_string(f)));
    EXPECT_LT(last, first - 0.5) << "loss fell from " << first << " to " << last;
    EXPECT_LT(r.metrics->final_loss, first - 0.5);
    EXPECT_GT(r.metrics->final_loss, *r.metrics->loss_floor - 0.05) << "cannot beat the entropy rate";
  }
}
