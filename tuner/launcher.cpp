// LocalLauncher: one trial as a child process group on this machine.
//
// The child is started with fork + execv (no shell, so nothing in a path or an
// argument is ever interpreted), in a process group of its own: mpirun and
// every rank it starts share that group, so one kill(-pgid) reaches them all,
// and a Ctrl-C in the terminal reaches only the sweep, which decides what to
// stop. The launcher polls the child rather than blocking in waitpid so that
// it can notice a deadline or an interrupt without threads or signal tricks.
//
// Problems of the launcher's own set-up (the work folder cannot be written, the
// executable or mpirun cannot be found or run, fork fails) throw
// std::runtime_error instead of becoming a record: they are not the trial's
// result, would repeat for every trial, and a record of them would make a
// resumed sweep skip the trial.
#include "tuner/launcher.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace memfront {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// How often the child is checked: short enough that a 1 s timeout is honoured
// closely, long enough to cost nothing next to a trial.
constexpr auto kPollInterval = std::chrono::milliseconds(20);
// Between SIGTERM and SIGKILL: mpirun uses it to take its ranks down cleanly.
constexpr auto kTermGrace = std::chrono::seconds(kTermGraceSeconds);
// The trial's own wait for another rank (memfront-trial --timeout) is at most
// this, and at most half the launcher's timeout, so that a stuck collective
// fails inside the trial, with a record saying so, before the launcher kills it.
constexpr double kMaxCommTimeoutS = 60;
// What of stderr goes into an error message.
constexpr int kTailLines = 5;
constexpr size_t kTailChars = 500;
constexpr std::streamoff kStderrReadBytes = 1 << 20;

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error("launcher: " + message); }

std::string errno_text(int error) { return std::strerror(error); }

// An fd that closes itself; every fd here is opened O_CLOEXEC so that none of
// them leaks into the trial (the child dup2s the ones it needs onto 0, 1, 2).
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

Fd open_or_fail(const fs::path& path, int flags, const char* doing) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot " + std::string(doing) + " " + path.string() + ": " + errno_text(errno));
  return Fd(fd);
}

bool is_executable_file(const fs::path& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? "SIG" + std::string(abbrev) : "signal " + std::to_string(sig);
}

// --- stderr ------------------------------------------------------------------

// The end of the stderr file: all of it unless it is huge. Reading from the
// start keeps Open MPI's frames (below) paired; past the cap, the first
// partial line is dropped and frames may pair wrongly, which only changes how
// the tail is arranged.
std::string read_stderr_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff start = std::max<std::streamoff>(0, size - kStderrReadBytes);
  in.seekg(start);
  std::string text(static_cast<size_t>(size - start), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (start > 0) text.erase(0, std::min(text.size(), text.find('\n') + 1));
  return text;
}

// One line for a message: control characters become spaces, runs of spaces one.
std::string clean_line(std::string_view line) {
  std::string cleaned;
  for (char c : line) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    if (c == ' ' && (cleaned.empty() || cleaned.back() == ' ')) continue;
    cleaned += c;
  }
  while (!cleaned.empty() && cleaned.back() == ' ') cleaned.pop_back();
  return cleaned;
}

// What the trial's stderr says. mpirun prints its notices ("mpirun detected
// that one or more processes exited with non-zero status...") as paragraphs
// between lines of dashes, after whatever the ranks printed; they are kept
// apart so that a long notice cannot push the trial's own last words out of
// the tail.
struct StderrSummary {
  std::vector<std::string> own;  // non-blank lines outside the frames
  std::string notice;            // mpirun's last framed notice, as one line
};

bool is_frame_line(const std::string& line) {
  return line.size() >= 10 && line.find_first_not_of('-') == std::string::npos;
}

StderrSummary summarize_stderr(const std::string& text) {
  StderrSummary summary;
  bool in_frame = false;
  std::string notice;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    if (is_frame_line(line)) {
      if (in_frame && !notice.empty()) summary.notice = notice;
      in_frame = !in_frame;
      notice.clear();
      continue;
    }
    const std::string cleaned = clean_line(line);
    // Blank lines, and separators such as "=====" that say nothing, are skipped.
    if (cleaned.find_first_not_of("-=* ") == std::string::npos) continue;
    if (in_frame) {
      notice += (notice.empty() ? "" : " ") + cleaned;
    } else {
      summary.own.push_back(cleaned);
    }
  }
  if (in_frame && !notice.empty()) summary.notice = notice;  // cut short
  return summary;
}

// The trial's last few lines joined with " | ", then mpirun's notice, within
// kTailChars: the notice is shortened first, then the oldest lines go.
std::string stderr_tail(const StderrSummary& summary) {
  std::string notice = summary.notice;
  if (notice.size() > kTailChars / 2) notice = notice.substr(0, kTailChars / 2 - 3) + "...";
  std::string own;
  const size_t first = summary.own.size() > kTailLines ? summary.own.size() - kTailLines : 0;
  for (size_t i = first; i < summary.own.size(); ++i) {
    if (!own.empty()) own += " | ";
    own += summary.own[i];
  }
  const size_t room = kTailChars - (notice.empty() ? 0 : notice.size() + 3);
  if (own.size() > room) own = "..." + own.substr(own.size() - (room - 3));
  std::string tail = own;
  if (!notice.empty()) tail += (tail.empty() ? "" : " | ") + notice;
  return tail.empty() ? "(empty)" : tail;
}

// The line that says why the input was rejected: the trial's last line, not
// mpirun's notice that a process exited non-zero.
std::string last_message_line(const StderrSummary& summary) {
  return summary.own.empty() ? summary.notice : summary.own.back();
}

// --- the child process -------------------------------------------------------

struct ChildExit {
  int exit_code = 0;  // when it exited
  int signal = 0;     // when a signal ended it
};

ChildExit decode(int status) {
  ChildExit result;
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

// True once the child has ended. WNOWAIT leaves it a zombie: its pid, which is
// also the process group's id, cannot be reused until it is reaped, so the
// group can still be signalled safely afterwards.
bool has_ended(pid_t pid) {
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno != EINTR) fail("waitid(" + std::to_string(pid) + "): " + errno_text(errno));
  }
  return info.si_pid == pid;
}

// Kills what is left of the group (ranks that outlive mpirun, or that ignore
// SIGTERM) and reaps the leader.
ChildExit reap(pid_t pid) {
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) fail("waitpid(" + std::to_string(pid) + "): " + errno_text(errno));
  }
  return decode(status);
}

// SIGTERM first, so that mpirun can take its ranks down and a trial can leave
// its record; SIGKILL after the grace period.
ChildExit stop_group(pid_t pid) {
  ::kill(-pid, SIGTERM);
  const auto give_up = Clock::now() + kTermGrace;
  while (!has_ended(pid) && Clock::now() < give_up) std::this_thread::sleep_for(kPollInterval);
  return reap(pid);
}

// fork + execv in a new process group: stdin and stdout /dev/null, stderr to
// the file. An exec failure comes back through a close-on-exec pipe: a
// successful exec closes it with nothing written.
pid_t start(const std::vector<std::string>& argv, const fs::path& program, int stderr_fd) {
  Fd dev_null = open_or_fail("/dev/null", O_RDWR, "open");
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) fail("pipe2: " + errno_text(errno));
  Fd exec_error_read(pipe_fds[0]), exec_error_write(pipe_fds[1]);

  // Everything the child needs is prepared here: after fork it may only make
  // async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const std::string program_path = program.string();

  const pid_t pid = ::fork();
  if (pid < 0) fail("fork: " + errno_text(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    // A handler or mask of the sweep must not shape the trial: signals the
    // sweep ignores would stay ignored across exec, and a blocked SIGTERM
    // would always cost the grace period.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(dev_null.get(), STDIN_FILENO);
    ::dup2(dev_null.get(), STDOUT_FILENO);
    ::dup2(stderr_fd, STDERR_FILENO);
    // fds that other parts of the process opened without O_CLOEXEC stay out
    // of the trial too (best effort: needs Linux 5.11).
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execv(program_path.c_str(), args.data());
    const int error = errno;
    [[maybe_unused]] ssize_t ignored = ::write(exec_error_write.get(), &error, sizeof error);
    ::_exit(127);
  }
  // Also here, so that the group exists whichever of parent and child runs
  // first (EACCES once the child has exec'd is harmless: it did it already).
  ::setpgid(pid, pid);
  exec_error_write.reset();
  int exec_errno = 0;
  ssize_t got;
  while ((got = ::read(exec_error_read.get(), &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
  }
  if (got > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    fail("cannot run " + program_path + ": " + errno_text(exec_errno));
  }
  return pid;
}

// Waits for the child, polling for the deadline and the interrupt; returns
// once the child is reaped and the rest of its group killed.
ChildExit supervise(pid_t pid, Clock::time_point deadline, const std::atomic<bool>* interrupt, bool& interrupted,
                    bool& timed_out) {
  while (true) {
    if (has_ended(pid)) return reap(pid);
    if (interrupt && interrupt->load()) {
      interrupted = true;
      return stop_group(pid);
    }
    if (Clock::now() >= deadline) {
      timed_out = true;
      return stop_group(pid);
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

// --- outcome -----------------------------------------------------------------

// The record the trial left, if it is one for this config.
struct RecordRead {
  std::optional<TrialRecord> record;
  std::string problem;  // why there is none
};

RecordRead read_trial_record(const fs::path& path, const std::string& id) {
  RecordRead read;
  std::error_code ignored;
  if (!fs::exists(path, ignored)) {
    read.problem = "no record file " + path.string();
    return read;
  }
  try {
    TrialRecord record = read_record_file(path);
    if (record.id != id) {
      read.problem = path.string() + ": the record's id is " + record.id + ", expected " + id;
    } else {
      read.record = std::move(record);
    }
  } catch (const std::exception& e) {
    read.problem = clean_line(e.what());
  }
  return read;
}

}  // namespace

std::string format_seconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", seconds);
  return text;
}

LaunchOutcome LocalLauncher::run(const LaunchRequest& request) {
  const Config& config = request.config;
  const std::string id = config_id(config);

  std::error_code error;
  fs::create_directories(request.work_dir, error);
  if (error) fail("cannot create " + request.work_dir.string() + ": " + error.message());
  const fs::path config_path = request.work_dir / (id + ".config.json");
  const fs::path record_path = request.work_dir / (id + ".record.json");
  const fs::path stderr_path = request.work_dir / (id + ".stderr");
  const fs::path trace_path = request.work_dir / (id + ".trace.json");
  {
    std::ofstream out(config_path, std::ios::trunc);
    out << to_json(config).dump(2) << '\n';
    out.close();
    if (!out) fail("cannot write " + config_path.string());
  }
  // A record left by an earlier run of this config must not pass for this one's.
  fs::remove(record_path, error);
  if (error) fail("cannot remove the old " + record_path.string() + ": " + error.message());
  // Nor an earlier trace pass for this run's.
  if (request.trace) {
    fs::remove(trace_path, error);
    if (error) fail("cannot remove the old " + trace_path.string() + ": " + error.message());
  }

  // The trial's command line.
  const auto trial_exe = find_program(request.trial_exe.string());
  if (!trial_exe) fail("no executable memfront-trial at '" + request.trial_exe.string() + "'");
  std::vector<std::string> trial = {trial_exe->string(), "--config", config_path.string(),
                                    "--out", record_path.string()};
  const std::vector<std::string> flags = trial_flags(request, trace_path);
  trial.insert(trial.end(), flags.begin(), flags.end());

  std::vector<std::string> argv;
  fs::path program = *trial_exe;
  if (config.world > 1) {
    const auto mpirun = find_program(request.mpirun);
    if (!mpirun) fail("cannot find '" + request.mpirun + "' (needed for world " + std::to_string(config.world) + ")");
    program = *mpirun;
    argv = {request.mpirun, "-np", std::to_string(config.world)};
    // Open MPI refuses to run as root without it; added unless mpirun_args have it already.
    const bool has_root_flag = std::find(request.mpirun_args.begin(), request.mpirun_args.end(),
                                         "--allow-run-as-root") != request.mpirun_args.end();
    if (::geteuid() == 0 && !has_root_flag) argv.push_back("--allow-run-as-root");
    argv.insert(argv.end(), request.mpirun_args.begin(), request.mpirun_args.end());
  }
  argv.insert(argv.end(), trial.begin(), trial.end());

  RunEnd end;
  end.command = shell_command(argv);

  // Run, polling for the end, the deadline and the interrupt.
  const auto started = Clock::now();
  const auto deadline = has_deadline(request.timeout_s)
                            ? started + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(request.timeout_s))
                            : Clock::time_point::max();
  {
    Fd stderr_fd = open_or_fail(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, "create");
    if (interrupt_ && interrupt_->load()) {
      end.interrupted = true;  // a sweep interrupted between two trials starts no new one
    } else {
      const pid_t pid = start(argv, program, stderr_fd.get());
      const ChildExit ended = supervise(pid, deadline, interrupt_, end.interrupted, end.timed_out);
      end.exit_code = ended.exit_code;
      end.signal = ended.signal;
    }
  }
  end.wall_s = std::chrono::duration<double>(Clock::now() - started).count();
  return outcome_of_run(config, end, request.timeout_s, record_path, stderr_path);
}

LaunchOutcome outcome_of_run(const Config& config, const RunEnd& end, double timeout_s, const fs::path& record_path,
                             const fs::path& stderr_path) {
  const std::string id = config_id(config);
  const std::string stderr_text = read_stderr_file(stderr_path);
  const StderrSummary stderr_summary = summarize_stderr(stderr_text);
  const std::string tail = stderr_tail(stderr_summary);
  const RecordRead left = read_trial_record(record_path, id);
  const bool record_failed = left.record && left.record->status != TrialStatus::ok;
  // Whatever the trial said about its failure is kept in the launcher's message.
  const std::string trial_said =
      record_failed && !left.record->error.empty() ? "; record: " + left.record->error : "";

  // The trial's record when there is one (metrics of a failed run included),
  // with the launcher's account of how it ended.
  TrialRecord record = left.record ? *left.record : TrialRecord{};
  record.id = id;
  record.config = to_json(config);
  // A launcher sends SIGKILL only after a timeout or interrupt; any other
  // SIGKILL came from outside, on Linux almost always the out-of-memory killer.
  // mpirun reports a rank so killed as "exited on signal 9".
  const bool killed_from_outside =
      end.signal == SIGKILL ||
      (config.world > 1 && end.exit_code != 0 && stderr_text.find("exited on signal 9") != std::string::npos);

  if (end.interrupted) {
    record.status = TrialStatus::failed;
    record.error = "interrupted";
  } else if (end.timed_out) {
    record.status = TrialStatus::timeout;
    record.error = "timed out after " + format_seconds(timeout_s) + " s" + trial_said + "; stderr: " + tail;
  } else if (end.signal == 0 && end.exit_code == 0) {
    // The trial's record as it wrote it, if there is one for this config.
    if (!left.record) {
      record.status = TrialStatus::failed;
      record.error = "exit 0 but the record is unreadable: " + left.problem;
    }
  } else if (end.signal == 0 && end.exit_code == 3 && record_failed) {
    // The trial's own account of a failed run (oom, a rank that timed out, ...).
  } else if (end.signal == 0 && end.exit_code == 2) {
    record.status = TrialStatus::invalid;
    const std::string line = last_message_line(stderr_summary);
    record.error = line.empty() ? "rejected its input (exit code 2) without saying why" : line;
  } else if (killed_from_outside) {
    record.status = TrialStatus::oom;
    record.error = (end.signal == SIGKILL ? "killed by SIGKILL" : "a rank was killed by SIGKILL") +
                   std::string(" (likely the out-of-memory killer)") + trial_said + "; stderr: " + tail;
  } else {
    // The record's status (e.g. oom from a rank that ended the job) is kept
    // when it says more than "failed".
    record.status = record_failed ? left.record->status : TrialStatus::failed;
    const std::string how = end.signal != 0
        ? "killed by signal " + std::to_string(end.signal) + " (" + signal_name(end.signal) + ")"
        : "exited with code " + std::to_string(end.exit_code);
    // Exit 3 promises a record that says what failed: say what was found instead.
    std::string promised;
    if (end.signal == 0 && end.exit_code == 3) {
      promised = left.record ? "; but the record says ok" : "; no readable record: " + left.problem;
    }
    record.error = how + promised + trial_said + "; stderr: " + tail;
  }
  if (record.status == TrialStatus::ok) record.error.clear();

  if (!record.provenance.is_object()) record.provenance = nlohmann::json::object();
  record.provenance["launcher"] = {{"command", end.command},
                                   {"exit_code", end.exit_code},
                                   {"signal", end.signal},
                                   {"wall_s", end.wall_s}};

  LaunchOutcome outcome;
  outcome.record = std::move(record);
  outcome.exit_code = end.exit_code;
  outcome.signal = end.signal;
  outcome.wall_s = end.wall_s;
  outcome.interrupted = end.interrupted;
  outcome.command = end.command;
  outcome.record_dir = record_path.parent_path();
  return outcome;
}

bool has_deadline(double timeout_s) { return timeout_s > 0 && timeout_s < 1e9; }

std::vector<std::string> trial_flags(const LaunchRequest& request, const fs::path& trace_path) {
  std::vector<std::string> flags = {"--quiet"};
  if (request.trace) flags.insert(flags.end(), {"--trace", trace_path.string()});
  const bool caller_sets_timeout = std::any_of(request.trial_args.begin(), request.trial_args.end(),
      [](const std::string& a) { return a == "--timeout" || a.rfind("--timeout=", 0) == 0; });
  if (has_deadline(request.timeout_s) && !caller_sets_timeout) {
    flags.insert(flags.end(), {"--timeout", format_seconds(std::min(kMaxCommTimeoutS, request.timeout_s / 2))});
  }
  flags.insert(flags.end(), request.trial_args.begin(), request.trial_args.end());
  return flags;
}

// What execvp would run, found before fork: the child then only calls execv,
// which is safe in a child of a multi-threaded process (execvp may allocate).
std::optional<fs::path> find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return is_executable_file(name) ? std::optional<fs::path>(name) : std::nullopt;
  }
  const char* path_env = std::getenv("PATH");
  std::stringstream dirs(path_env ? path_env : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (is_executable_file(candidate)) return candidate;
  }
  return std::nullopt;
}

namespace {

// A kernels program the tuner runs: the environment variable, else beside the
// running executable's build tree or in its folder, else the configured path.
fs::path find_kernels_program(const char* environment, const char* name, const char* build_path) {
  if (const char* env = std::getenv(environment); env && *env) return env;
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    const fs::path dir = self.parent_path();
    for (const fs::path& candidate : {dir / ".." / "kernels" / name, dir / name}) {
      if (is_executable_file(candidate)) return candidate.lexically_normal();
    }
  }
  return build_path;
}

}  // namespace

fs::path find_trial_executable() {
  return find_kernels_program("MEMFRONT_TRIAL", "memfront-trial", MEMFRONT_TRIAL_BUILD_PATH);
}

fs::path find_calibrate_executable() {
  return find_kernels_program("MEMFRONT_CALIBRATE", "memfront-calibrate", MEMFRONT_CALIBRATE_BUILD_PATH);
}

std::string shell_command(const std::vector<std::string>& argv) {
  std::string command;
  for (const auto& arg : argv) {
    const bool plain = !arg.empty() && std::all_of(arg.begin(), arg.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("-_./=:,+@%", c) != nullptr;
    });
    if (!command.empty()) command += ' ';
    command += plain ? arg : shell_quote(arg);
  }
  return command;
}

std::string shell_quote(std::string_view text) {
  std::string out = "'";
  for (char ch : text) {
    if (ch == '\'') {
      out += "'\\''";
    } else {
      out += ch;
    }
  }
  return out + "'";
}

}  // namespace memfront
