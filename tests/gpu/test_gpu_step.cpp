// The whole training step on the GPU against the CPU: the same config, data
// and initial parameters give the same loss curve (within what a different
// summation order and, for bf16 GEMMs, a shorter mantissa allow), and the
// arena's peak agrees with what the device's memory pool and the driver say.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/arena.h"
#include "core/config.h"
#include "gpu_test.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/data.h"
#include "kernels/model.h"
#include "kernels/ops.h"
#include "kernels/param_layout.h"
#include "kernels/shard.h"

namespace memfront {
namespace {

Config small_config() {
  Config config;
  config.model = {.vocab = 128, .seq = 48, .width = 64, .heads = 4, .layers = 3};
  config.batch.micro = 4;
  config.train.lr = 3e-3;
  return config;
}

struct TrainingRun {
  std::vector<double> losses;  // per optimizer step
  double eval_loss = 0;
  uint64_t arena_peak = 0;
};

// `steps` optimizer steps of one rank on `ops`, tokens uploaded as the trial does.
TrainingRun train(const Config& config, Ops& ops, int steps) {
  TrainingRun run;
  Arena arena(0, ops.make_memory());
  const ParamLayout layout(config.model);
  TrainingState state(config, layout, arena, nullptr, ops);
  Gpt model(config, arena, &state);
  const auto source = make_token_source(config);
  const int B = config.batch.micro, T = config.model.seq;
  const uint64_t tokens = uint64_t(B) * T;
  std::vector<int32_t> host_inputs(tokens), host_targets(tokens);
  Buffer inputs = arena.allocate_array<int32_t>(tokens, MemCategory::workspace, "inputs");
  Buffer targets = arena.allocate_array<int32_t>(tokens, MemCategory::workspace, "targets");
  auto load = [&](uint64_t first_sample) {
    fill_batch(*source, first_sample, B, T, host_inputs.data(), host_targets.data());
    ops.upload(inputs.data(), host_inputs.data(), tokens * sizeof(int32_t));
    ops.upload(targets.data(), host_targets.data(), tokens * sizeof(int32_t));
  };
  for (int step = 0; step < steps; ++step) {
    model.zero_grads();
    double loss = 0;
    for (int micro = 0; micro < config.batch.accum; ++micro) {
      load((uint64_t(step) * config.batch.accum + micro) * B);
      loss += model.forward_backward(inputs.as<int32_t>(), targets.as<int32_t>(), 1.0f / config.batch.accum);
    }
    model.optimizer_step(step + 1);
    run.losses.push_back(loss / config.batch.accum);
  }
  load(kEvalSampleBase);
  run.eval_loss = model.evaluate(inputs.as<int32_t>(), targets.as<int32_t>(), B) / (double(B) * config.model.seq);
  ops.synchronize();
  run.arena_peak = arena.peak_total();
  return run;
}

void expect_same_curve(const TrainingRun& cpu, const TrainingRun& gpu, double relative, const std::string& what) {
  ASSERT_EQ(cpu.losses.size(), gpu.losses.size());
  for (size_t i = 0; i < cpu.losses.size(); ++i) {
    EXPECT_NEAR(gpu.losses[i], cpu.losses[i], relative * std::abs(cpu.losses[i])) << what << ", step " << i;
  }
  EXPECT_NEAR(gpu.eval_loss, cpu.eval_loss, relative * std::abs(cpu.eval_loss)) << what << ", held-out loss";
}

struct Variant {
  std::string name;
  void (*apply)(Config&);
};

// Every knob that changes what one rank's step computes.
const std::vector<Variant>& variants() {
  static const std::vector<Variant> all = {
      {"baseline", [](Config&) {}},
      {"checkpoint every 1", [](Config& c) { c.checkpoint.every = 1; }},
      {"checkpoint every 2, bf16 activations", [](Config& c) {
         c.checkpoint.every = 2;
         c.precision.activations = DType::bf16;
       }},
      {"fp8e4m3 activations", [](Config& c) { c.precision.activations = DType::fp8e4m3; }},
      {"int8 activations", [](Config& c) { c.precision.activations = DType::int8; }},
      {"top-k attention K=8", [](Config& c) { c.topk.attention = 8; }},
      {"top-k attention K=T", [](Config& c) { c.topk.attention = c.model.seq; }},
      {"int8 gradients", [](Config& c) { c.quant.grad = DType::int8; }},
      {"int4 gradients, block 64", [](Config& c) {
         c.quant.grad = DType::int4;
         c.quant.block = 64;
       }},
      {"top-k gradients 10%", [](Config& c) { c.topk.grad = 0.1; }},
      {"accumulation 2", [](Config& c) { c.batch.accum = 2; }},
  };
  return all;
}

TEST(GpuStep, LossCurveMatchesTheCpuForEveryKnob) {
  MEMFRONT_REQUIRE_GPU();
  constexpr int kSteps = 8;
  for (const Variant& variant : variants()) {
    Config config = small_config();
    variant.apply(config);
    const TrainingRun cpu = train(config, cpu_ops(), kSteps);
    config.backend = Backend::cuda;
    const auto cuda = make_cuda_ops(config, 0);
    const TrainingRun gpu = train(config, *cuda, kSteps);
    // fp32 everywhere: only the order of summation differs (cuBLAS, tree
    // reductions), which 8 steps of AdamW amplify to well under 0.5%.
    expect_same_curve(cpu, gpu, 5e-3, variant.name);
  }
}

TEST(GpuStep, Bf16GemmsTrainAndStayCloseToFp32) {
  MEMFRONT_REQUIRE_GPU();
  Config config = small_config();
  config.backend = Backend::cuda;
  const auto fp32 = make_cuda_ops(config, 0);
  const TrainingRun reference = train(config, *fp32, 12);
  config.precision.compute = DType::bf16;
  const auto bf16 = make_cuda_ops(config, 0);
  const TrainingRun run = train(config, *bf16, 12);
  EXPECT_LT(run.losses.back(), run.losses.front() - 0.1) << "bf16 GEMMs must still train";
  // bf16 keeps 8 bits of mantissa: a few percent over a short run.
  expect_same_curve(reference, run, 3e-2, "bf16 compute against fp32 compute");
}

// The arena is the measurement; the memory pool's own high-water mark of
// bytes in use and the driver's free-memory count must tell the same story.
TEST(GpuStep, ArenaPeakAgreesWithThePoolAndTheDriver) {
  MEMFRONT_REQUIRE_GPU();
  Config config = small_config();
  config.model = {.vocab = 4096, .seq = 256, .width = 512, .heads = 8, .layers = 4};
  config.batch.micro = 8;
  config.backend = Backend::cuda;
  const auto ops = make_cuda_ops(config, 0);
  int device = 0;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  cudaMemPool_t pool;
  ASSERT_EQ(cudaDeviceGetDefaultMemPool(&pool, device), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaMemPoolTrimTo(pool, 0), cudaSuccess);
  uint64_t zero = 0;
  ASSERT_EQ(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero), cudaSuccess);
  ASSERT_EQ(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &zero), cudaSuccess);
  size_t free_before = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_before, &total), cudaSuccess);

  const TrainingRun run = train(config, *ops, 2);

  uint64_t used_high = 0, reserved_high = 0, reserved_now = 0;
  ASSERT_EQ(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &used_high), cudaSuccess);
  ASSERT_EQ(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &reserved_high), cudaSuccess);
  ASSERT_EQ(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved_now), cudaSuccess);
  size_t free_after = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_after, &total), cudaSuccess);

  // The pool rounds each of the ~120 live allocations up to its granularity
  // (not documented): 1% of the peak plus 4 MiB covers that. Anything outside
  // the arena that used the pool would show here, and the pool can never
  // have held less than the arena.
  EXPECT_GE(used_high, run.arena_peak);
  EXPECT_LE(static_cast<double>(used_high), 1.01 * run.arena_peak + 4.0 * (1 << 20))
      << "pool used-high " << used_high << " B, arena peak " << run.arena_peak << " B";
  // The pool keeps what it reserved (release threshold: everything), so the
  // driver sees at least the reservation gone from free memory, and the
  // reservation covers the peak with the pool's chunk granularity on top.
  EXPECT_GE(reserved_high, used_high);
  EXPECT_LE(static_cast<double>(reserved_high), 1.01 * used_high + 64.0 * (1 << 20));
  EXPECT_GE(static_cast<double>(free_before - free_after), 0.99 * static_cast<double>(reserved_now));
}

}  // namespace
}  // namespace memfront
