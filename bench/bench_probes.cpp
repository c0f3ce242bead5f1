// bench_probes: what listening costs. The small model's training step (as
// bench_step runs it, inside a "step" range as a trial does) with
//   probes/none         no subscribers: annotation ranges and arena events go nowhere
//   probes/phase_timer  the host probe's PhaseTimer, which every trial runs
//   probes/trace        PhaseTimer + TraceRecorder, what a trial with --trace runs
// Each runs 5 times; the medians' CPU time per step and the ratios
// phase_timer/none and trace/none are printed after the benchmarks. The
// differences are small beside a busy machine's drift: run it with
// --benchmark_enable_random_interleaving=true to spread that drift evenly.
#include <cblas.h>

#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <benchmark/benchmark.h>

#include "core/annotate.h"
#include "core/arena.h"
#include "core/config.h"
#include "kernels/data.h"
#include "kernels/model.h"
#include "probes/host_probe.h"
#include "probes/trace_writer.h"

namespace {

using namespace memfront;

enum class Probes { none, phase_timer, trace };

Config small_model() {
  Config config;
  config.model.vocab = 256;
  config.model.seq = 64;
  config.model.width = 64;
  config.model.heads = 4;
  config.model.layers = 4;
  config.batch.micro = 4;
  return config;
}

void bench_probed_step(benchmark::State& state, Probes probes) {
  const Config config = small_model();
  const int B = config.batch.micro, T = config.model.seq;
  Arena arena;
  // The recorder subscribes before the model allocates, as in a trial.
  std::optional<TraceRecorder> trace;
  if (probes == Probes::trace) trace.emplace(arena);
  std::optional<PhaseTimer> phases;
  if (probes != Probes::none) phases.emplace();
  Gpt model(config, arena);
  Buffer inputs = arena.allocate_array<int32_t>(uint64_t(B) * T, MemCategory::workspace, "inputs");
  Buffer targets = arena.allocate_array<int32_t>(uint64_t(B) * T, MemCategory::workspace, "targets");
  const SyntheticTokens source(config.model.vocab, T, config.data.seed, config.data.noise);
  fill_batch(source, 0, B, T, inputs.as<int32_t>(), targets.as<int32_t>());

  int optimizer_steps = 0;
  auto step = [&] {
    annotate::Range range(annotate::Phase::step);
    model.zero_grads();
    model.forward_backward(inputs.as<int32_t>(), targets.as<int32_t>(), 1.0f);
    model.optimizer_step(++optimizer_steps);
  };
  step();  // warm-up: cold caches and first-touch page faults
  for (auto _ : state) {
    step();
    // A trial takes the phase times every step; so does this.
    if (phases) benchmark::DoNotOptimize(phases->take());
  }
  if (trace) {
    state.counters["trace_events"] = static_cast<double>(trace->event_count());
    state.counters["dropped"] = static_cast<double>(trace->dropped());
  }
}

// Keeps the median CPU time per step of each variant for the summary.
class MedianReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.aggregate_name != "median") continue;
      // GetAdjustedCPUTime is in the run's unit; the multiplier is units per second.
      median_s_[run.run_name.function_name] = run.GetAdjustedCPUTime() / benchmark::GetTimeUnitMultiplier(run.time_unit);
    }
  }
  const std::map<std::string, double>& median_s() const { return median_s_; }

 private:
  std::map<std::string, double> median_s_;
};

}  // namespace

int main(int argc, char** argv) {
  openblas_set_num_threads(1);  // one thread: CPU time per step is steady on a busy machine
  for (const auto& [name, probes] : {std::pair{"probes/none", Probes::none},
                                      std::pair{"probes/phase_timer", Probes::phase_timer},
                                      std::pair{"probes/trace", Probes::trace}}) {
    benchmark::RegisterBenchmark(name, bench_probed_step, probes)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(0.5)
        ->Repetitions(5)
        ->ReportAggregatesOnly(true);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  MedianReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  const auto& median = reporter.median_s();
  const auto none = median.find("probes/none");
  if (none == median.end()) return 0;  // filtered out: nothing to compare with
  std::printf("\nstep time, median CPU time of 5 repetitions (small model)\n");
  for (const auto& [name, seconds] : median) {
    std::printf("  %-20s %9.3f ms   %.3fx probes/none\n", name.c_str(), seconds * 1e3, seconds / none->second);
  }
  return 0;
}
