// The process module (tuner/process.h): exit codes and signals, the deadline
// (SIGTERM, then SIGKILL for a child deaf to it), the whole process group
// stopped, bounded stdout and stderr, cwd and environment, the interrupt flag,
// and what cannot run at all. The children are /bin/sh scripts given as argv
// words: the module itself never runs a shell.
#include "tuner/process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/exit_code.h"
#include "tuner/launcher.h"

namespace memfront {
namespace {

namespace fs = std::filesystem;

ProcessRequest shell(const std::string& script) {
  ProcessRequest request;
  request.argv = {"/bin/sh", "-c", script};
  return request;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("memfront_test_process_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Whether a process runs: a zombie, or a pid no longer in use, does not.
bool is_running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t after_name = line.rfind(')');
  return after_name != std::string::npos && line.size() > after_name + 2 && line[after_name + 2] != 'Z';
}

// Whether it still runs a second later: a SIGKILL takes effect asynchronously.
bool survives(pid_t pid) {
  for (int tries = 0; tries < 50 && is_running(pid); ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool running = is_running(pid);
  if (running) ::kill(pid, SIGKILL);  // not left behind by the test
  return running;
}

pid_t read_pid(const fs::path& path) {
  for (int tries = 0; tries < 100; ++tries) {
    std::ifstream in(path);
    pid_t pid = 0;
    if (in >> pid && pid > 0) return pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

TEST(Process, ExitCodeAndStdoutComeBack) {
  const ProcessEnd end = run_process(shell("echo hello; echo world; exit 5"));
  EXPECT_EQ(end.exit_code, 5);
  EXPECT_EQ(end.signal, 0);
  EXPECT_FALSE(end.timed_out);
  EXPECT_FALSE(end.interrupted);
  EXPECT_FALSE(end.ok());
  EXPECT_EQ(end.out, "hello\nworld\n");
  EXPECT_GT(end.wall_s, 0);
  EXPECT_TRUE(run_process(shell("true")).ok());
}

TEST(Process, ASignalIsReportedAsTheSignal) {
  const ProcessEnd end = run_process(shell("kill -ABRT $$"));
  EXPECT_EQ(end.signal, SIGABRT);
  EXPECT_EQ(end.exit_code, 0);
  EXPECT_EQ(describe(end), "killed by signal 6 (SIGABRT)");
}

TEST(Process, StdinIsEmpty) {
  const ProcessEnd end = run_process(shell("cat; echo done"));
  EXPECT_EQ(end.out, "done\n");
}

TEST(Process, TheDeadlineSendsSigtermFirst) {
  ProcessRequest request = shell("sleep 30");
  request.timeout_s = 0.3;
  const ProcessEnd end = run_process(request);
  EXPECT_TRUE(end.timed_out);
  EXPECT_EQ(end.signal, SIGTERM);
  EXPECT_LT(end.wall_s, 2.0) << "no grace is spent on a child that ends at SIGTERM";
}

TEST(Process, AChildDeafToSigtermIsKilledAfterTheGrace) {
  // The ignored SIGTERM is inherited by sleep, so the whole group is deaf to it.
  ProcessRequest request = shell("trap '' TERM; sleep 30");
  request.timeout_s = 0.5;
  request.term_grace_s = 1.0;
  const ProcessEnd end = run_process(request);
  EXPECT_TRUE(end.timed_out);
  EXPECT_EQ(end.signal, SIGKILL);
  EXPECT_GE(end.wall_s, 0.5 + 1.0 - 0.05) << "the grace was given";
  EXPECT_LT(end.wall_s, 5.0);
  EXPECT_EQ(describe(end), "stopped at its deadline: killed by signal 9 (SIGKILL)");
}

TEST(Process, TheWholeProcessGroupIsKilled) {
  const fs::path dir = fresh_dir("group");
  // A grandchild deaf to SIGTERM, holding stdout open, outlives the leader
  // that times out.
  ProcessRequest request = shell("(trap '' TERM; exec sleep 60) & echo $! > '" + (dir / "pid").string() +
                                 "'; sleep 30");
  request.timeout_s = 0.5;
  request.term_grace_s = 0.5;
  const ProcessEnd end = run_process(request);
  const pid_t grandchild = read_pid(dir / "pid");
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(end.timed_out);
  EXPECT_LT(end.wall_s, 5.0) << "the grandchild's stdout did not keep the module waiting";
  EXPECT_FALSE(survives(grandchild)) << "SIGKILL reached the rest of the group";

  // The same when the leader ends on its own: what it left behind is killed.
  const ProcessEnd quick = run_process(shell("(trap '' TERM; exec sleep 60) & echo $! > '" +
                                             (dir / "pid2").string() + "'; exit 0"));
  const pid_t left_behind = read_pid(dir / "pid2");
  ASSERT_GT(left_behind, 0);
  EXPECT_EQ(quick.exit_code, 0);
  EXPECT_LT(quick.wall_s, 5.0);
  EXPECT_FALSE(survives(left_behind));
  fs::remove_all(dir);
}

TEST(Process, TheStderrTailIsBounded) {
  ProcessRequest request = shell("i=0; while [ $i -lt 3000 ]; do echo \"line $i\" >&2; i=$((i+1)); done");
  request.stderr_tail_limit = 100;
  const ProcessEnd end = run_process(request);
  EXPECT_EQ(end.exit_code, 0);
  EXPECT_EQ(end.err_tail.size(), 100u);
  EXPECT_TRUE(end.err_tail.ends_with("line 2998\nline 2999\n")) << end.err_tail;
}

TEST(Process, StdoutIsBoundedAndTheChildNeverBlocks) {
  ProcessRequest request = shell("head -c 3000000 /dev/zero; echo end >&2");
  request.stdout_limit = 1000;
  request.timeout_s = 20;
  const ProcessEnd end = run_process(request);
  EXPECT_TRUE(end.ok()) << describe(end);
  EXPECT_EQ(end.out.size(), 1000u);
  EXPECT_EQ(end.err_tail, "end\n");
}

TEST(Process, StderrCanGoToAFile) {
  const fs::path dir = fresh_dir("stderr");
  ProcessRequest request = shell("echo first >&2; echo second >&2");
  request.stderr_path = dir / "err";
  request.stderr_tail_limit = 7;
  const ProcessEnd end = run_process(request);
  std::stringstream whole;
  whole << std::ifstream(dir / "err").rdbuf();
  EXPECT_EQ(whole.str(), "first\nsecond\n");
  EXPECT_EQ(end.err_tail, "second\n");
  fs::remove_all(dir);
}

TEST(Process, CwdAndEnvironment) {
  const fs::path dir = fresh_dir("cwd");
  ProcessRequest request = shell("pwd; echo \"$MEMFRONT_TEST_VALUE\"; echo \"${HOME:+home is kept}\"");
  request.cwd = dir;
  request.environment = {{"MEMFRONT_TEST_VALUE", "a value; $(not run)"}};
  const ProcessEnd end = run_process(request);
  EXPECT_EQ(end.out, fs::canonical(dir).string() + "\na value; $(not run)\n" +
                         (std::getenv("HOME") ? "home is kept\n" : "\n"));
  fs::remove_all(dir);
}

TEST(Process, WhatCannotRunThrowsNamingIt) {
  ProcessRequest missing;
  missing.argv = {"memfront-no-such-program", "--version"};
  try {
    run_process(missing);
    FAIL() << "a program that is not on PATH must throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "cannot run memfront-no-such-program: not found on PATH");
  }
  ProcessRequest request = shell("true");
  request.cwd = "/nonexistent/memfront";
  try {
    run_process(request);
    FAIL() << "a cwd that does not exist must throw";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot run /bin/sh: cannot enter /nonexistent/memfront: No such file or directory");
  }
}

TEST(Process, TheInterruptStopsTheGroupAndPreventsAStart) {
  std::atomic<bool> interrupt{false};
  ProcessRequest request = shell("sleep 30");
  request.interrupt = &interrupt;
  std::thread press([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    interrupt = true;
  });
  const ProcessEnd end = run_process(request);
  press.join();
  EXPECT_TRUE(end.interrupted);
  EXPECT_FALSE(end.timed_out);
  EXPECT_EQ(end.signal, SIGTERM);
  EXPECT_LT(end.wall_s, 3.0);

  const fs::path dir = fresh_dir("interrupt");
  ProcessRequest never = shell("touch '" + (dir / "ran").string() + "'");
  never.interrupt = &interrupt;
  const ProcessEnd not_started = run_process(never);
  EXPECT_TRUE(not_started.interrupted);
  EXPECT_FALSE(fs::exists(dir / "ran"));
  fs::remove_all(dir);
}

// memfront killed in any way ends its children: the watchdog sees its pipe
// close and ends the child's session, grandchildren included, within the
// grace period; a process that left the group (as Open MPI's ranks do) too.
TEST(Process, TheChildSessionEndsWhenMemfrontIsKilled) {
  const fs::path dir = fresh_dir("watchdog");
  const pid_t memfront = ::fork();
  if (memfront == 0) {
    // A grandchild in a process group of its own, deaf to SIGTERM.
    ProcessRequest request = shell("perl -e 'setpgrp(0, 0); $SIG{TERM} = \"IGNORE\"; sleep 60' & echo $! > '" +
                                   (dir / "pid").string() + "'; sleep 60");
    request.term_grace_s = 0.5;
    run_process(request);
    ::_exit(0);
  }
  const pid_t grandchild = read_pid(dir / "pid");
  ASSERT_GT(grandchild, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(is_running(grandchild));
  ::kill(memfront, SIGKILL);
  ::waitpid(memfront, nullptr, 0);
  EXPECT_FALSE(survives(grandchild)) << "the watchdog ended the session";
  fs::remove_all(dir);
}

// Sweeps run trials while other threads of memfront go on (the viewer, the
// NSGA-II pool): the child of a multithreaded process only execs.
TEST(Process, ThreadsRunChildrenAtOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> right{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &right] {
      for (int i = 0; i < 5; ++i) {
        const std::string word = std::to_string(t) + "-" + std::to_string(i);
        ProcessRequest request;
        request.argv = {"/bin/echo", word};
        if (run_process(request).out == word + "\n") ++right;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(right.load(), 20);
}

TEST(Process, ExitCodesHaveOneNameEach) {
  EXPECT_EQ(describe_exit(2, 0), "exited with code 2 (bad input)");
  EXPECT_EQ(describe_exit(3, 0), "exited with code 3 (trial failed)");
  EXPECT_EQ(describe_exit(7, 0), "exited with code 7");
  EXPECT_EQ(describe_exit(0, SIGKILL), "killed by signal 9 (SIGKILL)");
  EXPECT_EQ(code(ExitCode::terminated), kSignalExitBase + SIGTERM);
  EXPECT_EQ(code(ExitCode::interrupted), kSignalExitBase + SIGINT);
  EXPECT_EQ(exit_code_named(70), ExitCode::injected_crash);
  EXPECT_EQ(exit_code_named(5), std::nullopt);
  for (const ExitCodeName& entry : kExitCodeNames) EXPECT_EQ(exit_code_named(code(entry.exit_code)), entry.exit_code);
}

// Calibrate used to run a hard-coded `mpirun -np 2 --oversubscribe` line
// through std::system (a shell). Its argv now comes from the same
// mpirun_command as the local launcher's trials.
TEST(CalibrateCommand, UsesTheLaunchersMpirunLineAsArgvWords) {
  const std::vector<std::string> argv =
      calibrate_command("/opt/memfront it's/memfront-calibrate", {"/tmp/c $x.json", true, "/tmp/study configs.json", true});
  std::vector<std::string> expected = mpirun_command(kDefaultMpirun, {"--oversubscribe"}, kCalibrateRanks);
  expected.insert(expected.end(), {"/opt/memfront it's/memfront-calibrate", "--out", "/tmp/c $x.json", "--configs",
                                   "/tmp/study configs.json", "--quick", "--allow-loaded"});
  EXPECT_EQ(argv, expected);
  EXPECT_EQ(argv[0], "mpirun");
  EXPECT_EQ(argv[1], "-np");
  EXPECT_EQ(argv[2], "2");
  EXPECT_EQ(argv[3] == "--allow-run-as-root", ::geteuid() == 0);
  EXPECT_EQ(calibrate_command("c", CalibrateRequest{"o.json", false, {}, false}).back(), "o.json")
      << "--configs, --quick and --allow-loaded only when asked";
}

TEST(MpirunCommand, AddsTheRootFlagOnlyWhenNeeded) {
  const std::vector<std::string> plain = mpirun_command("mpiexec", {"--bind-to", "none"}, 4);
  std::vector<std::string> expected = {"mpiexec", "-np", "4"};
  if (::geteuid() == 0) expected.push_back("--allow-run-as-root");
  expected.insert(expected.end(), {"--mca", "pml", "ob1", "--mca", "btl", "self,vader", "--bind-to", "none"});
  EXPECT_EQ(plain, expected);
  const std::vector<std::string> given = mpirun_command("mpirun", {"--allow-run-as-root"}, 2);
  EXPECT_EQ(std::count(given.begin(), given.end(), "--allow-run-as-root"), 1);
}

// Open MPI probed every transport it was built with at each trial's start
// (0.3-0.4 s of MPI_Init); the ranks of one machine now get shared memory
// only, unless the study or the environment chooses.
TEST(MpirunCommand, ChoosesSharedMemoryTransportsUnlessTheStudyOrEnvironmentDoes) {
  const auto value_of = [](const std::vector<std::string>& argv, const std::string& parameter) {
    std::vector<std::string> values;
    for (size_t i = 0; i + 2 < argv.size(); ++i) {
      if (argv[i] == "--mca" && argv[i + 1] == parameter) values.push_back(argv[i + 2]);
    }
    return values;
  };
  const std::vector<std::string> plain = mpirun_command("mpirun", {}, 2);
  EXPECT_EQ(value_of(plain, "pml"), std::vector<std::string>{"ob1"});
  EXPECT_EQ(value_of(plain, "btl"), std::vector<std::string>{"self,vader"});

  const std::vector<std::string> study = mpirun_command("mpirun", {"--mca", "btl", "self,tcp"}, 2);
  EXPECT_EQ(value_of(study, "btl"), std::vector<std::string>{"self,tcp"}) << "the study's choice, once";
  EXPECT_EQ(value_of(study, "pml"), std::vector<std::string>{"ob1"});

  ASSERT_EQ(::setenv("OMPI_MCA_pml", "ucx", 1), 0);
  const std::vector<std::string> environment = mpirun_command("mpirun", {}, 2);
  ::unsetenv("OMPI_MCA_pml");
  EXPECT_TRUE(value_of(environment, "pml").empty()) << "the environment's OMPI_MCA_pml stands";
  EXPECT_EQ(value_of(environment, "btl"), std::vector<std::string>{"self,vader"});
}

// Open MPI binds up to two ranks to the first cores, so trials run side by
// side shared them; the ranks claim free cores themselves unless the study binds.
TEST(MpirunCommand, LeavesBindingToTheRanksUnlessTheStudyBinds) {
  const std::vector<std::string> plain = mpirun_command("mpirun", {}, 2);
  const auto bind = std::find(plain.begin(), plain.end(), "--bind-to");
  ASSERT_NE(bind, plain.end());
  EXPECT_EQ(*(bind + 1), "none");
  const std::vector<std::string> study = mpirun_command("mpirun", {"--bind-to", "socket"}, 2);
  EXPECT_EQ(std::count(study.begin(), study.end(), "--bind-to"), 1);
  EXPECT_EQ(*(std::find(study.begin(), study.end(), "--bind-to") + 1), "socket");
}

}  // namespace
}  // namespace memfront
