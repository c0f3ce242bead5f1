// Trial traces: the file a trial writes with --trace is Chrome trace-event
// JSON that a trace viewer accepts (valid nesting, ordered timestamps), shows
// every step's phases, and whose memory counters replay the arena exactly.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "tests/run_command.h"
#include <nlohmann/json.hpp>

#include "core/arena.h"
#include "core/results.h"
#include "kernels/trial.h"

using namespace memfront;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kTiny = R"({"model": {"vocab": 64, "seq": 16, "width": 32, "heads": 4, "layers": 2},
                        "batch": {"micro": 2}, "checkpoint": {"every": 1},
                        "train": {"steps": 3, "warmup": 1}})";

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);  // throws on anything that is not valid JSON
}

// The trace's events of one kind, grouped by (pid, tid), in file order.
std::map<std::pair<int, int>, std::vector<json>> events_by_thread(const json& trace, const std::string& ph) {
  std::map<std::pair<int, int>, std::vector<json>> threads;
  for (const json& event : trace.at("traceEvents")) {
    if (event.at("ph") == ph) threads[{event.at("pid").get<int>(), event.at("tid").get<int>()}].push_back(event);
  }
  return threads;
}

// What a trace viewer needs of every thread: complete events in time order,
// each one either inside the enclosing open event or after it.
void expect_well_nested(const json& trace) {
  constexpr double kEps = 1e-6;  // microseconds; the file has nanosecond resolution
  for (const auto& [thread, events] : events_by_thread(trace, "X")) {
    std::vector<double> open_ends;
    double last_ts = 0;
    for (const json& event : events) {
      const double ts = event.at("ts").get<double>(), end = ts + event.at("dur").get<double>();
      EXPECT_GE(ts, last_ts) << "pid " << thread.first << " tid " << thread.second << ": " << event.dump();
      last_ts = ts;
      while (!open_ends.empty() && open_ends.back() <= ts + kEps) open_ends.pop_back();
      if (!open_ends.empty()) {
        EXPECT_LE(end, open_ends.back() + kEps) << "overlaps its parent: " << event.dump();
      }
      open_ends.push_back(end);
    }
  }
}

}  // namespace

TEST(Trace, OneRankTraceNestsShowsEveryStepAndReplaysTheArena) {
  const fs::path dir = fs::path(testing::TempDir()) / "trace-one-rank";
  fs::create_directories(dir / "traces");
  const Config config = parse_config_text(kTiny, "tiny");
  TrialOptions options;
  options.out = dir / "record.json";
  options.trace = dir / "traces" / "trial.json";
  const TrialRecord record = run_trial(config, options);
  ASSERT_EQ(record.status, TrialStatus::ok) << record.error;
  ASSERT_TRUE(record.metrics);
  EXPECT_EQ(record.trace, "traces/trial.json");  // relative to the record's folder

  const json trace = read_json(options.trace);
  EXPECT_EQ(trace.at("displayTimeUnit"), "ms");
  EXPECT_EQ(trace.at("metadata").at("dropped_events"), json::array({0}));
  expect_well_nested(trace);

  // Every step has its phases inside it, and the eval follows training.
  const auto phases = events_by_thread(trace, "X").at({0, 0});
  std::vector<json> steps;
  for (const json& e : phases) if (e.at("name") == "step") steps.push_back(e);
  ASSERT_EQ(static_cast<int>(steps.size()), config.train.warmup + config.train.steps);
  for (const json& step : steps) {
    const double begin = step.at("ts"), end = begin + step.at("dur").get<double>();
    std::set<std::string> inside;
    for (const json& e : phases) {
      if (e.at("ts").get<double>() >= begin && e.at("ts").get<double>() < end) inside.insert(e.at("name"));
    }
    for (const char* phase : {"forward", "backward", "recompute", "optimizer"}) {
      EXPECT_TRUE(inside.count(phase)) << "step at " << begin << " us has no " << phase;
    }
  }
  EXPECT_TRUE(std::any_of(phases.begin(), phases.end(), [](const json& e) { return e.at("name") == "eval"; }));

  // The counters replay the arena: their maxima are the measured peaks, exactly.
  BytesByCategory counter_max{};
  uint64_t total_max = 0;
  double last_ts = 0;
  const auto counters = events_by_thread(trace, "C");
  for (const json& sample : counters.at({0, 0})) {
    ASSERT_EQ(sample.at("name"), "memory");
    EXPECT_GE(sample.at("ts").get<double>(), last_ts);
    last_ts = sample.at("ts");
    for (MemCategory category : kAllMemCategories) {
      const int i = static_cast<int>(category);
      counter_max[i] = std::max(counter_max[i], sample.at("args").at(std::string(to_string(category))).get<uint64_t>());
    }
    total_max = std::max(total_max, sample.at("args").at("total").get<uint64_t>());
  }
  for (MemCategory category : kAllMemCategories) {
    const int i = static_cast<int>(category);
    EXPECT_EQ(counter_max[i], record.metrics->peak_max[i]) << to_string(category);
  }
  EXPECT_EQ(total_max, record.metrics->peak_total_max);
}

TEST(Trace, NoTraceOptionWritesNothingAndLeavesTheFieldEmpty) {
  const TrialRecord record = run_trial(parse_config_text(kTiny, "tiny"), {});
  EXPECT_EQ(record.status, TrialStatus::ok) << record.error;
  EXPECT_TRUE(record.trace.empty());
}

TEST(Trace, TwoRanksWriteOneFileWithAProcessPerRankAndTheirCollectives) {
  const fs::path dir = fs::path(testing::TempDir()) / "trace-two-ranks";
  fs::create_directories(dir);
  const fs::path config = dir / "config.json";
  std::ofstream(config) << R"({"model": {"vocab": 64, "seq": 16, "width": 32, "heads": 4, "layers": 2},
                              "batch": {"micro": 2}, "world": 2, "shard": {"strategy": "zero3"},
                              "train": {"steps": 2, "warmup": 1}})";
  const fs::path out = dir / "record.json", trace_path = dir / "trial.trace.json";
  const CommandRun run = run_command(std::string(MEMFRONT_MPIEXEC) + " -np 2 --oversubscribe --allow-run-as-root " +
                                 MEMFRONT_TRIAL_EXE + " --quiet --config " + config.string() + " --out " +
                                 out.string() + " --trace " + trace_path.string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const TrialRecord record = read_record_file(out);
  EXPECT_EQ(record.trace, "trial.trace.json");

  const json trace = read_json(trace_path);
  expect_well_nested(trace);
  std::set<int> pids;
  std::map<int, std::string> process_names;
  for (const json& event : trace.at("traceEvents")) {
    pids.insert(event.at("pid").get<int>());
    if (event.at("name") == "process_name") process_names[event.at("pid")] = event.at("args").at("name");
  }
  EXPECT_EQ(pids, (std::set<int>{0, 1}));
  EXPECT_EQ(process_names, (std::map<int, std::string>{{0, "rank 0"}, {1, "rank 1"}}));
  // zero3 gathers weights and reduce-scatters gradients: both ranks show them as ops.
  const auto ops = events_by_thread(trace, "X");
  for (int pid : {0, 1}) {
    std::set<std::string> names;
    for (const json& e : ops.at({pid, 1})) names.insert(e.at("name"));
    EXPECT_TRUE(names.count("all_gather")) << "rank " << pid;
    EXPECT_TRUE(names.count("reduce_scatter_sum")) << "rank " << pid;
  }
  // Each rank's counters replay its own arena.
  const auto counters = events_by_thread(trace, "C");
  for (int pid : {0, 1}) {
    uint64_t total_max = 0;
    for (const json& sample : counters.at({pid, 0})) {
      total_max = std::max(total_max, sample.at("args").at("total").get<uint64_t>());
    }
    ASSERT_TRUE(record.metrics);
    EXPECT_EQ(total_max, record.metrics->ranks.at(pid).peak_total) << "rank " << pid;
  }
}
