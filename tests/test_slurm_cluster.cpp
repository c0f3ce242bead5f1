// memfront sweep --launcher slurm through a real single-node Slurm cluster
// (slurmctld and slurmd on this machine, started by CTest's slurm_cluster
// fixture with scripts/slurm-local.sh; SLURM_CONF names it): a sweep end to
// end, cancelled elements run again by --resume, --no-wait then status and
// collect, a driver killed mid-sweep, trials that time out, and hostile paths
// and options. Every wait is bounded and says what it waited for.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/run_command.h"

#include "core/results.h"
#include "tuner/launcher.h"
#include "tuner/slurm_launcher.h"
#include "tests/results_schema.h"

using namespace memfront;
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// No memfront command or wait of these tests takes longer.
constexpr int kLimitS = 120;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Runs a shell command within kLimitS; exit code 124 means it did not finish.
CommandRun run(const std::string& command) {
  return run_command("timeout --kill-after=5 " + std::to_string(kLimitS) + " sh -c " + shell_quote(command));
}

std::string memfront_command(const std::string& arguments) {
  return "MEMFRONT_TRIAL=" + shell_quote(MEMFRONT_TRIAL_EXE) + " MEMFRONT_CALIBRATION=/nonexistent " +
         shell_quote(MEMFRONT_TOOL_EXE) + " " + arguments;
}

// A study of four tiny configurations; `slow` makes each trial take a couple
// of seconds, long enough to cancel or kill around.
json study_spec(const std::string& name, bool slow) {
  json model = {{"vocab", 64}, {"seq", 16}, {"width", 32}, {"heads", 2}, {"layers", 2}};
  json space = {{"checkpoint.every", {0, 1}}, {"world", {1, 2}}};
  int steps = 3;
  if (slow) {
    model = {{"vocab", 256}, {"seq", 64}, {"width", 128}, {"heads", 4}, {"layers", 4}};
    space = {{"checkpoint.every", {0, 1}}, {"topk.attention", {0, 4}}};
    steps = 40;
  }
  return {{"study", name},
          {"base", {{"model", model}, {"batch", {{"micro", 4}}}}},
          {"space", space},
          {"objectives", {{{"metric", "peak_mem"}}, {{"metric", "step_time"}}, {{"metric", "loss_delta"}}}},
          {"steps", steps},
          {"warmup", 0},
          {"launcher", {{"kind", "local"}, {"timeout_s", 60}}}};
}

class SlurmCluster : public testing::Test {
 protected:
  void SetUp() override {
    // The cluster's slurmd starts jobs as their user, which only root may do;
    // elsewhere (a developer's account, an unprivileged CI runner) the
    // slurm_cluster fixture skips too and these tests say why.
    if (::geteuid() != 0) GTEST_SKIP() << "not root: the local Slurm cluster (scripts/slurm-local.sh) needs root";
    const char* conf = std::getenv("SLURM_CONF");
    ASSERT_TRUE(conf && *conf) << "SLURM_CONF is not set: run these tests through CTest, whose slurm_cluster "
                                  "fixture starts a local cluster with scripts/slurm-local.sh";
    const CommandRun sinfo = run("sinfo --noheader --format=%T");
    ASSERT_EQ(sinfo.exit_code, 0) << "the local Slurm cluster does not answer (" << conf << "): " << sinfo.output;
    name_ = std::string("slurm-") + testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = fs::path(testing::TempDir()) / name_;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (name_.empty()) return;  // skipped or failed before it submitted anything
    // Nothing of this test stays in the queue for the next one.
    run("scancel --name=" + shell_quote("memfront-" + name_));
  }

  fs::path write_study(const json& spec) const {
    const fs::path path = dir_ / "study.json";
    std::ofstream(path) << spec.dump(2);
    return path;
  }
  std::string sweep(const fs::path& study, const fs::path& results, const std::string& extra = "") const {
    return memfront_command("sweep " + shell_quote(study.string()) + " --results " + shell_quote(results.string()) +
                            " " + extra);
  }
  // This test's array job ids, from squeue.
  std::set<std::string> queued_jobs() const {
    const CommandRun squeue = run("squeue --noheader --array --name=" + shell_quote("memfront-" + name_) + " --format=%F");
    std::set<std::string> jobs;
    std::stringstream lines(squeue.output);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) jobs.insert(line);
    }
    return jobs;
  }

  std::string name_;
  fs::path dir_;
};

// Every record's id once, and how many there are.
std::set<std::string> unique_ids(const fs::path& results) {
  std::set<std::string> ids;
  for (const TrialRecord& record : read_checked_results(results).trials) {
    EXPECT_TRUE(ids.insert(record.id).second) << "trial " << record.id << " recorded twice";
  }
  return ids;
}

// Waits up to kLimitS for `done`, failing with what it waited for.
template <typename Predicate>
bool wait_for(const std::string& what, Predicate done) {
  const auto deadline = Clock::now() + std::chrono::seconds(kLimitS);
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ADD_FAILURE() << "waited " << kLimitS << " s for " << what;
  return false;
}

// Starts a shell command in its own process group, for tests that kill or
// interrupt it; its output goes to `log`.
pid_t start(const std::string& command, const fs::path& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    const std::string redirected = "exec env " + command + " > " + shell_quote(log.string()) + " 2>&1";
    execl("/bin/sh", "sh", "-c", redirected.c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

// The exit status of a started command, waiting at most kLimitS.
int finish(pid_t pid) {
  int status = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(kLimitS);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "the sweep did not end within " << kLimitS << " s";
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

// Submit, run the array (one and two ranks), merge, front; in a folder whose
// name holds every character a shell would act on, with a hostile comment
// passed through to sbatch.
TEST_F(SlurmCluster, ASmallSweepRunsEndToEnd) {
  const fs::path folder = dir_ / "results $(touch PWNED) `touch PWNED`; 'q' \"d\"\nline";
  fs::create_directories(folder);
  const fs::path study = write_study(study_spec(name_, false));
  const fs::path results = folder / "small.jsonl";
  const auto started = Clock::now();
  const CommandRun c = run(sweep(study, results, "--launcher slurm --max-parallel 2 --sbatch-arg=--comment=" +
                                                  shell_quote("x'; touch PWNED; $(touch PWNED)")));
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_TRUE(contains(c.output, "submitted job")) << c.output;
  EXPECT_TRUE(contains(c.output, "Pareto front of " + name_)) << c.output;
  std::printf("end-to-end sweep of 4 trials through Slurm: %.1f s\n", seconds);

  const ResultsFile file = read_checked_results(results);
  ASSERT_EQ(file.trials.size(), 4u) << "the reference is the space's first point";
  EXPECT_EQ(unique_ids(results).size(), 4u);
  for (const TrialRecord& record : file.trials) {
    EXPECT_EQ(record.status, TrialStatus::ok) << record.error;
    EXPECT_EQ(record.provenance["slurm"]["nodes"], "localhost") << "the node list Slurm gave";
    ASSERT_TRUE(record.metrics && record.metrics->loss_delta);
    EXPECT_EQ(static_cast<int>(record.metrics->ranks.size()), record.config.world)
        << "srun started every rank of the trial";
    EXPECT_TRUE(record.prediction);
  }
  EXPECT_EQ(*file.trials[0].metrics->loss_delta, 0.0) << "the reference comes first";

  const CommandRun pareto = run(memfront_command("pareto " + shell_quote(results.string())));
  EXPECT_EQ(pareto.exit_code, 0) << pareto.output;
  const CommandRun status = run(memfront_command("status " + shell_quote(results.string())));
  EXPECT_TRUE(contains(status.output, "4 trials recorded (4 ok)")) << status.output;
  EXPECT_TRUE(contains(status.output, "slurm: 4 trials in 2 arrays")) << "one array per allocation shape\n"
                                                                        << status.output;
  EXPECT_TRUE(contains(status.output, "4 done, 0 failed, 0 running, 0 queued, 0 cancelled")) << status.output;
  for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
    EXPECT_NE(entry.path().filename(), "PWNED") << "a hostile value was executed";
  }
}

// Cancel two pending elements: the sweep says so and records neither; a
// resume runs exactly those two, and nothing is recorded twice.
TEST_F(SlurmCluster, CancelledElementsRunAgainOnResume) {
  const fs::path study = write_study(study_spec(name_, true));
  const fs::path results = dir_ / "cancel.jsonl";
  const fs::path log = dir_ / "sweep.log";
  const pid_t driver = start(sweep(study, results, "--launcher slurm --max-parallel 1"), log);
  std::set<std::string> jobs;
  ASSERT_TRUE(wait_for("the array in squeue", [&] { return !(jobs = queued_jobs()).empty(); })) << read_text(log);
  const std::string job = *jobs.begin();
  // Elements 2 and 3 wait behind 0 and 1 (one at a time).
  const CommandRun cancel = run("scancel " + job + "_2 " + job + "_3");
  ASSERT_EQ(cancel.exit_code, 0) << cancel.output;
  EXPECT_EQ(finish(driver), 1) << read_text(log);
  const std::string output = read_text(log);
  EXPECT_TRUE(contains(output, "2 trials ended without a result")) << output;
  EXPECT_EQ(unique_ids(results).size(), 2u) << output;

  SlurmState state(results);
  state.load();
  const std::string cancelled_a = state.arrays()[0].trials[2].id, cancelled_b = state.arrays()[0].trials[3].id;
  const CommandRun status = run(memfront_command("status " + shell_quote(results.string())));
  EXPECT_TRUE(contains(status.output, "2 done, 0 failed, 0 running, 0 queued, 2 cancelled")) << status.output;
  EXPECT_TRUE(contains(status.output, cancelled_a + "  cancelled")) << status.output;

  const CommandRun resumed = run(sweep(study, results, "--resume"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, ": 2 trials as array 0-1%1")) << "only the cancelled ones, with the "
                                                                         "sweep's --max-parallel\n"
                                                                      << resumed.output;
  state.load();
  ASSERT_EQ(state.arrays().size(), 2u);
  EXPECT_EQ((std::set<std::string>{state.arrays()[1].trials[0].id, state.arrays()[1].trials[1].id}),
            (std::set<std::string>{cancelled_a, cancelled_b}));
  EXPECT_EQ(unique_ids(results).size(), 4u);
}

// --no-wait returns at once; status shows the queue; collect merges what has
// finished, as often as it is called, without duplicates.
TEST_F(SlurmCluster, NoWaitThenStatusThenCollect) {
  const fs::path study = write_study(study_spec(name_, true));
  const fs::path results = dir_ / "nowait.jsonl";
  const CommandRun submitted = run(sweep(study, results, "--launcher slurm --max-parallel 1 --no-wait"));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  EXPECT_TRUE(contains(submitted.output, "4 trials are in Slurm's queue")) << submitted.output;
  const CommandRun status = run(memfront_command("status " + shell_quote(results.string())));
  EXPECT_TRUE(contains(status.output, "slurm: 4 trials in 1 arrays")) << status.output;
  EXPECT_TRUE(contains(status.output, "queued")) << status.output;

  CommandRun collected{0, ""};
  EXPECT_TRUE(wait_for("collect to find every trial finished", [&] {
    collected = run(memfront_command("collect " + shell_quote(results.string())));
    EXPECT_EQ(collected.exit_code, 0) << collected.output;
    return contains(collected.output, " 0 queued or running");
  })) << collected.output;
  EXPECT_EQ(unique_ids(results).size(), 4u);
  for (const TrialRecord& record : read_checked_results(results).trials) {
    EXPECT_EQ(record.status, TrialStatus::ok) << record.error;
    EXPECT_TRUE(record.metrics && record.metrics->loss_delta) << "collect gives loss_delta too";
  }
  const CommandRun again = run(memfront_command("collect " + shell_quote(results.string())));
  EXPECT_TRUE(contains(again.output, "collected 0 trials")) << again.output;
  const CommandRun done = run(memfront_command("status " + shell_quote(results.string())));
  EXPECT_TRUE(contains(done.output, "4 done, 0 failed, 0 running, 0 queued, 0 cancelled")) << done.output;
}

// A driver killed outright leaves its jobs running; the resumed sweep waits for
// them instead of submitting them again.
TEST_F(SlurmCluster, AResumedSweepWaitsForTheJobsOfAKilledDriver) {
  const fs::path study = write_study(study_spec(name_, true));
  const fs::path results = dir_ / "killed.jsonl";
  const fs::path log = dir_ / "sweep.log";
  const pid_t driver = start(sweep(study, results, "--launcher slurm --max-parallel 1"), log);
  ASSERT_TRUE(wait_for("the first record", [&] {
    return fs::exists(results) && !read_checked_results(results).trials.empty();
  })) << read_text(log);
  kill(-driver, SIGKILL);
  finish(driver);
  ASSERT_FALSE(queued_jobs().empty()) << "the array ended before the driver could be killed";

  const CommandRun resumed = run(sweep(study, results, "--resume"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "from an earlier run is")) << resumed.output;
  EXPECT_FALSE(contains(resumed.output, "submitted job")) << "nothing is submitted twice\n" << resumed.output;
  EXPECT_EQ(unique_ids(results).size(), 4u);
}

// A trial that outlives the study's timeout under srun is recorded as timeout,
// as on one machine.
TEST_F(SlurmCluster, TrialsThatHangAreRecordedAsTimeouts) {
  json spec = study_spec(name_, false);
  spec["space"] = {{"checkpoint.every", {0, 1}}};
  spec["launcher"]["timeout_s"] = 2;
  const fs::path study = write_study(spec);
  const fs::path results = dir_ / "hang.jsonl";
  const CommandRun c = run("FAKE_TRIAL_MODE=hang MEMFRONT_CALIBRATION=/nonexistent MEMFRONT_TRIAL=" +
                        shell_quote(MEMFRONT_FAKE_TRIAL) + " " +
                        shell_quote(MEMFRONT_TOOL_EXE) + " sweep " + shell_quote(study.string()) + " --results " +
                        shell_quote(results.string()) + " --launcher slurm --max-parallel 2");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  const ResultsFile file = read_checked_results(results);
  ASSERT_EQ(file.trials.size(), 2u);
  for (const TrialRecord& record : file.trials) {
    EXPECT_EQ(record.status, TrialStatus::timeout) << record.error;
    EXPECT_TRUE(record.error.starts_with("timed out after 2 s")) << record.error;
  }
}

// A partition Slurm does not have: sbatch's own words, on one line, and
// nothing of the hostile value executed.
TEST_F(SlurmCluster, SbatchRejectingTheArrayIsOneLine) {
  const fs::path study = write_study(study_spec(name_, false));
  const CommandRun c = run(sweep(study, dir_ / "rejected.jsonl",
                              "--launcher slurm --partition " + shell_quote("debug'; touch PWNED; $(touch PWNED)")));
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_TRUE(contains(c.output, "memfront: slurm: sbatch rejected arrays/1.sbatch (exit 1): sbatch: error: invalid "
                                 "partition specified: debug'; touch PWNED; $(touch PWNED) sbatch: error: Batch job "
                                 "submission failed: Invalid partition name specified\n"))
      << c.output;
  for (const auto& entry : fs::recursive_directory_iterator(dir_)) EXPECT_NE(entry.path().filename(), "PWNED");
}
