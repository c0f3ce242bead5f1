// fake_trial: a stand-in for memfront-trial that misbehaves on request, so
// that the launcher's handling of every way a trial can end is tested quickly
// and without the kernels.
//
// It takes memfront-trial's command line (--config c.json --out r.json, and
// ignores everything else) and does what FAKE_TRIAL_MODE says:
//   ok         write an ok record with metrics for the config, exit 0
//   crash      abort() (SIGABRT), after a line on stderr
//   segv       a segmentation fault (SIGSEGV), leaving no record at all
//   hang       ignore SIGTERM and sleep until killed (SIGKILL)
//   sleep      sleep until killed; SIGTERM ends it
//   slow       sleep FAKE_TRIAL_SECONDS (default 1), then as ok
//   flood      8 MiB of lines on stderr, then "fake_trial: the last word", exit 7
//   fifo       a FIFO in the record's place, exit 0
//   killed     SIGKILL itself, as the kernel's out-of-memory killer would
//   oom        write an oom record, exit 3
//   garbage    write something that is not JSON as the record, exit 0
//   wrong_id   write a valid ok record of another config id, exit 0
//   exit7      several lines on stderr, exit 7
//   bad_input  one line on stderr, exit 2
// Like memfront-trial, every mode but bad_input and segv first writes an
// "unfinished" record, which the ending modes then overwrite. Under mpirun
// only rank 0 writes records. The ok record's provenance lists the argv it got
// and the fds it was started with.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/exit_code.h"
#include "core/results.h"

using namespace memfront;

namespace {

// The fds this process was started with, so that a test can see what leaked into it.
std::vector<int> open_fds() {
  std::vector<int> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(entry.path().filename().string());
    // The listing's own fd (a link into /proc) is not one it was started with.
    if (std::filesystem::read_symlink(entry.path()).string().starts_with("/proc/")) continue;
    fds.push_back(fd);
  }
  return fds;
}

TrialRecord record_for(const Config& config, const std::vector<std::string>& args) {
  TrialRecord record;
  record.id = config_id(config);
  record.config = config;
  record.provenance = {{"fake_trial", true}, {"argv", args}, {"open_fds", open_fds()}};
  return record;
}

TrialMetrics fake_metrics(const Config& config) {
  TrialMetrics metrics;
  for (int rank = 0; rank < config.world; ++rank) {
    RankMetrics m;
    m.rank = rank;
    m.peak[static_cast<int>(MemCategory::activations)] = 1000;
    m.peak_total = 1000;
    m.rss_peak_bytes = 4096;
    m.step_time_median_s = 0.01;
    metrics.ranks.push_back(m);
  }
  metrics.peak_max = metrics.peak_min = metrics.ranks[0].peak;
  metrics.peak_total_max = metrics.peak_total_min = 1000;
  metrics.step_time_s = spread_of({0.01, 0.011, 0.012});
  metrics.phase_s = {{"forward", 0.004}, {"backward", 0.006}};
  metrics.compute_s = 0.01;
  metrics.tokens_per_s = 1000;
  metrics.flops_per_step = 1e6;
  metrics.gflops = 0.1;
  metrics.loss_curve = {4.0, 3.5, 3.0};
  metrics.final_loss = 3.0;
  return metrics;
}

[[noreturn]] void sleep_forever() {
  while (true) ::pause();
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv, argv + argc);
  std::string config_path, out_path;
  for (size_t i = 1; i + 1 < args.size(); ++i) {
    if (args[i] == "--config") config_path = args[i + 1];
    if (args[i] == "--out") out_path = args[i + 1];
  }
  const char* mode_env = std::getenv("FAKE_TRIAL_MODE");
  const std::string mode = mode_env ? mode_env : "ok";
  // Open MPI tells each rank its number; without mpirun this is rank 0.
  const char* rank_env = std::getenv("OMPI_COMM_WORLD_RANK");
  const bool is_root = !rank_env || std::string(rank_env) == "0";

  if (mode == "bad_input" || config_path.empty() || out_path.empty()) {
    if (is_root) std::fprintf(stderr, "fake_trial: --config: bad input (mode %s)\n", mode.c_str());
    return code(ExitCode::bad_input);
  }
  if (mode == "segv") {
    std::fprintf(stderr, "fake_trial: about to dereference null\n");
    std::raise(SIGSEGV);
    return code(ExitCode::failure);
  }

  const Config config = load_config(config_path);
  auto write = [&](const TrialRecord& record) {
    if (is_root) write_record_file(out_path, record);
  };
  TrialRecord unfinished = record_for(config, args);
  unfinished.status = TrialStatus::failed;
  unfinished.error = "the trial did not finish: a rank crashed or the job was killed";
  write(unfinished);

  if (mode == "slow") {
    const char* seconds = std::getenv("FAKE_TRIAL_SECONDS");
    ::usleep(static_cast<useconds_t>((seconds ? std::atof(seconds) : 1.0) * 1e6));
  }
  if (mode == "ok" || mode == "slow") {
    TrialRecord record = record_for(config, args);
    record.metrics = fake_metrics(config);
    write(record);
    return 0;
  }
  if (mode == "crash") {
    std::fprintf(stderr, "fake_trial: step 1\nfake_trial: giving up\n");
    std::abort();
  }
  if (mode == "hang") {
    std::signal(SIGTERM, SIG_IGN);
    std::fprintf(stderr, "fake_trial: hanging, deaf to SIGTERM\n");
    sleep_forever();
  }
  if (mode == "sleep") {
    std::fprintf(stderr, "fake_trial: sleeping\n");
    sleep_forever();
  }
  if (mode == "killed") {
    std::fprintf(stderr, "fake_trial: allocating a lot\n");
    std::raise(SIGKILL);
  }
  if (mode == "oom") {
    TrialRecord record = record_for(config, args);
    record.status = TrialStatus::oom;
    record.error = "rank 0: out of memory: activations needs 4096 bytes over the 1024-byte cap";
    record.metrics = fake_metrics(config);
    write(record);
    std::fprintf(stderr, "fake_trial: %s\n", record.error.c_str());
    return code(ExitCode::trial_failed);
  }
  if (mode == "garbage") {
    if (is_root) std::ofstream(out_path, std::ios::trunc) << "this is {not a record\n";
    return 0;
  }
  if (mode == "wrong_id") {
    TrialRecord record = record_for(config, args);
    record.id = "0123456789abcdef";
    record.metrics = fake_metrics(config);
    write(record);
    return 0;
  }
  if (mode == "flood") {
    const std::string line(1023, 'x');
    for (int i = 0; i < 8 * 1024; ++i) std::fprintf(stderr, "%s\n", line.c_str());
    std::fprintf(stderr, "fake_trial: the last word\n");
    return 7;
  }
  if (mode == "fifo") {
    std::filesystem::remove(out_path);
    return ::mkfifo(out_path.c_str(), 0644) == 0 ? 0 : 1;
  }
  if (mode == "exit7") {
    for (int i = 1; i <= 8; ++i) std::fprintf(stderr, "fake_trial: line %d\n", i);
    std::fprintf(stderr, "\n--------\nfake_trial: the last word\n");
    return 7;
  }
  std::fprintf(stderr, "fake_trial: unknown FAKE_TRIAL_MODE '%s'\n", mode.c_str());
  return code(ExitCode::bad_input);
}
