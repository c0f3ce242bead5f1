#pragma once
// Every program the tuner runs (memfront-trial under mpirun or alone,
// memfront-calibrate, sbatch, squeue, sacct, scontrol, `mpirun --version`) is
// run here, one way:
//
// - argv only, never a shell: nothing in a path or an argument is interpreted;
// - in a session of its own (which is also its process group): a Ctrl-C in
//   the terminal reaches only memfront, which decides what to stop, and the
//   session holds everything the child starts, mpirun's ranks included, which
//   Open MPI puts in process groups of their own;
// - watched by a small process of its own (the watchdog) that holds a pipe
//   from memfront: when memfront dies, however it dies (SIGKILL included), the
//   pipe closes and the watchdog ends the child's session, as at the deadline;
// - stdin from /dev/null; stdout captured up to a bound; stderr either into a
//   file or captured as a bounded tail;
// - by a deadline and an interrupt flag: SIGTERM to the group first, so that
//   mpirun can take its ranks down and a trial can leave its record, then
//   SIGKILL after a grace period;
// - and whatever happened, one ProcessEnd says how it ended.
//
// The child is exec-safe in a multithreaded process: everything it needs is
// prepared before fork, and after fork it makes only async-signal-safe calls.
#include <atomic>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace memfront {

// Seconds between SIGTERM and SIGKILL when a process overruns its deadline or
// is interrupted, on one machine and under Slurm (timeout --kill-after) alike.
inline constexpr int kTermGraceSeconds = 3;

// A process as the kernel knows it: its pid and its start time, which tell it
// from a later process that got the same pid.
struct ProcessIdentity {
  int pid = 0;
  unsigned long long start_ticks = 0;  // /proc/<pid>/stat starttime: clock ticks after boot
  bool operator==(const ProcessIdentity&) const = default;
};

struct ProcessRequest {
  // argv[0] is the program: a path when it has a '/', else looked up on PATH
  // (find_program). The others are its arguments, passed as they are.
  std::vector<std::string> argv;
  std::filesystem::path cwd;                      // empty: this process's
  std::map<std::string, std::string> environment;  // set on top of this process's environment
  std::optional<double> timeout_s;                // none: no deadline
  double term_grace_s = kTermGraceSeconds;
  // Polled while the process runs: once it is set the group is stopped as at
  // the deadline, and once set before the start nothing is started.
  const std::atomic<bool>* interrupt = nullptr;
  // Non-empty: stderr goes to this file (created or truncated), the tail is
  // then read back from it; empty: stderr is captured, its tail kept.
  std::filesystem::path stderr_path;
  size_t stdout_limit = size_t{1} << 20;  // bytes of stdout kept; the rest is read and dropped
  size_t stderr_tail_limit = 4096;        // bytes of stderr's end kept
  // Called once the program runs, with its identity (its session's leader),
  // so that the caller can record it for a later memfront to end
  // (tuner/sweep_lock.h). When it throws, the session is ended and the
  // exception goes on to run_process's caller.
  std::function<void(const ProcessIdentity&)> on_start;
};

// How a process ended. Exactly one of exit_code and signal says it when the
// process ran; timed_out and interrupted say why it was stopped, if it was.
struct ProcessEnd {
  int exit_code = 0;         // when it exited
  int signal = 0;            // when a signal ended it
  bool timed_out = false;    // stopped at its deadline
  bool interrupted = false;  // stopped, or never started, because the interrupt flag was set
  double wall_s = 0;
  std::string out;           // stdout, its first stdout_limit bytes
  std::string err_tail;      // stderr, its last stderr_tail_limit bytes
  // Kills by the kernel's out-of-memory killer while it ran, in memfront's
  // memory cgroup (else on the whole machine); none when the kernel does not
  // say. Tells an OOM kill from any other SIGKILL.
  std::optional<unsigned long long> oom_kills;

  // Ended on its own with exit code 0.
  bool ok() const { return exit_code == 0 && signal == 0 && !timed_out && !interrupted; }
};

// Runs the request to its end. Throws std::runtime_error, naming the program,
// when it cannot be run at all (not found, not executable, the cwd or the
// stderr file cannot be used, fork fails): that is not the program's result.
ProcessEnd run_process(const ProcessRequest& request);

// "exited with code 2 (bad input)", "killed by signal 9 (SIGKILL)", with
// "stopped at its deadline: " or "interrupted: " first when it was: for messages.
std::string describe(const ProcessEnd& end);
// "exited with code 7", "exited with code 3 (trial failed)", "killed by signal 6 (SIGABRT)".
std::string describe_exit(int exit_code, int signal);

// The kernel's count of out-of-memory kills ("oom_kill") in this process's
// memory cgroup (v2 memory.events, v1 memory.oom_control), else on the whole
// machine (/proc/vmstat); none when none of them can be read.
std::optional<unsigned long long> oom_kill_count();

// The identity of a running (or not yet reaped) process; none when there is
// no such process.
std::optional<ProcessIdentity> identify_process(int pid);

// Ends the session that `leader` started (run_process's child and everything
// it started): SIGTERM to the leader's process group, then, after grace_s or
// once nothing else is left, SIGKILL to every process of the session. Nothing
// is signalled when the pid now belongs to another process. Returns how many
// processes were still running at the start. Blocks for at most grace_s.
int end_session(const ProcessIdentity& leader, double grace_s);

// The last `limit` bytes of a file ("" when it cannot be read): the tail of a
// child's stderr or log file.
std::string file_tail(const std::filesystem::path& path, size_t limit);

// A program as execv needs it: the name itself when it has a '/' and is
// executable, else the first executable of that name on PATH. Found before
// fork: the child then only calls execve, which is safe in a child of a
// multithreaded process (execvp may allocate).
std::optional<std::filesystem::path> find_program(const std::string& name);

}  // namespace memfront
