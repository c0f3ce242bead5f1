// The sweep's side of the timing protocol: a run whose step time was
// contended is measured again, within a bound, and the record says so.
#include <gtest/gtest.h>

#include <deque>

#include "tuner/sweep.h"

using namespace memfront;

namespace {

// Answers each run with the next of a list of step times; those marked
// contended carry a contended timing.
class ScriptedLauncher final : public Launcher {
 public:
  explicit ScriptedLauncher(std::deque<std::pair<double, bool>> script) : script_(std::move(script)) {}
  LaunchOutcome run(const LaunchRequest&) override {
    ++runs;
    const auto [seconds, contended] = script_.front();
    script_.pop_front();
    LaunchOutcome outcome;
    outcome.record.id = "0123456789abcdef";
    outcome.record.provenance = nlohmann::json::object();
    TrialMetrics& metrics = outcome.record.metrics.emplace();
    metrics.step_time_s.median = seconds;
    metrics.step_time_s.count = 5;
    TimingQuality& timing = metrics.timing.emplace();
    timing.contended = contended;
    if (contended) timing.reason = "rank 0 waited for a CPU 40% of its step: another process had its core";
    return outcome;
  }
  int runs = 0;

 private:
  std::deque<std::pair<double, bool>> script_;
};

std::vector<LaunchOutcome> start(SequentialRunner& runner, int repeats) {
  std::vector<LaunchOutcome> kept;
  EXPECT_TRUE(runner.start(LaunchRequest{}, repeats, [&](std::vector<LaunchOutcome> runs) { kept = std::move(runs); }));
  EXPECT_FALSE(runner.finish_round().interrupted);
  return kept;
}

}  // namespace

TEST(Remeasure, AContendedRunIsMeasuredAgainAndTheRecordNamesIt) {
  ScriptedLauncher launcher({{0.30, true}, {0.10, false}});
  SequentialRunner runner(launcher, nullptr, 2);
  const std::vector<LaunchOutcome> kept = start(runner, 1);
  EXPECT_EQ(launcher.runs, 2);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_DOUBLE_EQ(kept[0].record.metrics->step_time_s.median, 0.10);
  const nlohmann::json& remeasured = kept[0].record.provenance.at("remeasured");
  ASSERT_EQ(remeasured.size(), 1u);
  EXPECT_DOUBLE_EQ(remeasured[0].at("step_time_median_s").get<double>(), 0.30);
  EXPECT_NE(remeasured[0].at("reason").get<std::string>().find("waited for a CPU"), std::string::npos);
}

TEST(Remeasure, TheBoundHoldsAndTheLastRunStaysFlagged) {
  ScriptedLauncher launcher({{0.30, true}, {0.25, true}, {0.28, true}, {0.10, false}});
  SequentialRunner runner(launcher, nullptr, 2);
  const std::vector<LaunchOutcome> kept = start(runner, 1);
  EXPECT_EQ(launcher.runs, 3);  // the first run and two more; the fourth never runs
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_TRUE(kept[0].record.metrics->timing->contended);
  EXPECT_EQ(kept[0].record.provenance.at("remeasured").size(), 2u);
}

TEST(Remeasure, ZeroMeansEveryRunIsKeptAsMeasured) {
  ScriptedLauncher launcher({{0.30, true}, {0.10, false}});
  SequentialRunner runner(launcher, nullptr, 0);
  const std::vector<LaunchOutcome> kept = start(runner, 1);
  EXPECT_EQ(launcher.runs, 1);
  EXPECT_FALSE(kept[0].record.provenance.contains("remeasured"));
}

TEST(Remeasure, RepeatsCountOnlyTheRunsKept) {
  ScriptedLauncher launcher({{0.12, false}, {0.40, true}, {0.11, false}, {0.13, false}});
  SequentialRunner runner(launcher, nullptr, 2);
  const std::vector<LaunchOutcome> kept = start(runner, 3);
  EXPECT_EQ(launcher.runs, 4);
  ASSERT_EQ(kept.size(), 3u);
  for (const LaunchOutcome& run : kept) EXPECT_FALSE(run.record.metrics->timing->contended);
}

// Repeats run in passes over the round: A B A B, not A A B B, so that a
// change in the machine's load falls on every configuration alike.
TEST(Remeasure, RepeatsAreInterleavedAcrossTheRound) {
  class Recording final : public Launcher {
   public:
    LaunchOutcome run(const LaunchRequest& request) override {
      order.push_back(request.config.train.steps);
      LaunchOutcome outcome;
      outcome.record.metrics.emplace().timing.emplace();
      outcome.record.provenance = nlohmann::json::object();
      return outcome;
    }
    std::vector<int> order;
  } launcher;
  SequentialRunner runner(launcher, nullptr, 2);
  std::vector<size_t> runs_done;
  LaunchRequest a, b;
  a.config.train.steps = 1;
  b.config.train.steps = 2;
  for (const LaunchRequest& request : {a, b}) {
    ASSERT_TRUE(runner.start(request, 3, [&](std::vector<LaunchOutcome> runs) { runs_done.push_back(runs.size()); }));
  }
  EXPECT_TRUE(launcher.order.empty()) << "a repeated trial waits for its round";
  EXPECT_FALSE(runner.finish_round().interrupted);
  EXPECT_EQ(launcher.order, (std::vector<int>{1, 2, 1, 2, 1, 2}));
  EXPECT_EQ(runs_done, (std::vector<size_t>{3, 3}));
}
