// The distributed step under mpirun (1-4 ranks): sharding strategies against
// ddp, compression with and without error feedback, the exact per-rank
// memory of each strategy, and the bytes each one sends.
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <functional>

#include <gtest/gtest.h>

#include "tests/mpi_test.h"

#include "core/config.h"
#include "kernels/comm.h"
#include "kernels/param_layout.h"
#include "kernels/shard.h"
#include "kernels/trial.h"

using namespace memfront;

namespace {

const auto& mpi_world = testing_mpi::world_size;
const auto& mpi_rank = testing_mpi::rank;

// A small model every rank count can run quickly; world = this job's size.
Config small(const std::string& strategy, int steps = 3) {
  Config c = parse_config_text(R"({"model": {"vocab": 64, "seq": 16, "width": 32, "heads": 2, "layers": 3},
                                   "batch": {"micro": 2}, "train": {"warmup": 0, "lr": 0.003}})",
                               "small");
  c.world = mpi_world();
  c.shard.group = c.world;
  c.placement.ranks_per_node = c.world;
  c.shard.strategy = *[&] {
    for (ShardStrategy s : {ShardStrategy::ddp, ShardStrategy::zero1, ShardStrategy::zero2, ShardStrategy::zero3,
                            ShardStrategy::hybrid}) {
      if (to_string(s) == strategy) return std::optional(s);
    }
    return std::optional<ShardStrategy>();
  }();
  c.train.steps = steps;
  return c;
}

TrialMetrics run(const Config& c) {
  TrialRecord r = run_trial(c, {});
  EXPECT_EQ(r.status, TrialStatus::ok) << r.error;
  return *r.metrics;
}

uint64_t peak(const TrialMetrics& m, int rank, MemCategory c) {
  return m.ranks.at(rank).peak[static_cast<int>(c)];
}

}  // namespace

// With the same reduction order (flat rings, one micro-batch) every ZeRO stage
// computes exactly what ddp computes: same losses, bit for bit.
TEST(Distributed, ZeroStagesReproduceDdpBitwise) {
  const TrialMetrics ddp = run(small("ddp"));
  for (const char* strategy : {"zero1", "zero2", "zero3"}) {
    const TrialMetrics m = run(small(strategy));
    EXPECT_EQ(m.loss_curve, ddp.loss_curve) << strategy;
    EXPECT_EQ(m.final_loss, ddp.final_loss) << strategy;
  }
}

// Other reduction orders (hybrid groups, hierarchical collectives, gradient
// accumulation under zero2) change only the rounding: within 1e-5 relative.
TEST(Distributed, OtherReductionOrdersAgreeWithinFp32Tolerance) {
  const int W = mpi_world();
  const TrialMetrics ddp = run(small("ddp"));
  auto expect_close = [&](const TrialMetrics& m, const char* what) {
    ASSERT_EQ(m.loss_curve.size(), ddp.loss_curve.size());
    for (size_t i = 0; i < m.loss_curve.size(); ++i) {
      EXPECT_NEAR(m.loss_curve[i], ddp.loss_curve[i], 1e-5 * std::abs(ddp.loss_curve[i])) << what << " step " << i;
    }
    EXPECT_NEAR(m.final_loss, ddp.final_loss, 1e-5 * ddp.final_loss) << what;
  };
  for (int G = 1; G <= W; ++G) {
    if (W % G != 0) continue;
    Config c = small("hybrid");
    c.shard.group = G;
    expect_close(run(c), "hybrid");
  }
  if (W % 2 == 0) {
    Config c = small("zero3");
    c.placement.ranks_per_node = W / 2;
    c.placement.collectives = CollectiveAlgo::hierarchical;
    expect_close(run(c), "hierarchical zero3");
  }
  // Two micro-batches of one against one of two: same samples, other sums.
  Config accum = small("zero2");
  accum.batch.micro = 1;
  accum.batch.accum = 2;
  const TrialMetrics a = run(accum);
  Config whole = small("ddp");
  const TrialMetrics b = run(whole);
  for (size_t i = 0; i < a.loss_curve.size(); ++i) {
    EXPECT_NEAR(a.loss_curve[i], b.loss_curve[i], 1e-5 * b.loss_curve[i]) << "accumulation step " << i;
  }
}

// Knobs that compress nothing reproduce the uncompressed run: fp32 on the wire
// is the uncompressed path, and Top-K that keeps every entry sends everything
// (bitwise when a sum of two is the only order there is).
TEST(Distributed, LosslessSettingsReproduceTheUncompressedRun) {
  const TrialMetrics plain = run(small("ddp"));
  Config explicit_fp32 = small("ddp");
  explicit_fp32.quant.grad = DType::fp32;
  explicit_fp32.quant.error_feedback = false;
  explicit_fp32.topk.grad = 1.0;
  EXPECT_EQ(run(explicit_fp32).loss_curve, plain.loss_curve);

  Config keep_all = small("ddp");
  keep_all.topk.grad = 0.9999999;  // rounds up to every entry of every unit
  const TrialMetrics sparse = run(keep_all);
  for (size_t i = 0; i < plain.loss_curve.size(); ++i) {
    if (mpi_world() <= 2) {
      EXPECT_EQ(sparse.loss_curve[i], plain.loss_curve[i]);
    } else {
      EXPECT_NEAR(sparse.loss_curve[i], plain.loss_curve[i], 1e-5 * plain.loss_curve[i]);
    }
  }
}

// Lossy gradients still train. For Top-K, error feedback brings the run
// measurably closer to the uncompressed one (without it, the entries that are
// never among the largest are never sent).
TEST(Distributed, LossyGradientsTrainAndTopKErrorFeedbackHelps) {
  const int steps = 50;
  const TrialMetrics plain = run(small("ddp", steps));
  for (const char* strategy : {"ddp", "zero1", "zero2"}) {
    Config int4 = small(strategy, steps);
    int4.quant.grad = DType::int4;
    int4.quant.block = 64;
    const TrialMetrics q = run(int4);
    EXPECT_LT(q.loss_curve.back(), q.loss_curve.front() - 0.2) << strategy << ": int4 gradients still train";
  }

  Config with = small("zero1", steps);
  with.topk.grad = 0.05;
  Config without = with;
  without.topk.error_feedback = false;
  const TrialMetrics a = run(with), b = run(without);
  EXPECT_LT(a.loss_curve.back(), a.loss_curve.front() - 0.2) << "Top-K 5% still trains";
  EXPECT_LT(std::abs(a.final_loss - plain.final_loss), std::abs(b.final_loss - plain.final_loss))
      << "feedback " << a.final_loss << ", none " << b.final_loss << ", plain " << plain.final_loss;
}

// What error feedback guarantees, measured through the real compressed
// reduction: summed over steps, the gradient that arrives equals the gradient
// that was meant, up to one step's rounding. Without feedback a constant
// gradient is rounded the same way every step and the error grows each step.
TEST(Distributed, ErrorFeedbackKeepsTheSentGradientUnbiased) {
  const int W = mpi_world(), me = mpi_rank();
  const int steps = 40;
  double worst_error[2] = {0, 0};
  for (bool feedback : {true, false}) {
    Config c = small("zero1");
    c.quant.grad = DType::int4;
    c.quant.block = 64;
    c.quant.error_feedback = feedback;
    Arena arena;
    const ParamLayout layout(c.model);
    auto comm = W > 1 ? make_mpi_communicator(Topology::from_config(c), arena, std::chrono::seconds(30)) : nullptr;
    TrainingState state(c, layout, arena, comm.get());
    // Rank r always contributes the same gradient g_r; the mean over ranks is what should arrive.
    auto gradient = [](int rank, uint64_t i) { return 1e-3f * std::sin(0.37f * i + rank) * (1 + i % 7); };
    std::vector<double> arrived(layout.total, 0.0);
    for (int t = 1; t <= steps; ++t) {
      state.zero_grads();
      for (int u = 0; u < layout.unit_count(); ++u) {
        float* g = state.acquire_grads(u);
        for (uint64_t i = 0; i < layout.unit_size(u); ++i) g[i] = gradient(me, layout.unit_begin(u) + i);
        state.release_grads(u);
      }
      state.optimizer_step(t);  // reduces (and averages) my shard of every unit into the gradient array
      for (int u = 0; u < layout.unit_count(); ++u) {
        const Partition part = Partition::even(layout.unit_size(u), W);
        for (uint64_t i = part.begin(me); i < part.begin(me) + part.size(me); ++i) {
          arrived[layout.unit_begin(u) + i] += state.local_grads()[layout.unit_begin(u) + i];
        }
      }
    }
    for (int u = 0; u < layout.unit_count(); ++u) {
      const Partition part = Partition::even(layout.unit_size(u), W);
      for (uint64_t i = part.begin(me); i < part.begin(me) + part.size(me); ++i) {
        const uint64_t flat = layout.unit_begin(u) + i;
        double meant = 0;
        for (int r = 0; r < W; ++r) meant += gradient(r, flat) / W;
        worst_error[feedback ? 0 : 1] = std::max(worst_error[feedback ? 0 : 1], std::abs(arrived[flat] - steps * meant));
      }
    }
  }
  // One step's int4 rounding is at most half a step of amax/7 (amax <= 7e-3): 5e-4.
  EXPECT_LT(worst_error[0], 1e-3) << "with feedback the error stays within a step's rounding";
  EXPECT_GT(worst_error[1], 10 * worst_error[0]) << "without feedback it grows with the steps";
}

// Per-rank params, grads and optimizer bytes, to the byte, against each
// strategy's closed form for fp32 training (4-byte weights and gradients, two
// 4-byte AdamW moments), with shards from Partition::even over each unit.
TEST(Distributed, PerRankModelStateMatchesClosedForms) {
  const int W = mpi_world();
  const ModelShape shapes[] = {{64, 16, 32, 2, 3}, {50, 8, 24, 3, 2}, {97, 12, 40, 4, 4}};
  for (const ModelShape& shape : shapes) {
    const ParamLayout layout(shape);
    const uint64_t Psi = layout.total;
    const uint64_t U0 = layout.unit_size(layout.embedding_unit());
    const uint64_t Ub = layout.unit_size(layout.block_unit(0));
    const uint64_t Un = layout.unit_size(layout.final_norm_unit());
    for (const char* strategy : {"ddp", "zero1", "zero2", "zero3", "hybrid"}) {
      Config c = small(strategy, 1);
      c.model = shape;
      const int G = c.shard.strategy == ShardStrategy::hybrid ? (W % 2 == 0 ? W / 2 : W) : W;
      c.shard.group = G;
      const TrialMetrics m = run(c);
      for (int r = 0; r < W; ++r) {
        SCOPED_TRACE(testing::Message() << strategy << " rank " << r << " V=" << shape.vocab);
        uint64_t owned = 0;  // S_r: elements of every unit this rank's shard holds
        for (int u = 0; u < layout.unit_count(); ++u) owned += Partition::even(layout.unit_size(u), G).size(r % G);
        const bool zero1 = c.shard.strategy != ShardStrategy::ddp;
        const bool zero2 = zero1 && c.shard.strategy != ShardStrategy::zero1;
        const bool zero3 = c.shard.strategy == ShardStrategy::zero3 || c.shard.strategy == ShardStrategy::hybrid;
        // zero3 gathers one block at a time, or the embedding with the final
        // LayerNorm for the tied LM head.
        const uint64_t params = zero3 ? 4 * owned + 4 * std::max(U0 + Un, Ub) : 4 * Psi;
        // zero2/3 hold the embedding's whole gradient through backward (the
        // head and the lookup both add to it) beside one other unit's.
        const uint64_t grads = zero2 ? 4 * owned + 4 * (U0 + std::max(Un, Ub)) : 4 * Psi;
        const uint64_t optimizer = zero1 ? 8 * owned : 8 * Psi;
        EXPECT_EQ(peak(m, r, MemCategory::params), params);
        EXPECT_EQ(peak(m, r, MemCategory::grads), grads);
        EXPECT_EQ(peak(m, r, MemCategory::optimizer), optimizer);
      }
    }
  }
}

// The bytes a step sends, all ranks together, against the ring formulas: a
// reduce-scatter or all-gather of S elements sends (W-1)·S elements in all.
TEST(Distributed, CountedBytesFollowTheRingFormulas) {
  const int W = mpi_world();
  Config c = small("ddp", 2);
  const ParamLayout layout(c.model);
  const uint64_t Psi = layout.total;
  const uint64_t U0 = layout.unit_size(layout.embedding_unit());
  const uint64_t Un = layout.unit_size(layout.final_norm_unit());
  const uint64_t blocks = Psi - U0 - Un;
  auto total = [](const TrialMetrics& m) { return m.bytes_intra_node + m.bytes_inter_node; };
  // ddp: one all-reduce of every unit. zero1/zero2: reduce-scatter + all-gather.
  for (const char* strategy : {"ddp", "zero1", "zero2"}) {
    EXPECT_EQ(total(run(small(strategy, 2))), 4 * 2 * uint64_t(W - 1) * Psi) << strategy;
  }
  // zero3: gradients reduce-scattered once; parameters gathered for forward
  // and backward: the embedding three times (lookup, LM head, its backward),
  // the final LayerNorm twice, every block twice.
  EXPECT_EQ(total(run(small("zero3", 2))), 4 * uint64_t(W - 1) * (Psi + 3 * U0 + 2 * Un + 2 * blocks));
}

TEST(Distributed, PlacementDecidesWhichBytesCrossNodes) {
  const int W = mpi_world();
  if (W != 4) GTEST_SKIP() << "needs 4 ranks (2 nodes of 2)";
  Config block = small("ddp", 2);
  block.placement.ranks_per_node = 2;
  block.placement.link_latency_us = 0;
  Config cyclic = block;
  cyclic.placement.order = PlacementOrder::cyclic;
  Config hierarchical = block;
  hierarchical.placement.collectives = CollectiveAlgo::hierarchical;
  const TrialMetrics b = run(block), y = run(cyclic), h = run(hierarchical);
  EXPECT_TRUE(b.emulated);
  // The ring 0-1-2-3 crosses between nodes twice in block order, four times in cyclic.
  EXPECT_EQ(y.bytes_inter_node, 2 * b.bytes_inter_node);
  EXPECT_EQ(b.bytes_intra_node + b.bytes_inter_node, y.bytes_intra_node + y.bytes_inter_node);
  EXPECT_LT(h.bytes_inter_node, b.bytes_inter_node);
  if (mpi_rank() == 0) {
    std::printf("inter-node bytes per step: block %llu, cyclic %llu, hierarchical %llu\n",
                static_cast<unsigned long long>(b.bytes_inter_node),
                static_cast<unsigned long long>(y.bytes_inter_node),
                static_cast<unsigned long long>(h.bytes_inter_node));
  }
}
