// run_process: fork + execve in a new process group, supervised by polling.
//
// The parent polls the child's pipes and the child itself (waitid with
// WNOWAIT) rather than blocking in waitpid, so that it notices a deadline or
// an interrupt without threads or signal tricks, and drains the pipes so that
// a talkative child never blocks on a full one.
#include "tuner/process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "core/exit_code.h"

extern char** environ;

namespace memfront {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// How often the child is checked: short enough that a 1 s timeout is honoured
// closely, long enough to cost nothing next to a trial.
constexpr int kPollIntervalMs = 20;
// After the group is gone, how long the pipes may stay silent before whatever
// still holds them (a process that left the group) is given up on.
constexpr int kDrainWaitMs = 100;

std::string errno_text(int error) { return std::strerror(error); }

// An fd that closes itself; every fd here is opened O_CLOEXEC so that none of
// them leaks into the child (which dup2s the ones it needs onto 0, 1, 2).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read, write;
};

Pipe make_pipe(const std::string& program) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("cannot run " + program + ": pipe2: " + errno_text(errno));
  return {Fd(fds[0]), Fd(fds[1])};
}

bool is_executable_file(const fs::path& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? "SIG" + std::string(abbrev) : "signal " + std::to_string(sig);
}

// This process's environment with the request's variables set on top, as
// "NAME=value" strings for execve.
std::vector<std::string> child_environment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> entries;
  for (char** entry = environ; entry && *entry; ++entry) {
    const std::string text = *entry;
    if (!overrides.contains(text.substr(0, text.find('=')))) entries.push_back(text);
  }
  for (const auto& [name, value] : overrides) entries.push_back(name + "=" + value);
  return entries;
}

std::vector<char*> pointers_to(std::vector<std::string>& texts) {
  std::vector<char*> pointers;
  for (std::string& text : texts) pointers.push_back(text.data());
  pointers.push_back(nullptr);
  return pointers;
}

// What the child reports through the close-on-exec pipe when it cannot exec:
// which step failed and errno. A successful exec closes the pipe unwritten.
struct ChildFailure {
  int step = 0;  // 0: chdir, 1: execve
  int error = 0;
};

void set_default_action(int sig) {
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  ::sigaction(sig, &action, nullptr);
}

struct Started {
  pid_t pid = 0;
  Fd out, err;  // err: -1 when stderr goes to a file
};

Started start(const ProcessRequest& request, const fs::path& program) {
  const std::string name = request.argv[0];
  auto fail = [&](const std::string& what) -> Started { throw std::runtime_error("cannot run " + name + ": " + what); };

  const int dev_null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (dev_null_fd < 0) return fail("/dev/null: " + errno_text(errno));
  Fd dev_null(dev_null_fd);
  Fd stderr_file;
  if (!request.stderr_path.empty()) {
    const int fd = ::open(request.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return fail("cannot create " + request.stderr_path.string() + ": " + errno_text(errno));
    stderr_file = Fd(fd);
  }
  Pipe out = make_pipe(name);
  Pipe err = request.stderr_path.empty() ? make_pipe(name) : Pipe{};
  Pipe failure = make_pipe(name);
  const int stderr_fd = request.stderr_path.empty() ? err.write.get() : stderr_file.get();

  // Everything the child needs is prepared here: after fork it may only make
  // async-signal-safe calls.
  std::vector<std::string> args = request.argv;
  std::vector<char*> arg_pointers = pointers_to(args);
  std::vector<std::string> environment = child_environment(request.environment);
  std::vector<char*> environment_pointers = pointers_to(environment);
  const std::string program_path = program.string();
  const std::string cwd = request.cwd.string();

  const pid_t pid = ::fork();
  if (pid < 0) return fail("fork: " + errno_text(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    // A handler or mask of memfront's must not shape the child: signals it
    // ignores would stay ignored across exec, and a blocked SIGTERM would
    // always cost the grace period.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGTERM, SIGINT, SIGPIPE}) set_default_action(sig);
    ::dup2(dev_null.get(), STDIN_FILENO);
    ::dup2(out.write.get(), STDOUT_FILENO);
    ::dup2(stderr_fd, STDERR_FILENO);
    // fds that other parts of the process opened without O_CLOEXEC stay out
    // of the child too (best effort: needs Linux 5.11).
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ChildFailure failed;
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
      failed = {0, errno};
    } else {
      ::execve(program_path.c_str(), arg_pointers.data(), environment_pointers.data());
      failed = {1, errno};
    }
    [[maybe_unused]] ssize_t ignored = ::write(failure.write.get(), &failed, sizeof failed);
    ::_exit(code(ExitCode::cannot_run));
  }
  // Also here, so that the group exists whichever of parent and child runs
  // first (EACCES once the child has exec'd is harmless: it did it already).
  ::setpgid(pid, pid);
  failure.write.reset();
  out.write.reset();
  err.write.reset();
  ChildFailure failed;
  ssize_t got;
  while ((got = ::read(failure.read.get(), &failed, sizeof failed)) < 0 && errno == EINTR) {
  }
  if (got > 0) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return fail(failed.step == 0 ? "cannot enter " + cwd + ": " + errno_text(failed.error)
                                 : program_path + ": " + errno_text(failed.error));
  }
  Started started;
  started.pid = pid;
  started.out = std::move(out.read);
  started.err = std::move(err.read);
  return started;
}

// True once the child has ended. WNOWAIT leaves it a zombie: its pid, which is
// also the process group's id, cannot be reused until it is reaped, so the
// group can still be signalled safely afterwards.
bool has_ended(pid_t pid) {
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno != EINTR) throw std::runtime_error("waitid(" + std::to_string(pid) + "): " + errno_text(errno));
  }
  return info.si_pid == pid;
}

// Kills what is left of the group (processes that outlive the leader, or that
// ignore SIGTERM) and reaps the leader.
void reap(pid_t pid, ProcessEnd& end) {
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid(" + std::to_string(pid) + "): " + errno_text(errno));
  }
  if (WIFEXITED(status)) end.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) end.signal = WTERMSIG(status);
}

// The output pipes, read as they fill: stdout kept up to its limit, stderr's
// tail kept within its limit.
class Output {
 public:
  Output(Started& started, const ProcessRequest& request, ProcessEnd& end) : request_(request), end_(end) {
    if (started.out.get() >= 0) add(started.out.get(), &end_.out);
    if (started.err.get() >= 0) add(started.err.get(), &end_.err_tail);
  }

  bool open() const { return open_ > 0; }

  // Reads whatever arrives within wait_ms; false when nothing did.
  bool read(int wait_ms) {
    if (!open()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      return false;
    }
    const int ready = ::poll(fds_, static_cast<nfds_t>(count_), wait_ms);
    if (ready <= 0) return false;  // EINTR included: revents are not to be trusted then
    for (int i = 0; i < count_; ++i) {
      if (fds_[i].fd < 0 || fds_[i].revents == 0) continue;
      char chunk[4096];
      const ssize_t got = ::read(fds_[i].fd, chunk, sizeof chunk);
      if (got > 0) {
        keep(sinks_[i], chunk, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        fds_[i].fd = -1;  // poll skips negative fds; the Fd closes it
        --open_;
      }
    }
    return true;
  }

  // Everything still buffered, once the group is gone; a pipe held open by a
  // process that left the group is given up after a short silence.
  void drain() {
    while (open() && read(kDrainWaitMs)) {
    }
  }

 private:
  void add(int fd, std::string* sink) {
    fds_[count_] = {fd, POLLIN, 0};
    sinks_[count_] = sink;
    ++count_;
    ++open_;
  }

  void keep(std::string* sink, const char* data, size_t size) {
    if (sink == &end_.out) {
      const size_t room = request_.stdout_limit - std::min(request_.stdout_limit, sink->size());
      sink->append(data, std::min(room, size));
    } else {
      sink->append(data, size);
      // Trimmed in large steps, so that a flood of stderr costs linear time.
      if (sink->size() > 2 * request_.stderr_tail_limit) sink->erase(0, sink->size() - request_.stderr_tail_limit);
    }
  }

  const ProcessRequest& request_;
  ProcessEnd& end_;
  pollfd fds_[2] = {};
  std::string* sinks_[2] = {};
  int count_ = 0;
  int open_ = 0;
};

Clock::duration seconds(double value) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(value));
}

}  // namespace

ProcessEnd run_process(const ProcessRequest& request) {
  if (request.argv.empty() || request.argv[0].empty()) throw std::runtime_error("run_process: no program to run");
  const auto program = find_program(request.argv[0]);
  if (!program) {
    throw std::runtime_error("cannot run " + request.argv[0] + ": " +
                             (request.argv[0].find('/') != std::string::npos ? "not an executable file"
                                                                              : "not found on PATH"));
  }
  ProcessEnd end;
  const auto started_at = Clock::now();
  if (request.interrupt && request.interrupt->load()) {
    end.interrupted = true;  // interrupted before the start: nothing runs
    return end;
  }
  Started started = start(request, *program);
  const pid_t pid = started.pid;
  const auto deadline = request.timeout_s ? started_at + seconds(*request.timeout_s) : Clock::time_point::max();
  std::optional<Clock::time_point> kill_at;  // set once SIGTERM has been sent
  Output output(started, request, end);

  while (true) {
    output.read(kPollIntervalMs);
    if (has_ended(pid)) break;
    const auto now = Clock::now();
    if (kill_at) {
      if (now >= *kill_at) break;  // deaf to SIGTERM: reap sends SIGKILL
      continue;
    }
    if (request.interrupt && request.interrupt->load()) {
      end.interrupted = true;
    } else if (now >= deadline) {
      end.timed_out = true;
    } else {
      continue;
    }
    ::kill(-pid, SIGTERM);
    kill_at = now + seconds(request.term_grace_s);
  }
  reap(pid, end);
  output.drain();
  if (!request.stderr_path.empty()) {
    end.err_tail = file_tail(request.stderr_path, request.stderr_tail_limit);
  } else if (end.err_tail.size() > request.stderr_tail_limit) {
    end.err_tail.erase(0, end.err_tail.size() - request.stderr_tail_limit);
  }
  end.wall_s = std::chrono::duration<double>(Clock::now() - started_at).count();
  return end;
}

std::string file_tail(const fs::path& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff start = std::max<std::streamoff>(0, size - static_cast<std::streamoff>(limit));
  in.seekg(start);
  std::string text(static_cast<size_t>(size - start), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

std::string describe_exit(int exit_code, int signal) {
  if (signal != 0) return "killed by signal " + std::to_string(signal) + " (" + signal_name(signal) + ")";
  std::string text = "exited with code " + std::to_string(exit_code);
  // Only the codes memfront's own programs give are named: another program's
  // 3 is not a failed trial.
  if (const auto named = exit_code_named(exit_code); named && code(*named) < kSignalExitBase) {
    text += " (" + std::string(to_string(*named)) + ")";
  }
  return text;
}

std::string describe(const ProcessEnd& end) {
  const std::string how = describe_exit(end.exit_code, end.signal);
  if (end.interrupted) return "interrupted: " + how;
  if (end.timed_out) return "stopped at its deadline: " + how;
  return how;
}

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

}  // namespace memfront
