// memfront sweep end to end with the real memfront-trial: every trial and the
// reference recorded once, resume after kills, Ctrl-C, pruning, failures,
// replay, and the pareto/export/predict commands on what was recorded.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "tests/run_command.h"

#include "core/config.h"
#include "core/metric_registry.h"
#include "core/json_file.h"
#include "core/results.h"
#include "tuner/study.h"
#include "tuner/sweep.h"
#include "tests/results_schema.h"

using namespace memfront;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kTool = MEMFRONT_TOOL_EXE;

// A study small enough to run in seconds: one rank, four configurations.
json tiny_study(const std::string& name) {
  return {{"study", name},
          {"base", {{"model", {{"vocab", 64}, {"seq", 16}, {"width", 32}, {"heads", 2}, {"layers", 2}}},
                    {"batch", {{"micro", 2}}}}},
          {"space", {{"checkpoint.every", {0, 1}}, {"precision.activations", {"fp32", "int8"}}}},
          {"objectives", {{{"metric", "peak_mem"}}, {{"metric", "step_time"}}, {{"metric", "loss_delta"}}}},
          {"steps", 3},
          {"warmup", 0},
          {"launcher", {{"kind", "local"}, {"timeout_s", 60}}}};
}

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(testing::TempDir()) / ("sweep-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

fs::path write_study(const fs::path& dir, const json& study) {
  fs::path path = dir / "study.json";
  std::ofstream(path) << study.dump(2);
  return path;
}

// --remeasure 0: these tests run beside others, so their trials are often
// contended; measuring them again would only slow the tests (the timing
// protocol has its own: test_remeasure, test_contention).
std::string sweep_command(const fs::path& study, const fs::path& results, const std::string& extra = "") {
  return "MEMFRONT_TRIAL='" + std::string(MEMFRONT_TRIAL_EXE) + "' MEMFRONT_CALIBRATION=/nonexistent '" + kTool +
         "' sweep '" + study.string() + "' --results '" + results.string() + "' --remeasure 0 " + extra;
}

}  // namespace

TEST(Sweep, RecordsTheReferenceFirstAndEveryTrialOnce) {
  const fs::path dir = fresh_dir("basic");
  const fs::path study = write_study(dir, tiny_study("basic"));
  const fs::path results = dir / "basic.jsonl";
  CommandRun c = run_command(sweep_command(study, results));
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_NE(c.output.find("Pareto front of basic"), std::string::npos) << c.output;
  // The reference is also a point of the space: one trial, counted once.
  EXPECT_NE(c.output.find("[1/4] "), std::string::npos) << c.output;
  EXPECT_NE(c.output.find("[4/4] "), std::string::npos) << c.output;
  EXPECT_EQ(c.output.find("[5/"), std::string::npos) << c.output;
  EXPECT_EQ(c.output.find("(recorded)"), std::string::npos) << c.output;
  EXPECT_NE(c.output.find("4 run, 0 already recorded"), std::string::npos) << c.output;

  ResultsFile file = read_checked_results(results);
  EXPECT_EQ(file.header.study, "basic");
  EXPECT_EQ(file.header.study_spec["study"], "basic");
  // The reference (fp32, no checkpointing) is also the space's first point: 4 records, not 5.
  ASSERT_EQ(file.trials.size(), 4u);
  std::set<std::string> ids;
  for (const TrialRecord& r : file.trials) {
    EXPECT_EQ(r.status, TrialStatus::ok) << r.error;
    EXPECT_TRUE(r.prediction) << "every record carries the cost model's prediction";
    ASSERT_TRUE(r.metrics && r.metrics->loss_delta);
    ids.insert(r.id);
  }
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_EQ(*file.trials[0].metrics->loss_delta, 0.0) << "the reference runs first";
  EXPECT_EQ(file.trials[0].config.checkpoint.every, 0);

  // The commands that read results.
  CommandRun pareto = run_command("'" + kTool + "' pareto '" + results.string() + "' --objectives peak_mem,step_time");
  EXPECT_EQ(pareto.exit_code, 0) << pareto.output;
  EXPECT_NE(pareto.output.find("Pareto front of basic"), std::string::npos);
  CommandRun exported = run_command("'" + kTool + "' export '" + results.string() + "' --pick best:peak_mem --format deepspeed");
  EXPECT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_NE(exported.output.find("zero_optimization"), std::string::npos) << exported.output;
  // --out writes the file whole (core/jsonl.h's atomic replace). Bug: a file
  // that could not be written was reported as exported, with status 0.
  const fs::path export_path = dir / "ds.json";
  const std::string export_command =
      "'" + kTool + "' export '" + results.string() + "' --pick best:peak_mem --format deepspeed --out ";
  CommandRun written = run_command(export_command + "'" + export_path.string() + "'");
  EXPECT_EQ(written.exit_code, 0) << written.output;
  EXPECT_NE(read_text_file(export_path, "export").find("zero_optimization"), std::string::npos);
  CommandRun unwritable = run_command(export_command + "'" + (dir / "missing" / "ds.json").string() + "'");
  EXPECT_NE(unwritable.exit_code, 0) << unwritable.output;
  EXPECT_NE(unwritable.output.find("missing/ds.json: cannot"), std::string::npos) << unwritable.output;
  // Standard output is checked as a file is: an export to a full disk fails.
  CommandRun full = run_command("{ '" + kTool + "' export '" + results.string() + "' --format deepspeed >/dev/full; }");
  EXPECT_EQ(full.exit_code, 1) << full.output;
  EXPECT_NE(full.output.find("memfront: standard output: cannot write: No space left on device"), std::string::npos)
      << full.output;
  CommandRun unknown_format = run_command("'" + kTool + "' export '" + results.string() + "' --format slurm");
  EXPECT_EQ(unknown_format.exit_code, 2) << unknown_format.output;
  EXPECT_NE(unknown_format.output.find(
                "--format: unknown export format 'slurm' (expected memfront, deepspeed, fsdp2 or sbatch)"),
            std::string::npos)
      << unknown_format.output;
  CommandRun status = run_command("'" + kTool + "' status '" + results.string() + "'");
  EXPECT_NE(status.output.find("4 trials recorded (4 ok)"), std::string::npos) << status.output;
  CommandRun again = run_command(sweep_command(study, results));
  EXPECT_EQ(again.exit_code, 2) << "an existing results file needs --resume";
  EXPECT_NE(again.output.find("use --resume"), std::string::npos) << again.output;
  CommandRun resumed = run_command(sweep_command(study, results, "--resume"));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(read_checked_results(results).trials.size(), 4u) << "nothing is run twice";
}

// Kill the sweep at random moments and resume until it finishes: no record is
// lost, duplicated or corrupt.
TEST(Sweep, ResumeAfterKillsAtRandomPointsKeepsTheFileWhole) {
  const fs::path dir = fresh_dir("kills");
  json spec = tiny_study("kills");
  spec["space"]["topk.attention"] = {0, 4};  // 8 configurations
  const fs::path study = write_study(dir, spec);
  const fs::path results = dir / "kills.jsonl";
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> delay_ms(100, 1500);
  bool finished = false;
  for (int attempt = 0; attempt < 30 && !finished; ++attempt) {
    const pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      // No confirmation round: once every trial is recorded, a resumed sweep
      // must be able to finish between two kills.
      execl("/bin/sh", "sh", "-c", sweep_command(study, results, "--resume --confirm 0 > /dev/null 2>&1").c_str(),
            nullptr);
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms(rng));
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        finished = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!finished && waitpid(pid, &status, WNOHANG) == 0) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
  ASSERT_TRUE(finished) << "the sweep never got to finish";
  ResultsFile file = read_checked_results(results);
  std::set<std::string> ids;
  for (const TrialRecord& r : file.trials) {
    EXPECT_TRUE(ids.insert(r.id).second) << "duplicate " << r.id;
    EXPECT_EQ(r.status, TrialStatus::ok) << r.error;
  }
  EXPECT_EQ(ids.size(), 8u);
}

TEST(Sweep, InterruptStopsCleanlyAndResumeCompletes) {
  const fs::path dir = fresh_dir("interrupt");
  json spec = tiny_study("interrupt");
  spec["space"]["topk.attention"] = {0, 4};
  spec["steps"] = 20;
  const fs::path study = write_study(dir, spec);
  const fs::path results = dir / "interrupt.jsonl";
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string command = sweep_command(study, results, "> /dev/null 2>&1");
    execl("/bin/sh", "sh", "-c", ("exec env " + command).c_str(), nullptr);
    _exit(127);
  }
  // Interrupt once at least one trial is recorded.
  for (int i = 0; i < 300; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (fs::exists(results) && read_checked_results(results).trials.size() >= 1) break;
  }
  const auto start = std::chrono::steady_clock::now();
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
  ASSERT_TRUE(WIFEXITED(status));
  const int code = WEXITSTATUS(status);
  EXPECT_TRUE(code == 130 || code == 0) << code;  // 0 if it happened to finish first
  const size_t before = read_checked_results(results).trials.size();
  CommandRun resumed = run_command(sweep_command(study, results, "--resume"));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  const ResultsFile file = read_checked_results(results);
  EXPECT_EQ(file.trials.size(), 8u);
  EXPECT_GE(file.trials.size(), before);
}

TEST(Sweep, ConfigsPredictedToBreakAConstraintArePrunedNotRun) {
  const fs::path dir = fresh_dir("prune");
  json spec = tiny_study("prune");
  spec["outcome_constraints"] = {"peak_mem <= 1KiB"};
  const fs::path study = write_study(dir, spec);
  const fs::path results = dir / "prune.jsonl";
  CommandRun c = run_command(sweep_command(study, results));
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const ResultsFile file = read_checked_results(results);
  ASSERT_EQ(file.trials.size(), 4u);
  for (const TrialRecord& r : file.trials) {
    EXPECT_EQ(r.status, TrialStatus::pruned);
    EXPECT_FALSE(r.metrics);
    EXPECT_NE(r.error.find("/outcome_constraints/0"), std::string::npos) << r.error;
    EXPECT_TRUE(r.prediction);
  }
  const fs::path unpruned = dir / "unpruned.jsonl";
  CommandRun no_prune = run_command(sweep_command(study, unpruned, "--no-prune"));
  ASSERT_EQ(no_prune.exit_code, 0) << no_prune.output;
  for (const TrialRecord& r : read_checked_results(unpruned).trials) EXPECT_EQ(r.status, TrialStatus::ok);
}

TEST(Sweep, FailingTrialsAreRecordedAndTheSweepGoesOn) {
  const fs::path dir = fresh_dir("failures");
  const fs::path study = write_study(dir, tiny_study("failures"));
  const fs::path results = dir / "failures.jsonl";
  CommandRun c = run_command("FAKE_TRIAL_MODE=crash MEMFRONT_TRIAL='" + std::string(MEMFRONT_FAKE_TRIAL) +
                  "' MEMFRONT_CALIBRATION=/nonexistent '" + kTool + "' sweep '" + study.string() + "' --results '" +
                  results.string() + "'");
  EXPECT_EQ(c.exit_code, 0) << c.output;
  const ResultsFile file = read_checked_results(results);
  ASSERT_EQ(file.trials.size(), 4u);
  for (const TrialRecord& r : file.trials) {
    EXPECT_EQ(r.status, TrialStatus::failed);
    EXPECT_NE(r.error.find("signal"), std::string::npos) << r.error;
  }
}

namespace {

// A recorded sweep made of synthetic records for every point of the space:
// Top-K attention costs memory and accuracy, checkpointing saves memory and costs time.
std::vector<TrialRecord> synthetic_sweep(const Study& study) {
  std::vector<TrialRecord> recorded;
  for (const Candidate& c : enumerate_space(study)) {
    TrialRecord r;
    r.id = config_id(c.config);
    r.config = c.config;
    TrialMetrics m;
    m.peak_total_max = 1000 + 100 * c.config.topk.attention + (c.config.checkpoint.every ? 0 : 500);
    m.step_time_s.median = 0.01 * (c.config.checkpoint.every + 1);
    m.step_time_s.count = 3;
    m.loss_curve = {5.0, 4.0, 3.0};
    m.final_loss = 3.0 + 0.01 * c.config.topk.attention;
    r.metrics = m;
    recorded.push_back(r);
  }
  return recorded;
}

}  // namespace

TEST(Sweep, ReplayAnswersStrategiesFromARecordedSweep) {
  json spec = tiny_study("replay");
  spec["space"]["topk.attention"] = {0, 4, 8};
  Study study = parse_study(spec, "replay.json");
  const std::vector<TrialRecord> recorded = synthetic_sweep(study);
  ReplayLauncher launcher(recorded);
  // A replay runs nothing: it makes no trial folder (one was made, empty).
  const fs::path trial_folder = fs::temp_directory_path() / "memfront-replay";
  fs::remove_all(trial_folder);
  for (const std::string strategy : {"grid", "random", "halving", "nsga2"}) {
    study.search.strategy = strategy;
    study.search.budget_trials = 6;
    study.search.halving_min_steps = 1;
    SweepOptions options;  // no results file: nothing is written
    std::ostringstream log;
    SweepSummary summary = run_sweep(study, options, launcher, log);
    EXPECT_LE(summary.proposed, 6) << strategy;
    EXPECT_GE(summary.proposed, 3) << strategy;
    EXPECT_EQ(summary.failed, 0) << strategy << "\n" << log.str();
    for (const TrialRecord& r : summary.records) {
      EXPECT_EQ(r.status, TrialStatus::ok) << strategy << " " << r.error;
      // Shorter runs of halving are the recorded run's beginning.
      if (r.config.train.steps == 1) {
        EXPECT_EQ(r.metrics->final_loss, 5.0);
      }
    }
    // Each line says the record was looked up, never that a trial ran.
    EXPECT_EQ(log.str().find("(ran"), std::string::npos) << log.str();
    EXPECT_NE(log.str().find("(looked up"), std::string::npos) << log.str();
  }
  EXPECT_FALSE(fs::exists(trial_folder));
}

// The confirmation round: once the search is done, every front point runs
// `confirm` more times, and the summary keeps all its runs' step times, the
// recorded run first; nothing else runs again and nothing is recorded twice.
TEST(Sweep, TheConfirmationRoundMeasuresTheFrontAgain) {
  json spec = tiny_study("confirm");
  spec["space"]["topk.attention"] = {0, 4, 8};
  Study study = parse_study(spec, "confirm.json");
  const std::vector<TrialRecord> recorded = synthetic_sweep(study);
  std::ostringstream log;
  ReplayLauncher without(recorded);
  const SweepSummary unconfirmed = run_sweep(study, SweepOptions{}, without, log);
  EXPECT_TRUE(unconfirmed.confirmed_step_s.empty());
  ReplayLauncher launcher(recorded);
  SweepOptions options;
  options.confirm = 2;
  const SweepSummary summary = run_sweep(study, options, launcher, log);
  const std::vector<TrialRecord> comparable = full_length(summary.records, study.steps);
  const std::vector<size_t> front = front_of(comparable, study.objectives, {});
  ASSERT_FALSE(front.empty());
  EXPECT_EQ(summary.confirmed_step_s.size(), front.size());
  for (size_t i : front) {
    const std::vector<double>& runs = summary.confirmed_step_s.at(comparable[i].id);
    ASSERT_EQ(runs.size(), 3u) << "the recorded run and two more";
    for (double seconds : runs) EXPECT_EQ(seconds, comparable[i].metrics->step_time_s.median);
  }
  EXPECT_EQ(launcher.lookups(), without.lookups() + 2 * static_cast<int>(front.size()));
  EXPECT_EQ(summary.records.size(), unconfirmed.records.size()) << "nothing recorded twice";
  const std::string table = format_front(comparable, front, study.objectives, &summary.confirmed_step_s);
  EXPECT_NE(table.find("step time over its runs"), std::string::npos) << table;
  EXPECT_NE(table.find("] x3"), std::string::npos) << table;
}

TEST(Sweep, UnknownMetricsOnTheCommandLineAreBadInput) {
  // Bug: `memfront pareto FILE --where 'pek_mem <= 10MiB'` printed "0 of N trials" and exited 0.
  const std::string data = MEMFRONT_TEST_DATA;
  const std::string file = "'" + data + "/results/example_v1.jsonl'";
  const std::string tool = "'" + kTool + "' ";
  CommandRun where = run_command(tool + "pareto " + file + " --where 'pek_mem <= 10MiB'");
  EXPECT_EQ(where.exit_code, 2) << where.output;
  EXPECT_EQ(where.output, "memfront: --where: unknown metric 'pek_mem'; did you mean 'peak_mem'?\n");
  CommandRun objectives = run_command(tool + "pareto " + file + " --objectives pek_mem,step_time");
  EXPECT_EQ(objectives.exit_code, 2) << objectives.output;
  EXPECT_NE(objectives.output.find("--objectives: unknown metric 'pek_mem'"), std::string::npos) << objectives.output;
  CommandRun pick = run_command(tool + "export " + file + " --pick best:tokens_per_sec");
  EXPECT_EQ(pick.exit_code, 2) << pick.output;
  EXPECT_NE(pick.output.find("did you mean 'tokens_per_s'?"), std::string::npos) << pick.output;
  // The column name pandas shows is a metric name too.
  CommandRun pandas = run_command(tool + "pareto " + file + " --where 'metrics.step_time_s.median < 1000s'");
  EXPECT_EQ(pandas.exit_code, 0) << pandas.output;
  EXPECT_EQ(pandas.output.find(": 0 of "), std::string::npos) << pandas.output;
}

TEST(Sweep, MetricsCommandPrintsTheRegistry) {
  CommandRun metrics = run_command("'" + kTool + "' metrics");
  EXPECT_EQ(metrics.exit_code, 0) << metrics.output;
  EXPECT_EQ(metrics.output, metrics_markdown());
}

TEST(Sweep, PredictAnswersWhatIfQuestionsBeyondTheMachine) {
  const fs::path dir = fresh_dir("predict");
  const fs::path config = dir / "c.json";
  std::ofstream(config) << R"({"model": {"vocab": 50257, "seq": 1024, "width": 768, "heads": 12, "layers": 12},
                               "shard": {"strategy": "zero3"}, "batch": {"micro": 8}})";
  CommandRun c = run_command("MEMFRONT_CALIBRATION=/nonexistent '" + kTool + "' predict '" + config.string() +
                  "' --world 1024 --ranks-per-node 8");
  EXPECT_EQ(c.exit_code, 0) << c.output;
  EXPECT_NE(c.output.find("world 1024 (8 per node)"), std::string::npos) << c.output;
  EXPECT_NE(c.output.find("uncalibrated"), std::string::npos) << c.output;
  // 1024 ranks on this machine would take turns: said, with the core count.
  EXPECT_NE(c.output.find("warning: run by the local launcher"), std::string::npos) << c.output;
  EXPECT_NE(c.output.find("1024 ranks x 1 threads would share"), std::string::npos) << c.output;
  CommandRun one = run_command("MEMFRONT_CALIBRATION=/nonexistent '" + kTool + "' predict '" + config.string() + "'");
  EXPECT_EQ(one.exit_code, 0) << one.output;
  EXPECT_EQ(one.output.find("warning"), std::string::npos) << one.output;
  CommandRun bad = run_command("'" + kTool + "' predict '" + config.string() + "' --world 1000 --ranks-per-node 7");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("/placement/ranks_per_node"), std::string::npos) << bad.output;
}
