// The local launcher: every way a trial can end becomes the right record, in
// bounded time, with the process group gone afterwards. fake_trial plays each
// misbehaviour; the real memfront-trial runs a tiny config at the end.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "core/config.h"
#include "core/results.h"
#include "tuner/launcher.h"

using namespace memfront;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

Config tiny_config(int world = 1) {
  return parse_config_text(R"({"model": {"vocab": 64, "seq": 16, "width": 32, "heads": 2, "layers": 2},
                               "batch": {"micro": 2}, "train": {"steps": 2, "warmup": 0}, "world": )" +
                               std::to_string(world) + "}",
                           "tiny");
}

// Processes whose command line mentions `needle` (the test's own work folder):
// after a run, none of the trial's processes may be left.
std::vector<std::string> processes_mentioning(const std::string& needle) {
  std::vector<std::string> found;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator("/proc", error)) {
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (contains(cmdline, needle)) found.push_back(entry.path().filename().string());
  }
  return found;
}

class LauncherTest : public testing::Test {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    work_ = fs::path(testing::TempDir()) / (std::string("launcher-") + info->name());
    fs::remove_all(work_);
  }
  void TearDown() override {
    unsetenv("FAKE_TRIAL_MODE");
    // A process SIGKILLed with its group may take a moment to be gone.
    std::vector<std::string> left = processes_mentioning(work_.string());
    for (int i = 0; i < 50 && !left.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      left = processes_mentioning(work_.string());
    }
    EXPECT_EQ(left, std::vector<std::string>{}) << "trial processes left behind";
  }

  LaunchRequest request(const Config& config, double timeout_s, const fs::path& exe) const {
    LaunchRequest r;
    r.config = config;
    r.work_dir = work_;
    r.timeout_s = timeout_s;
    r.trial_exe = exe;
    r.mpirun_args = {"--oversubscribe"};
    return r;
  }

  LaunchOutcome run_fake(const std::string& mode, double timeout_s = 20, int world = 1) {
    setenv("FAKE_TRIAL_MODE", mode.c_str(), 1);
    return LocalLauncher().run(request(tiny_config(world), timeout_s, MEMFRONT_FAKE_TRIAL));
  }

  fs::path work_;
};

void expect_record_basics(const LaunchOutcome& outcome, const Config& config) {
  EXPECT_EQ(outcome.record.id, config_id(config));
  EXPECT_EQ(outcome.record.config, config);
  const auto& launcher = outcome.record.provenance.at("launcher");
  EXPECT_EQ(launcher.at("command"), outcome.command);
  EXPECT_EQ(launcher.at("exit_code"), outcome.end.exit_code);
  EXPECT_EQ(launcher.at("signal"), outcome.end.signal);
  EXPECT_DOUBLE_EQ(launcher.at("wall_s").get<double>(), outcome.end.wall_s);
  EXPECT_GT(outcome.end.wall_s, 0);
  // The record the sweep stores must read back.
  EXPECT_NO_THROW(record_from_json(to_json(outcome.record), "outcome"));
}

}  // namespace

TEST_F(LauncherTest, OkRecordComesBackWithTheCommandThatRan) {
  const Config config = tiny_config();
  LaunchRequest r = request(config, 10, MEMFRONT_FAKE_TRIAL);
  r.trial_args = {"--threads", "1"};
  setenv("FAKE_TRIAL_MODE", "ok", 1);
  const LaunchOutcome outcome = LocalLauncher().run(r);
  EXPECT_EQ(outcome.record.status, TrialStatus::ok) << outcome.record.error;
  EXPECT_EQ(outcome.record.error, "");
  EXPECT_TRUE(outcome.record.metrics);
  EXPECT_EQ(outcome.end.exit_code, 0);
  EXPECT_EQ(outcome.end.signal, 0);
  EXPECT_FALSE(outcome.end.interrupted);
  expect_record_basics(outcome, config);

  const std::string id = config_id(config);
  const std::string config_file = (work_ / (id + ".config.json")).string();
  const std::string record_file = (work_ / (id + ".record.json")).string();
  EXPECT_EQ(load_config(config_file), config);
  EXPECT_TRUE(fs::exists(work_ / (id + ".stderr")));
  // argv: exe --config c --out r --quiet --timeout (half the launcher's) trial_args...
  const std::vector<std::string> expected = {MEMFRONT_FAKE_TRIAL, "--config", config_file, "--out", record_file,
                                             "--quiet", "--timeout", "5", "--threads", "1"};
  EXPECT_EQ(outcome.record.provenance.at("argv").get<std::vector<std::string>>(), expected);
  EXPECT_TRUE(outcome.command.starts_with(MEMFRONT_FAKE_TRIAL));
  EXPECT_TRUE(contains(outcome.command, "--quiet --timeout 5 --threads 1"));
}

size_t open_fd_count() {
  return static_cast<size_t>(std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator()));
}

TEST_F(LauncherTest, NoFdLeaksIntoTheTrialOrOutOfTheLauncher) {
  // An fd that someone else opened without O_CLOEXEC stays out of the trial too.
  const int careless = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(careless, 0);
  const size_t before = open_fd_count();
  const LaunchOutcome ok = run_fake("ok");
  ::close(careless);
  EXPECT_EQ(ok.record.provenance.at("open_fds"), nlohmann::json::array({0, 1, 2}));
  run_fake("segv");
  run_fake("sleep", 0.2);
  EXPECT_EQ(open_fd_count(), before - 1);
}

TEST_F(LauncherTest, TrialTimeoutIsAtMostSixtySecondsAndTheCallerMayChooseIt) {
  EXPECT_TRUE(contains(run_fake("ok", 300).command, "--timeout 60"));
  LaunchRequest r = request(tiny_config(), 300, MEMFRONT_FAKE_TRIAL);
  r.trial_args = {"--timeout", "7"};
  const LaunchOutcome outcome = LocalLauncher().run(r);
  EXPECT_EQ(outcome.record.status, TrialStatus::ok);
  EXPECT_TRUE(outcome.command.ends_with("--quiet --timeout 7"));
}

TEST_F(LauncherTest, AStaleRecordIsNotTakenForTheNewRun) {
  const Config config = tiny_config();
  setenv("FAKE_TRIAL_MODE", "ok", 1);
  ASSERT_EQ(LocalLauncher().run(request(config, 10, MEMFRONT_FAKE_TRIAL)).record.status, TrialStatus::ok);
  // segv writes no record: the one of the previous run must not be read.
  const LaunchOutcome outcome = run_fake("segv");
  EXPECT_EQ(outcome.record.status, TrialStatus::failed);
  EXPECT_FALSE(outcome.record.metrics);
}

TEST_F(LauncherTest, AbortIsAFailureWithTheSignalStderrAndTheTrialsOwnWord) {
  const LaunchOutcome outcome = run_fake("crash");
  EXPECT_EQ(outcome.record.status, TrialStatus::failed);
  EXPECT_EQ(outcome.end.signal, SIGABRT);
  EXPECT_TRUE(outcome.record.error.starts_with("killed by signal 6 (SIGABRT)")) << outcome.record.error;
  EXPECT_TRUE(contains(outcome.record.error, "the trial did not finish")) << outcome.record.error;
  EXPECT_TRUE(contains(outcome.record.error, "stderr: fake_trial: step 1 | fake_trial: giving up"))
      << outcome.record.error;
  expect_record_basics(outcome, tiny_config());
}

TEST_F(LauncherTest, SegfaultWithNoRecordStillGivesAWholeRecord) {
  const LaunchOutcome outcome = run_fake("segv");
  EXPECT_EQ(outcome.record.status, TrialStatus::failed);
  EXPECT_EQ(outcome.end.signal, SIGSEGV);
  EXPECT_TRUE(outcome.record.error.starts_with("killed by signal 11 (SIGSEGV); stderr: fake_trial: about to"))
      << outcome.record.error;
  EXPECT_FALSE(outcome.record.metrics);
  expect_record_basics(outcome, tiny_config());
}

TEST_F(LauncherTest, AHangDeafToSigtermIsKilledAfterTheTimeout) {
  const LaunchOutcome outcome = run_fake("hang", 1);
  EXPECT_EQ(outcome.record.status, TrialStatus::timeout);
  EXPECT_EQ(outcome.end.signal, SIGKILL);
  EXPECT_FALSE(outcome.end.interrupted);
  EXPECT_TRUE(outcome.record.error.starts_with("timed out after 1 s")) << outcome.record.error;
  EXPECT_TRUE(contains(outcome.record.error, "hanging, deaf to SIGTERM")) << outcome.record.error;
  EXPECT_GE(outcome.end.wall_s, 1.0 + 2.5);  // the SIGTERM grace was given
  EXPECT_LT(outcome.end.wall_s, 5.5);
  expect_record_basics(outcome, tiny_config());
}

TEST_F(LauncherTest, ASleeperEndsAtTheSigterm) {
  const LaunchOutcome outcome = run_fake("sleep", 1);
  EXPECT_EQ(outcome.record.status, TrialStatus::timeout);
  EXPECT_EQ(outcome.end.signal, SIGTERM);
  EXPECT_LT(outcome.end.wall_s, 2.0);
}

TEST_F(LauncherTest, SigkillFromOutsideIsKilledUnlessTheKernelCountedAnOomKill) {
  const LaunchOutcome outcome = run_fake("killed");
  EXPECT_EQ(outcome.end.signal, SIGKILL);
  // The machine's own count decides (another process may meet the OOM killer meanwhile).
  EXPECT_EQ(outcome.record.status, outcome.end.oom_kills.value_or(0) > 0 ? TrialStatus::oom : TrialStatus::killed);

  // The same end, with and without the kernel's word on it.
  const fs::path nothing = fs::path(testing::TempDir()) / "no-such-record";
  ProcessEnd end;
  end.signal = SIGKILL;
  end.oom_kills = 1;
  const LaunchOutcome oom = outcome_of_run(tiny_config(), end, "t", 60, nothing, nothing);
  EXPECT_EQ(oom.record.status, TrialStatus::oom);
  EXPECT_TRUE(oom.record.error.starts_with("killed by SIGKILL by the kernel's out-of-memory killer")) << oom.record.error;
  end.oom_kills = 0;
  const LaunchOutcome outside = outcome_of_run(tiny_config(), end, "t", 60, nothing, nothing);
  EXPECT_EQ(outside.record.status, TrialStatus::killed);
  EXPECT_TRUE(outside.record.error.starts_with("killed by SIGKILL from outside (the kernel counted no out-of-memory"))
      << outside.record.error;
  end.oom_kills.reset();
  EXPECT_EQ(outcome_of_run(tiny_config(), end, "t", 60, nothing, nothing).record.status, TrialStatus::killed)
      << "unsure is never oom";
}

TEST_F(LauncherTest, ExitThreeKeepsTheTrialsRecord) {
  const LaunchOutcome outcome = run_fake("oom");
  EXPECT_EQ(outcome.record.status, TrialStatus::oom);
  EXPECT_EQ(outcome.end.exit_code, 3);
  EXPECT_EQ(outcome.record.error, "rank 0: out of memory: activations needs 4096 bytes over the 1024-byte cap");
  EXPECT_TRUE(outcome.record.metrics);
  EXPECT_EQ(outcome.record.provenance.at("fake_trial"), true);  // the trial's provenance, plus the launcher's
  expect_record_basics(outcome, tiny_config());
}

TEST_F(LauncherTest, GarbageAfterExitZeroIsAFailure) {
  const LaunchOutcome outcome = run_fake("garbage");
  EXPECT_EQ(outcome.record.status, TrialStatus::failed);
  EXPECT_EQ(outcome.end.exit_code, 0);
  EXPECT_TRUE(outcome.record.error.starts_with("exit 0 but the record is unreadable: ")) << outcome.record.error;
  EXPECT_TRUE(contains(outcome.record.error, "not valid JSON")) << outcome.record.error;
  expect_record_basics(outcome, tiny_config());
}

TEST_F(LauncherTest, ARecordOfAnotherConfigIsAFailure) {
  const LaunchOutcome outcome = run_fake("wrong_id");
  EXPECT_EQ(outcome.record.status, TrialStatus::failed);
  EXPECT_TRUE(outcome.record.error.starts_with("exit 0 but the record is unreadable: ")) << outcome.record.error;
  EXPECT_TRUE(contains(outcome.record.error, "0123456789abcdef")) << outcome.record.error;
  EXPECT_FALSE(outcome.record.metrics);
  expect_record_basics(outcome, tiny_config());
}

TEST_F(LauncherTest, OtherExitCodesCarryTheLastLinesOfStderr) {
  const LaunchOutcome outcome = run_fake("exit7");
  EXPECT_EQ(outcome.record.status, TrialStatus::failed);
  EXPECT_EQ(outcome.end.exit_code, 7);
  EXPECT_TRUE(outcome.record.error.starts_with("exited with code 7")) << outcome.record.error;
  EXPECT_TRUE(outcome.record.error.ends_with(
      "stderr: fake_trial: line 5 | fake_trial: line 6 | fake_trial: line 7 | fake_trial: line 8 | "
      "fake_trial: the last word"))
      << outcome.record.error;
  EXPECT_EQ(outcome.record.error.find('\n'), std::string::npos);
}

TEST_F(LauncherTest, ExitTwoIsInvalidWithTheTrialsLine) {
  const LaunchOutcome outcome = run_fake("bad_input");
  EXPECT_EQ(outcome.record.status, TrialStatus::invalid);
  EXPECT_EQ(outcome.end.exit_code, 2);
  EXPECT_EQ(outcome.record.error, "fake_trial: --config: bad input (mode bad_input)");
  expect_record_basics(outcome, tiny_config());
}

TEST_F(LauncherTest, AnInterruptStopsAHangingTrial) {
  std::atomic<bool> interrupt{false};
  setenv("FAKE_TRIAL_MODE", "hang", 1);
  std::thread interrupter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    interrupt = true;
  });
  const LaunchOutcome outcome = LocalLauncher(&interrupt).run(request(tiny_config(), 60, MEMFRONT_FAKE_TRIAL));
  interrupter.join();
  EXPECT_TRUE(outcome.end.interrupted);
  EXPECT_EQ(outcome.record.status, TrialStatus::failed);
  EXPECT_EQ(outcome.record.error, "interrupted");
  EXPECT_LT(outcome.end.wall_s, 5);
  expect_record_basics(outcome, tiny_config());
}

TEST_F(LauncherTest, AnInterruptBeforeTheStartRunsNothing) {
  std::atomic<bool> interrupt{true};
  setenv("FAKE_TRIAL_MODE", "hang", 1);
  const LaunchOutcome outcome = LocalLauncher(&interrupt).run(request(tiny_config(), 60, MEMFRONT_FAKE_TRIAL));
  EXPECT_TRUE(outcome.end.interrupted);
  EXPECT_EQ(outcome.record.status, TrialStatus::failed);
  EXPECT_EQ(outcome.record.error, "interrupted");
  EXPECT_LT(outcome.end.wall_s, 0.5);
}

TEST_F(LauncherTest, MpirunRunsTheRanksAndTheWholeGroupIsKilledOnTimeout) {
  const LaunchOutcome ok = run_fake("ok", 20, 2);
  EXPECT_EQ(ok.record.status, TrialStatus::ok) << ok.record.error;
  EXPECT_TRUE(ok.command.starts_with("mpirun -np 2 ")) << ok.command;
  EXPECT_EQ(contains(ok.command, " --allow-run-as-root "), geteuid() == 0) << ok.command;
  EXPECT_TRUE(contains(ok.command, " --oversubscribe " MEMFRONT_FAKE_TRIAL " --config ")) << ok.command;

  // Both ranks ignore SIGTERM: mpirun goes, they stay until the group's SIGKILL
  // (TearDown checks that nothing is left).
  const LaunchOutcome hang = run_fake("hang", 1, 2);
  EXPECT_EQ(hang.record.status, TrialStatus::timeout);
  EXPECT_LT(hang.end.wall_s, 6);
}

TEST_F(LauncherTest, SetUpProblemsThrowInsteadOfBecomingRecords) {
  EXPECT_THROW(LocalLauncher().run(request(tiny_config(), 10, work_ / "no-such-trial")), std::runtime_error);
  LaunchRequest r = request(tiny_config(2), 10, MEMFRONT_FAKE_TRIAL);
  r.mpirun = "no-such-mpirun-anywhere";
  EXPECT_THROW(LocalLauncher().run(r), std::runtime_error);
}

TEST(FindTrialExecutable, EnvironmentFirstThenTheBuildTree) {
  setenv("MEMFRONT_TRIAL", "/somewhere/memfront-trial", 1);
  EXPECT_EQ(find_trial_executable(), fs::path("/somewhere/memfront-trial"));
  unsetenv("MEMFRONT_TRIAL");
  const fs::path found = find_trial_executable();
  ASSERT_TRUE(fs::exists(found)) << found;
  EXPECT_TRUE(fs::equivalent(found, MEMFRONT_TRIAL_EXE)) << found;
}

// --- the real memfront-trial --------------------------------------------------

TEST_F(LauncherTest, RealTrialOnOneRank) {
  const LaunchOutcome outcome = LocalLauncher().run(request(tiny_config(1), 60, MEMFRONT_TRIAL_EXE));
  ASSERT_EQ(outcome.record.status, TrialStatus::ok) << outcome.record.error;
  ASSERT_TRUE(outcome.record.metrics);
  EXPECT_EQ(outcome.record.metrics->loss_curve.size(), 2u);
  EXPECT_EQ(outcome.record.metrics->ranks.size(), 1u);
  expect_record_basics(outcome, tiny_config(1));
}

TEST_F(LauncherTest, RealTrialOnTwoRanks) {
  const LaunchOutcome outcome = LocalLauncher().run(request(tiny_config(2), 60, MEMFRONT_TRIAL_EXE));
  ASSERT_EQ(outcome.record.status, TrialStatus::ok) << outcome.record.error;
  ASSERT_TRUE(outcome.record.metrics);
  EXPECT_EQ(outcome.record.metrics->ranks.size(), 2u);
  expect_record_basics(outcome, tiny_config(2));
}

TEST_F(LauncherTest, RealTrialOutOfMemory) {
  LaunchRequest r = request(tiny_config(1), 60, MEMFRONT_TRIAL_EXE);
  r.trial_args = {"--mem-cap", "300KiB"};
  const LaunchOutcome outcome = LocalLauncher().run(r);
  EXPECT_EQ(outcome.record.status, TrialStatus::oom) << outcome.record.error;
  EXPECT_EQ(outcome.end.exit_code, 3);
  EXPECT_TRUE(contains(outcome.record.error, "300")) << outcome.record.error;  // names the cap
}

TEST_F(LauncherTest, RealTwoRankCrashFailsWithinTheTimeout) {
  LaunchRequest r = request(tiny_config(2), 30, MEMFRONT_TRIAL_EXE);
  r.trial_args = {"--crash", "1:1"};
  const LaunchOutcome outcome = LocalLauncher().run(r);
  EXPECT_EQ(outcome.record.status, TrialStatus::failed) << outcome.record.error;
  EXPECT_NE(outcome.end.exit_code, 0);
  EXPECT_TRUE(contains(outcome.record.error, "crashing at step 1")) << outcome.record.error;
  EXPECT_LT(outcome.end.wall_s, 30);
}

TEST_F(LauncherTest, RealTwoRankBadInputIsInvalidWithTheTrialsLine) {
  LaunchRequest r = request(tiny_config(2), 30, MEMFRONT_TRIAL_EXE);
  r.trial_args = {"--crash", "soon"};
  const LaunchOutcome outcome = LocalLauncher().run(r);
  EXPECT_EQ(outcome.record.status, TrialStatus::invalid) << outcome.record.error;
  // Every rank rejects it; the lowest one's message is the record's.
  EXPECT_EQ(outcome.record.error, "memfront-trial: rank 0: --crash: expected RANK:STEP, got 'soon'");
}
