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
#include <vector>

#include "core/config.h"
#include "core/results.h"

namespace memfront {

struct LaunchRequest {
  Config config;                      // normalized; config.world ranks
  std::filesystem::path work_dir;     // gets <id>.config.json, <id>.record.json, <id>.stderr
  double timeout_s = 300;             // wall time before the process group is killed
  std::filesystem::path trial_exe;    // memfront-trial
  std::string mpirun = "mpirun";      // used when config.world > 1
  std::vector<std::string> mpirun_args;  // e.g. --oversubscribe (--allow-run-as-root is added for root)
  std::vector<std::string> trial_args;   // extra memfront-trial arguments (e.g. --mem-cap 1GiB)
  bool trace = false;                 // the trial writes a trace to <work_dir>/<id>.trace.json
  // What the sweep adds to the record once the trial has ended, for runners
  // that keep trials to be finished later by another process (memfront collect).
  nlohmann::json prediction;          // the cost model's
  std::string reference_id;           // the study reference's id at this config's steps (its own for the reference)
};

struct LaunchOutcome {
  TrialRecord record;      // always filled: status ok, failed, timeout, oom or invalid (bad input)
  int exit_code = 0;       // when it exited
  int signal = 0;          // when a signal ended it
  double wall_s = 0;
  bool interrupted = false;  // stopped because the sweep was interrupted: not a result
  std::string command;       // the command line that ran
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
  explicit LocalLauncher(const std::atomic<bool>* interrupt = nullptr) : interrupt_(interrupt) {}
  LaunchOutcome run(const LaunchRequest& request) override;

 private:
  const std::atomic<bool>* interrupt_;
};

// How one run of a trial ended, as whatever ran it saw it: this machine's
// launcher, or a Slurm job array element (tuner/slurm_launcher.h).
struct RunEnd {
  int exit_code = 0;         // when it exited
  int signal = 0;            // when a signal ended it
  bool timed_out = false;    // stopped at its deadline
  bool interrupted = false;  // stopped because the sweep was interrupted
  double wall_s = 0;
  std::string command;       // the command line that ran
};

// The outcome of a run: its end, and as its record the record memfront-trial
// left at record_path when it is one for this config (metrics of a failed run
// included), with the run's end as its status and error (the tail of the
// stderr file included) and the launcher's account of it in
// provenance.launcher. Its record_dir is record_path's folder.
LaunchOutcome outcome_of_run(const Config& config, const RunEnd& end, double timeout_s,
                             const std::filesystem::path& record_path, const std::filesystem::path& stderr_path);

// No timeout (0, negative or absurdly long) means no deadline, and the trial's
// own default wait for a silent peer.
bool has_deadline(double timeout_s);

// Seconds between SIGTERM and SIGKILL when a trial overruns its timeout, on
// one machine and under Slurm alike.
inline constexpr int kTermGraceSeconds = 3;

// Seconds as a short decimal ("2.5", "120"), for command lines and messages.
std::string format_seconds(double seconds);

// memfront-trial's flags after --config and --out: --quiet, --trace when the
// request traces, its --timeout for a silent peer (unless trial_args set one),
// then the request's trial_args.
std::vector<std::string> trial_flags(const LaunchRequest& request, const std::filesystem::path& trace_path);

// A program as execv needs it: the name itself when it has a '/' and is
// executable, else the first executable of that name on PATH.
std::optional<std::filesystem::path> find_program(const std::string& name);

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
