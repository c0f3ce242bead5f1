// run_process: fork + execve in a new session, supervised by polling, and
// watched by a watchdog process that outlives memfront if it must.
//
// The parent polls the child's pipes and the child itself (waitid with
// WNOWAIT) rather than blocking in waitpid, so that it notices a deadline or
// an interrupt without threads or signal tricks, and drains the pipes so that
// a talkative child never blocks on a full one.
//
// A session, not a process group, is what holds a trial together: Open MPI's
// mpirun starts each rank in a process group of its own, so kill(-pgid)
// misses them, but nothing they start leaves the session unless it calls
// setsid itself.
#include "tuner/process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
#include <vector>

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

// --- the processes of a session, read from /proc ---------------------------
//
// With system calls into buffers on the stack only: the watchdog runs this in
// a child of a multithreaded process, which may make async-signal-safe calls
// only (no allocation, no stdio).

struct ProcStat {
  char state = 0;  // 'Z' (zombie) and 'X' (dead) no longer run
  pid_t session = 0;
  unsigned long long start_ticks = 0;
};

// "/proc/<pid>/stat" into `path` (at least 32 bytes).
void proc_stat_path(pid_t pid, char* path) {
  char digits[16];
  int count = 0;
  for (unsigned value = static_cast<unsigned>(pid); count == 0 || value > 0; value /= 10) {
    digits[count++] = static_cast<char>('0' + value % 10);
  }
  const char prefix[] = "/proc/";
  int at = 0;
  for (const char* c = prefix; *c; ++c) path[at++] = *c;
  while (count > 0) path[at++] = digits[--count];
  for (const char* c = "/stat"; *c; ++c) path[at++] = *c;
  path[at] = '\0';
}

bool read_proc_stat(pid_t pid, ProcStat& stat) {
  char path[32];
  proc_stat_path(pid, path);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char text[1024];
  const ssize_t got = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (got <= 0) return false;
  text[got] = '\0';
  // "pid (comm) state ppid pgrp session ... starttime ...": the command name
  // may hold spaces and parentheses, so the fields are counted after its last ')'.
  const char* field = nullptr;
  for (const char* c = text; *c; ++c) {
    if (*c == ')') field = c;
  }
  if (!field || field[1] != ' ') return false;
  field += 2;
  stat.state = *field;
  // Fields after the name, from 0: 0 state, 3 session, 19 starttime.
  int index = 0;
  for (const char* c = field; *c && index <= 19; ++index) {
    unsigned long long value = 0;
    for (; *c >= '0' && *c <= '9'; ++c) value = value * 10 + static_cast<unsigned long long>(*c - '0');
    if (index == 3) stat.session = static_cast<pid_t>(value);
    if (index == 19) stat.start_ticks = value;
    while (*c && *c != ' ') ++c;
    while (*c == ' ') ++c;
  }
  return index > 19;
}

// Calls visit(pid) for every process in /proc.
template <class Visit>
void for_each_process(Visit visit) {
  const int fd = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  struct LinuxDirent64 {
    ino64_t d_ino;
    off64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[1];
  };
  alignas(8) char entries[4096];
  long got;
  while ((got = ::syscall(SYS_getdents64, fd, entries, sizeof entries)) > 0) {
    for (long offset = 0; offset < got;) {
      const auto* entry = reinterpret_cast<const LinuxDirent64*>(entries + offset);
      offset += entry->d_reclen;
      pid_t pid = 0;
      const char* c = entry->d_name;
      for (; *c >= '0' && *c <= '9'; ++c) pid = pid * 10 + (*c - '0');
      if (*c == '\0' && pid > 0) visit(pid);
    }
  }
  ::close(fd);
}

// Sends `sig` (0: none) to every running process of the session `leader`
// started, and returns how many there were. The kernel does not reuse a pid
// while a session of that id has members, so a leader's pid that now names a
// process started at another time means the session is gone.
int signal_session(const ProcessIdentity& leader, int sig) {
  ProcStat leader_now;
  if (read_proc_stat(leader.pid, leader_now) && leader_now.start_ticks != leader.start_ticks) return 0;
  int running = 0;
  for_each_process([&](pid_t pid) {
    ProcStat stat;
    if (!read_proc_stat(pid, stat) || stat.session != leader.pid || stat.start_ticks < leader.start_ticks) return;
    if (stat.state == 'Z' || stat.state == 'X') return;
    if (sig != 0) ::kill(pid, sig);
    ++running;
  });
  return running;
}

// --- the watchdog ------------------------------------------------------------

// How often a session being ended is checked for what is left of it.
constexpr int kSessionPollMs = 50;
// The watchdog's grace between SIGTERM and SIGKILL, at most: with memfront
// gone nobody waits for a record, and mpirun, busy with its own cleanup on a
// loaded machine, took more than 2 s to go.
constexpr double kWatchdogGraceSeconds = 1;

// Starts the watchdog of the session `leader` started: a forked child of
// memfront that never execs. It reads its end of a pipe that only memfront
// can write, and when that pipe closes (memfront ended it, or died, however)
// it ends the session. It is in a session of its own and ignores the signals
// a terminal or a `kill` by name send, so that what kills memfront does not
// kill it too. Returns its pid; `lifeline` gets memfront's end of the pipe.
pid_t start_watchdog(const std::string& program, const ProcessIdentity& leader, double grace_s, Fd& lifeline) {
  Pipe pipe = make_pipe(program);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("cannot run " + program + ": fork (watchdog): " + errno_text(errno));
  if (pid == 0) {
    ::setsid();
    for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU}) {
      struct sigaction action {};
      action.sa_handler = SIG_IGN;
      sigemptyset(&action.sa_mask);
      ::sigaction(sig, &action, nullptr);
    }
    // Nothing else of memfront's is held open: not its stdout (a reader
    // waiting for its end would wait for the watchdog), nor another
    // watchdog's lifeline.
    const int keep = pipe.read.get();
    if (keep > 0) ::close_range(0, static_cast<unsigned>(keep - 1), 0);
    ::close_range(static_cast<unsigned>(keep + 1), ~0U, 0);
    char byte;
    ssize_t got;
    while ((got = ::read(keep, &byte, 1)) != 0 && (got > 0 || errno == EINTR)) {
    }
    end_session(leader, grace_s);
    ::_exit(0);
  }
  lifeline = std::move(pipe.write);
  return pid;
}

struct Started {
  pid_t pid = 0;
  ProcessIdentity identity;
  Fd out, err;  // err: -1 when stderr goes to a file
  pid_t watchdog = 0;
  Fd lifeline;  // the watchdog's pipe: closing it tells the watchdog to end the session
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

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return fail("fork: " + errno_text(errno));
  if (pid == 0) {
    ::setsid();
    // Until the watchdog runs, the kernel stands in for it: the child gets
    // SIGTERM when the thread that started it ends (memfront died). Checked
    // after setting it, in case memfront died before.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(code(ExitCode::cannot_run));
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
  // The pipe closed unwritten: the child has exec'd, in its own session.
  Started started;
  started.pid = pid;
  started.identity = identify_process(pid).value_or(ProcessIdentity{pid, 0});
  started.out = std::move(out.read);
  started.err = std::move(err.read);
  try {
    started.watchdog = start_watchdog(name, started.identity, std::min(request.term_grace_s, kWatchdogGraceSeconds),
                                      started.lifeline);
  } catch (...) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw;
  }
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

void wait_for(pid_t pid, int& status) {
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid(" + std::to_string(pid) + "): " + errno_text(errno));
  }
}

// Kills what is left of the session (processes that outlive the leader, or
// that ignore SIGTERM), lets the watchdog go and reaps it, then the leader:
// its zombie keeps the session's id from being reused until the watchdog has
// looked.
void reap(Started& started, ProcessEnd& end) {
  signal_session(started.identity, SIGKILL);
  started.lifeline.reset();
  int status = 0;
  wait_for(started.watchdog, status);
  wait_for(started.pid, status);
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
  const std::optional<unsigned long long> oom_kills_before = oom_kill_count();
  const auto started_at = Clock::now();
  if (request.interrupt && request.interrupt->load()) {
    end.interrupted = true;  // interrupted before the start: nothing runs
    return end;
  }
  Started started = start(request, *program);
  const pid_t pid = started.pid;
  if (request.on_start) {
    try {
      request.on_start(started.identity);
    } catch (...) {
      reap(started, end);
      throw;
    }
  }
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
  reap(started, end);
  if (const auto oom_kills_after = oom_kill_count(); oom_kills_before && oom_kills_after) {
    end.oom_kills = *oom_kills_after - std::min(*oom_kills_before, *oom_kills_after);
  }
  output.drain();
  if (!request.stderr_path.empty()) {
    end.err_tail = file_tail(request.stderr_path, request.stderr_tail_limit);
  } else if (end.err_tail.size() > request.stderr_tail_limit) {
    end.err_tail.erase(0, end.err_tail.size() - request.stderr_tail_limit);
  }
  end.wall_s = std::chrono::duration<double>(Clock::now() - started_at).count();
  return end;
}

namespace {

// The number after "oom_kill " in a file of "name value" lines.
std::optional<unsigned long long> oom_kill_in(const fs::path& path) {
  std::ifstream in(path);
  std::string name;
  unsigned long long value = 0;
  while (in >> name >> value) {
    if (name == "oom_kill") return value;
  }
  return std::nullopt;
}

}  // namespace

std::optional<unsigned long long> oom_kill_count() {
  std::ifstream cgroups("/proc/self/cgroup");
  std::vector<fs::path> counters;
  // "0::/path" (v2) or "4:memory:/path" (v1); the container may show its own
  // cgroup as the root of the mount, so the mount's root is tried too.
  for (std::string line; std::getline(cgroups, line);) {
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (controllers.empty()) {
      counters.push_back("/sys/fs/cgroup" + path + "/memory.events");
      counters.push_back("/sys/fs/cgroup/memory.events");
    } else if (controllers == "memory") {
      counters.push_back("/sys/fs/cgroup/memory" + path + "/memory.oom_control");
      counters.push_back("/sys/fs/cgroup/memory/memory.oom_control");
    }
  }
  counters.push_back("/proc/vmstat");
  for (const fs::path& counter : counters) {
    if (const auto count = oom_kill_in(counter)) return count;
  }
  return std::nullopt;
}

std::optional<ProcessIdentity> identify_process(int pid) {
  ProcStat stat;
  if (pid <= 0 || !read_proc_stat(pid, stat)) return std::nullopt;
  return ProcessIdentity{pid, stat.start_ticks};
}

int end_session(const ProcessIdentity& leader, double grace_s) {
  const int running = signal_session(leader, SIGTERM);
  if (running == 0) return 0;  // the common end: memfront has reaped it all
  for (double waited_s = 0; waited_s < grace_s && signal_session(leader, 0) > 0; waited_s += kSessionPollMs / 1e3) {
    ::poll(nullptr, 0, kSessionPollMs);
  }
  signal_session(leader, SIGKILL);
  return running;
}

std::string file_tail(const fs::path& path, size_t limit) {
  // Non-blocking and regular files only: a FIFO put in a file's place must
  // not hang memfront, nor a device be read.
  const int opened = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (opened < 0) return {};
  const Fd fd(opened);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) return {};
  const off_t start = std::max<off_t>(0, info.st_size - static_cast<off_t>(limit));
  std::string text(static_cast<size_t>(info.st_size - start), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t count = ::pread(fd.get(), text.data() + got, text.size() - got, start + static_cast<off_t>(got));
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) break;
    got += static_cast<size_t>(count);
  }
  text.resize(got);
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
