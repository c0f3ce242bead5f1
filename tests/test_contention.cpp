// The timing protocol seen from outside: a trial run beside a CPU antagonist
// (busy processes, one per core, bounded and killed by PID) is flagged
// contended with its reason; the same trial on the quiet machine is not.
// Registered RUN_SERIAL: no other test may load the machine meanwhile.
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/results.h"
#include "tests/run_command.h"

using namespace memfront;
namespace fs = std::filesystem;

namespace {

// Steps of a few tens of milliseconds: long enough for the scheduler to share
// a core between the trial and an antagonist within every step.
const char* kConfig = R"({"model": {"vocab": 128, "seq": 64, "width": 128, "heads": 4, "layers": 2},
                          "batch": {"micro": 4}, "train": {"steps": 8, "warmup": 1}})";

// One busy process on each core, each ending on its own after 60 s should the
// test die before it kills them.
class Antagonist {
 public:
  Antagonist() {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < cores; ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        // Pinned, one to each core: unpinned, the scheduler may well move
        // them all off the trial's core, and then nothing contends with it.
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(i, &one);
        sched_setaffinity(0, sizeof(one), &one);
        alarm(60);
        volatile uint64_t spin = 0;
        for (;;) spin = spin + 1;
      }
      if (pid > 0) pids_.push_back(pid);
    }
  }
  ~Antagonist() {
    for (pid_t pid : pids_) kill(pid, SIGKILL);
    for (pid_t pid : pids_) waitpid(pid, nullptr, 0);
  }
  size_t size() const { return pids_.size(); }

 private:
  std::vector<pid_t> pids_;
};

TrialRecord run_trial(const std::string& name) {
  const fs::path dir = fs::path(testing::TempDir()) / "contention";
  fs::create_directories(dir);
  const fs::path config = dir / (name + ".config.json");
  std::ofstream(config) << kConfig;
  const fs::path out = dir / (name + ".record.json");
  const CommandRun run =
      run_command(std::string(MEMFRONT_TRIAL_EXE) + " --quiet --config " + config.string() + " --out " + out.string());
  EXPECT_EQ(run.exit_code, 0) << run.output;
  return read_record_file(out);
}

}  // namespace

TEST(Contention, ATrialBesideAnAntagonistIsFlaggedAndAQuietOneIsNot) {
  // Quiet: as a sweep would (--remeasure 2), up to three runs for one that
  // nothing disturbed, a second apart so that what the tests before left
  // running (page-cache flushes, exiting processes) settles.
  TrialRecord quiet;
  for (int run = 0; run < 3; ++run) {
    if (run > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    quiet = run_trial("quiet");
    ASSERT_TRUE(quiet.metrics && quiet.metrics->timing);
    if (!quiet.metrics->timing->contended) break;
  }
  const TimingQuality& q = *quiet.metrics->timing;
  if (!q.run_delay_fraction) GTEST_SKIP() << "this kernel keeps no schedstat: run delay cannot be measured";
  EXPECT_FALSE(q.contended) << q.reason << " (is something else loading this machine?)";
  EXPECT_TRUE(q.bound);

  TrialRecord loaded;
  {
    const Antagonist antagonist;
    ASSERT_GT(antagonist.size(), 0u);
    loaded = run_trial("loaded");
  }
  ASSERT_TRUE(loaded.metrics && loaded.metrics->timing);
  const TimingQuality& l = *loaded.metrics->timing;
  EXPECT_TRUE(l.contended) << "run delay " << l.run_delay_fraction.value_or(-1);
  EXPECT_NE(l.reason.find("waited for a CPU"), std::string::npos) << l.reason;
  EXPECT_GT(*l.run_delay_fraction, kContendedRunDelayFraction);
}
