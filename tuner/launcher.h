#pragma once
// Launchers run one trial each as its own process group and turn whatever
// happens to it into a trial record: a clean exit gives the record the trial
// wrote; a crash, a signal, a timeout, running out of memory or output that is
// not a record becomes the record's status, with the exit code and the tail
// of stderr in its error. A sweep goes on after any of them.
#include <atomic>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/results.h"
#include "core/time_limits.h"
#include "tuner/process.h"
#include "tuner/sweep_lock.h"

namespace memfront {

// The mpirun a study runs its multi-rank trials with unless it names another.
inline constexpr const char* kDefaultMpirun = "mpirun";

struct LaunchRequest {
  Config config;                      // normalized; config.world ranks
  std::filesystem::path work_dir;     // gets <id>.config.json, <id>.record.json, <id>.stderr
  double timeout_s = kDefaultTrialTimeoutS;  // wall time before the process group is stopped
  std::filesystem::path trial_exe;    // memfront-trial
  std::string mpirun = kDefaultMpirun;   // used when config.world > 1
  std::vector<std::string> mpirun_args;  // e.g. --oversubscribe (--allow-run-as-root is added for root)
  std::vector<std::string> trial_args;   // extra memfront-trial arguments (e.g. --mem-cap 1GiB)
  bool trace = false;                 // the trial writes a trace to <work_dir>/<id>.trace.json
  // What the sweep adds to the record once the trial has ended, for runners
  // that keep trials to be finished later by another process (memfront collect).
  std::optional<Prediction> prediction;  // the cost model's
  std::string reference_id;           // the study reference's id at this config's steps (its own for the reference)
};

struct LaunchOutcome {
  TrialRecord record;   // always filled: status ok, failed, timeout, oom or invalid (bad input)
  ProcessEnd end;       // how the run ended; end.interrupted: stopped because the sweep was, not a result
  std::string command;  // the command line that ran
  std::filesystem::path record_dir;  // the folder of the trial's record, which names its trace relative to it
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  // Throws std::runtime_error when nothing could run at all (no work folder,
  // no memfront-trial or mpirun, fork failed): that is not the trial's result,
  // and it would repeat for every trial, so the sweep stops.
  virtual LaunchOutcome run(const LaunchRequest& request) = 0;
};

// Runs the trial on this machine: memfront-trial directly for one rank,
// `mpirun -np W memfront-trial` otherwise, in a new process group that is
// killed (SIGTERM, then SIGKILL after a grace period) on timeout or interrupt.
class LocalLauncher final : public Launcher {
 public:
  // `interrupt` is polled while a trial runs (a SIGINT handler sets it).
  // `sweep_lock`, when given, records the trial running (tuner/sweep_lock.h).
  explicit LocalLauncher(const std::atomic<bool>* interrupt = nullptr, SweepLock* sweep_lock = nullptr)
      : interrupt_(interrupt), sweep_lock_(sweep_lock) {}
  LaunchOutcome run(const LaunchRequest& request) override;

 private:
  const std::atomic<bool>* interrupt_;
  SweepLock* sweep_lock_;
};

// The outcome of a run that ended as `end`, by `command`: as its record the
// record memfront-trial left at record_path when it is one for this config
// (metrics of a failed run included), with the run's end as its status and
// error (the tail of the stderr file included) and the launcher's account of
// it in provenance.launcher. Its record_dir is record_path's folder. The end
// is this machine's (LocalLauncher) or a Slurm array element's run
// (tuner/slurm_records.h).
LaunchOutcome outcome_of_run(const Config& config, const ProcessEnd& end, const std::string& command, double timeout_s,
                             const std::filesystem::path& record_path, const std::filesystem::path& stderr_path);

// No timeout (0, negative or absurdly long) means no deadline, and the trial's
// own default wait for a silent peer.
bool has_deadline(double timeout_s);

// Seconds as a short decimal ("2.5", "120"), for command lines and messages.
std::string format_seconds(double seconds);

// memfront-trial's flags after --config and --out: --quiet, --trace when the
// request traces, its --timeout for a silent peer (unless trial_args set one),
// then the request's trial_args.
std::vector<std::string> trial_flags(const LaunchRequest& request, const std::filesystem::path& trace_path);

// How memfront runs `ranks` ranks of a program on this machine: mpirun's
// argv up to the program (`mpirun -np N`, --allow-run-as-root when running as
// root unless mpirun_args have it, `--mca NAME VALUE` for each of
// kLocalMpiTransports (core/local_mpi.h) that neither mpirun_args nor the
// environment (OMPI_MCA_NAME) sets, `--bind-to none` unless mpirun_args bind
// (each rank claims its cores itself, kernels/trial.cpp), then mpirun_args). The local launcher and memfront
// calibrate both use it.
std::vector<std::string> mpirun_command(const std::string& mpirun, const std::vector<std::string>& mpirun_args,
                                        int ranks);

// memfront calibrate's command line: memfront-calibrate under mpirun on
// kCalibrateRanks ranks (a link needs two), oversubscribed so that it runs on
// a one-core machine too.
inline constexpr int kCalibrateRanks = 2;
struct CalibrateRequest {
  std::filesystem::path out;
  bool quick = false;
  std::filesystem::path configs;  // a JSON array of configs whose calls to time; empty: the built-in ones
  bool allow_loaded = false;      // keep figures measured on a busy machine (marked loaded)
};
std::vector<std::string> calibrate_command(const std::filesystem::path& calibrate_exe, const CalibrateRequest& request);

// One shell word in single quotes: nothing inside is expanded; a quote in
// the text closes the quotes, adds an escaped quote and reopens them. For
// every value from a study or results file that ends up in a shell command.
std::string shell_quote(std::string_view text);

// A command line that can be pasted into a shell: plain words as they are,
// the others shell_quote'd. For records and messages, never run.
std::string shell_command(const std::vector<std::string>& argv);

// Where memfront-trial is: $MEMFRONT_TRIAL, else next to the running
// executable's build tree (../kernels/memfront-trial) or in the same folder,
// else the path this build was configured with.
std::filesystem::path find_trial_executable();
// The same search for memfront-calibrate ($MEMFRONT_CALIBRATE first).
std::filesystem::path find_calibrate_executable();

}  // namespace memfront
