// bench_strategies: whole-step time and per-rank peak memory of each sharding
// strategy (and the compression knobs on top of them) for the medium shape,
// under mpirun:
//
//   mpirun -np 2 ./build/bench/bench_strategies
//
// Every rank runs every benchmark with a fixed iteration count (the ranks step
// together through collectives, so they must agree on how many steps to run);
// rank 0 prints. Counters: peak MiB per category on rank 0 (arena, measured),
// MiB rank 0 sends per step, tokens/s of the whole job.
#include <mpi.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/topology.h"
#include "kernels/comm.h"
#include "kernels/data.h"
#include "kernels/model.h"
#include "kernels/shard.h"

namespace {

using namespace memfront;

constexpr int kSteps = 3;  // timed steps per benchmark, after one untimed

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// The medium shape of bench_step, world = this job's size.
Config medium() {
  Config c;
  c.model = {/*vocab=*/2048, /*seq=*/128, /*width=*/256, /*heads=*/8, /*layers=*/6};
  c.batch.micro = 8;
  c.world = world_size();
  c.shard.group = c.world;
  c.placement.ranks_per_node = c.world;
  return c;
}

void run_steps(benchmark::State& state, const Config& config) {
  Arena arena;
  const ParamLayout layout(config.model);
  std::unique_ptr<Communicator> comm;
  if (config.world > 1) comm = make_mpi_communicator(Topology::from_config(config), arena, std::chrono::seconds(120));
  TrainingState training(config, layout, arena, comm.get());
  Gpt model(config, arena, &training);
  const int rank = comm ? comm->rank() : 0;
  const int B = config.batch.micro, T = config.model.seq;
  SyntheticTokens source(config.model.vocab, T, config.data.seed, config.data.noise);
  std::vector<int32_t> inputs(B * T), targets(B * T);
  int step = 0;
  auto one_step = [&] {
    fill_batch(source, (uint64_t(step) * config.world + rank) * B, B, T, inputs.data(), targets.data());
    model.zero_grads();
    model.forward_backward(inputs.data(), targets.data(), 1.0f);
    model.optimizer_step(++step);
  };
  one_step();  // untimed: first-touch of every buffer
  const CommCounters before = comm ? comm->counters() : CommCounters{};
  for (auto _ : state) one_step();
  const CommCounters after = comm ? comm->counters() : CommCounters{};

  constexpr double MiB = 1024.0 * 1024.0;
  auto peak = [&](MemCategory c) { return arena.peak(c) / MiB; };
  state.counters["params_MiB"] = peak(MemCategory::params);
  state.counters["grads_MiB"] = peak(MemCategory::grads);
  state.counters["optim_MiB"] = peak(MemCategory::optimizer);
  state.counters["activ_MiB"] = peak(MemCategory::activations);
  state.counters["comm_MiB"] = peak(MemCategory::comm);
  state.counters["total_MiB"] = arena.peak_total() / MiB;
  const double sent = double(after.intra_node_bytes + after.inter_node_bytes) -
                      double(before.intra_node_bytes + before.inter_node_bytes);
  state.counters["sent_MiB/step"] = sent / state.iterations() / MiB;
  state.counters["tokens/s"] = benchmark::Counter(double(B) * T * config.world * state.iterations(),
                                                  benchmark::Counter::kIsRate);
}

struct Variant {
  std::string name;
  std::function<void(Config&)> set;
};

const std::vector<Variant> kVariants = {
    {"ddp", [](Config& c) { c.shard.strategy = ShardStrategy::ddp; }},
    {"zero1", [](Config& c) { c.shard.strategy = ShardStrategy::zero1; }},
    {"zero2", [](Config& c) { c.shard.strategy = ShardStrategy::zero2; }},
    {"zero3", [](Config& c) { c.shard.strategy = ShardStrategy::zero3; }},
    {"hybrid_group1", [](Config& c) { c.shard.strategy = ShardStrategy::hybrid; c.shard.group = 1; }},
    {"zero2_int8_grads", [](Config& c) { c.shard.strategy = ShardStrategy::zero2; c.quant.grad = DType::int8; }},
    {"zero3_int8_weights", [](Config& c) { c.shard.strategy = ShardStrategy::zero3; c.quant.weights = DType::int8; }},
    {"ddp_topk_1pct", [](Config& c) { c.shard.strategy = ShardStrategy::ddp; c.topk.grad = 0.01; }},
};

// Rank 0 reports; the other ranks run the same benchmarks silently.
class SilentReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  for (const Variant& variant : kVariants) {
    Config config = medium();
    variant.set(config);
    benchmark::RegisterBenchmark(("step/medium/W" + std::to_string(config.world) + "/" + variant.name).c_str(),
                                 [config](benchmark::State& state) { run_steps(state, config); })
        ->Iterations(kSteps)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  SilentReporter silent;
  if (rank == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    benchmark::RunSpecifiedBenchmarks(&silent);
  }
  benchmark::Shutdown();
  MPI_Finalize();
  return 0;
}
