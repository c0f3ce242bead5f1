// The timing protocol against a CPU antagonist: the same one-rank trial run
// on the quiet machine and beside busy processes (pinned, one per core from
// core 0 up, as many as the benchmark's argument), alternately, and the ratio
// loaded ÷ quiet of two figures, medians over the rounds:
//   naive     the median step time of a trial that is left unbound
//             (memfront-trial --no-bind), what a stopwatch around the step gives;
//   protocol  what the timing protocol reports (kernels/trial.cpp,
//             core/timing.h): the rank binds to the least busy free core, and
//             when the step was still contended, the step less the time the
//             ranks waited for a CPU (metrics.timing.quiet_step_s).
// 1.0 means the load left the figure unmoved. With fewer antagonists than
// cores the protocol moves the trial out of their way; with one on every core
// nothing can, and it is the estimate that holds the figure.
//
//   build/bench/bench_timing [--benchmark_filter=...]
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/results.h"

namespace {

using namespace memfront;
namespace fs = std::filesystem;

// Steps of a few tens of milliseconds: long enough for the scheduler to share
// a core between the trial and an antagonist within every step.
const char* kConfig = R"({"model": {"vocab": 128, "seq": 64, "width": 128, "heads": 4, "layers": 2},
                          "batch": {"micro": 4}, "train": {"steps": 10, "warmup": 1}})";

// Busy processes pinned to cores 0, 1, ...; killed by PID, and each ends on
// its own after 120 s should the benchmark die first.
class Antagonists {
 public:
  explicit Antagonists(int count) {
    for (int i = 0; i < count; ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(i, &one);
        sched_setaffinity(0, sizeof(one), &one);
        alarm(120);
        volatile uint64_t spin = 0;
        for (;;) spin = spin + 1;
      }
      if (pid < 0) throw std::runtime_error("fork failed");
      pids_.push_back(pid);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // running before the trial looks
  }
  ~Antagonists() {
    for (pid_t pid : pids_) kill(pid, SIGKILL);
    for (pid_t pid : pids_) waitpid(pid, nullptr, 0);
  }

 private:
  std::vector<pid_t> pids_;
};

struct Figures {
  double naive_s, protocol_s;
};

// One run of the trial; `bind` false is the naive run.
TrialRecord run_trial(bool bind) {
  const fs::path dir = fs::temp_directory_path() / ("memfront-bench-timing-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path config = dir / "config.json", out = dir / "record.json";
  std::ofstream(config) << kConfig;
  fs::remove(out);
  const std::string command = std::string(MEMFRONT_TRIAL_EXE) + " --quiet" + (bind ? "" : " --no-bind") +
                              " --config " + config.string() + " --out " + out.string() + " > /dev/null 2>&1";
  if (std::system(command.c_str()) != 0) throw std::runtime_error("the trial failed: " + command);
  TrialRecord record = read_record_file(out);
  if (!record.metrics || !record.metrics->timing) throw std::runtime_error("the trial recorded no timing");
  return record;
}

Figures measure() {
  const TrialRecord naive = run_trial(false);
  const TrialRecord protocol = run_trial(true);
  const TimingQuality& timing = *protocol.metrics->timing;
  const double reported = timing.contended && timing.quiet_step_s ? *timing.quiet_step_s
                                                                   : protocol.metrics->step_time_s.median;
  return {naive.metrics->step_time_s.median, reported};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void BM_StepTimeBesideAntagonists(benchmark::State& state) {
  const int antagonists = static_cast<int>(state.range(0));
  const int rounds = 3;
  std::vector<double> naive_quiet, naive_loaded, protocol_quiet, protocol_loaded;
  for (auto _ : state) {
    for (int round = 0; round < rounds; ++round) {
      const Figures quiet = measure();
      naive_quiet.push_back(quiet.naive_s);
      protocol_quiet.push_back(quiet.protocol_s);
      const Antagonists load(antagonists);
      const Figures loaded = measure();
      naive_loaded.push_back(loaded.naive_s);
      protocol_loaded.push_back(loaded.protocol_s);
    }
  }
  state.counters["antagonists"] = antagonists;
  state.counters["cores"] = std::thread::hardware_concurrency();
  state.counters["quiet_ms"] = median(protocol_quiet) * 1e3;
  state.counters["naive_ratio"] = median(naive_loaded) / median(naive_quiet);
  state.counters["protocol_ratio"] = median(protocol_loaded) / median(protocol_quiet);
}

// One antagonist (a core left free), and one on every core.
BENCHMARK(BM_StepTimeBesideAntagonists)
    ->Arg(1)
    ->Arg(static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency())))
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
