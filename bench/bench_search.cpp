// bench_search: how quickly each search strategy finds the trade-off front,
// replayed against a recorded exhaustive sweep (no trial is run):
//
//   ./build/bench/bench_search [--study examples/exhaustive-small.json]
//                              [--recorded results/exhaustive-small.jsonl]
//
// For random, halving and nsga2 and 10 seeds each, the strategy gets a budget
// of 25% of the space's trials and proposes them one batch at a time; each is
// answered from the recorded sweep (a shorter halving run from the recorded
// run's first steps). After every trial the hypervolume of the full-length
// trials found so far is taken as a share of the recorded sweep's own front,
// with the same reference point. Counters are medians over the seeds: the
// share after 10% and 25% of the space's trials (the goal: 95% within 25%),
// the trials needed to reach 95%, and the steps spent as a share of running
// the whole space (halving's short runs cost less than a trial each).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/pareto.h"
#include "core/results.h"
#include "tuner/search.h"
#include "tuner/study.h"
#include "tuner/sweep.h"

namespace {

using namespace memfront;

std::string study_path = MEMFRONT_SOURCE_DIR "/examples/exhaustive-small.json";
std::string recorded_path = MEMFRONT_SOURCE_DIR "/results/exhaustive-small.jsonl";
constexpr int kSeeds = 10;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

struct Replay {
  Study study;
  std::vector<Candidate> candidates;
  std::vector<TrialRecord> recorded;
  ObjectivePoint reference_point;
  double full_volume = 0;
};

Replay& replay() {
  static Replay r = [] {
    Replay r{load_study(study_path), {}, read_results(recorded_path).trials, {}, 0};
    r.candidates = enumerate_space(r.study);
    // loss_delta in the recorded file is against the reference at full
    // length; the share is measured on full-length trials, as recorded.
    std::vector<ObjectivePoint> points;
    for (const TrialRecord& t : r.recorded) {
      if (auto p = objective_point(t, r.study.objectives)) points.push_back(*p);
    }
    r.reference_point.assign(r.study.objectives.size(), -1e300);
    for (const ObjectivePoint& p : points) {
      for (size_t k = 0; k < p.size(); ++k) r.reference_point[k] = std::max(r.reference_point[k], p[k]);
    }
    for (double& x : r.reference_point) x += std::abs(x) * 0.1 + 1e-9;
    r.full_volume = hypervolume(points, r.reference_point);
    return r;
  }();
  return r;
}

// Hypervolume share after each trial of one seeded run of `strategy`, and the
// steps it ran in all.
std::vector<double> share_curve(const std::string& strategy, uint64_t seed, double& steps_spent) {
  Replay& r = replay();
  Study study = r.study;
  study.search.strategy = strategy;
  study.search.seed = seed;
  study.search.budget_trials = static_cast<int>(std::ceil(0.25 * r.candidates.size()));
  ReplayLauncher launcher(r.recorded);
  // The reference's loss at each length, for loss_delta of shorter runs.
  std::map<int, double> reference_loss;
  auto loss_delta_base = [&](int steps) {
    if (!reference_loss.contains(steps)) {
      Config reference = study.reference;
      reference.train.steps = steps;
      LaunchRequest request;
      request.config = reference;
      const LaunchOutcome outcome = launcher.run(request);
      reference_loss[steps] = outcome.record.metrics ? outcome.record.metrics->final_loss : 0.0;
    }
    return reference_loss[steps];
  };
  auto search = make_strategy(study, study.search.budget_trials);
  std::vector<ObjectivePoint> found;
  std::vector<double> curve;
  for (auto batch = search->next(); !batch.empty(); batch = search->next()) {
    for (const Proposal& p : batch) {
      LaunchRequest request;
      request.config = p.candidate.config;
      request.config.train.steps = p.steps;
      LaunchOutcome outcome = launcher.run(request);
      steps_spent += p.steps;
      if (outcome.record.metrics) {
        outcome.record.metrics->loss_delta = outcome.record.metrics->final_loss - loss_delta_base(p.steps);
      }
      search->tell(p, outcome.record);
      if (p.steps == study.steps) {
        if (auto point = objective_point(outcome.record, study.objectives)) found.push_back(*point);
      }
      curve.push_back(hypervolume(found, r.reference_point) / r.full_volume);
    }
  }
  return curve;
}

void BM_Strategy(benchmark::State& state, const std::string& strategy) {
  const double space = static_cast<double>(replay().candidates.size());
  std::vector<double> at10, at25, to95, cost;
  for (auto _ : state) {
    for (int seed = 1; seed <= kSeeds; ++seed) {
      double steps = 0;
      const std::vector<double> curve = share_curve(strategy, seed, steps);
      cost.push_back(steps / (space * replay().study.steps));
      auto share_after = [&](double fraction) {
        const size_t trials = static_cast<size_t>(std::ceil(fraction * space));
        return curve.empty() ? 0.0 : curve[std::min(trials, curve.size()) - 1];
      };
      at10.push_back(share_after(0.10));
      at25.push_back(share_after(0.25));
      auto reached = std::find_if(curve.begin(), curve.end(), [](double s) { return s >= 0.95; });
      to95.push_back(reached == curve.end() ? INFINITY : double(reached - curve.begin() + 1));
    }
  }
  state.counters["space"] = space;
  state.counters["hv%@10%"] = 100 * median(at10);
  state.counters["hv%@25%"] = 100 * median(at25);
  state.counters["steps%"] = 100 * median(cost);
  state.counters["trials_to_95%"] = median(to95);
  state.counters["trials%_to_95%"] = 100 * median(to95) / space;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--study") study_path = argv[i + 1];
    if (std::string(argv[i]) == "--recorded") recorded_path = argv[i + 1];
  }
  for (const char* strategy : {"random", "halving", "nsga2"}) {
    benchmark::RegisterBenchmark((std::string("replay/") + strategy).c_str(),
                                 [strategy](benchmark::State& state) { BM_Strategy(state, strategy); })
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  std::printf("replaying %s against %s (%zu recorded trials)\n", study_path.c_str(), recorded_path.c_str(),
              replay().recorded.size());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
