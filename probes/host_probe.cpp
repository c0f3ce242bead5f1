#include "probes/host_probe.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <locale>
#include <sstream>
#include <string>
#include <vector>

#include "core/annotate.h"

namespace memfront {

PhaseTimer::PhaseTimer() {
  handle_ = annotate::subscribe([this](const annotate::RangeEvent& event) {
    if (!event.is_phase) return;
    // The innermost open phase has counted until now; then the stack changes.
    if (!open_.empty()) total_ns_[open_.back()] += event.time_ns - since_ns_;
    since_ns_ = event.time_ns;
    if (event.begin) {
      open_.emplace_back(event.name);
    } else if (!open_.empty() && open_.back() == event.name) {
      open_.pop_back();
    }
  });
}

PhaseTimer::~PhaseTimer() { annotate::unsubscribe(handle_); }

std::map<std::string, double> PhaseTimer::take() {
  std::map<std::string, double> seconds;
  for (const auto& [name, ns] : total_ns_) seconds[name] = static_cast<double>(ns) * 1e-9;
  total_ns_.clear();
  return seconds;
}

uint64_t rss_peak_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      uint64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

CpuCounters read_cpu_counters() {
  CpuCounters counters;
  timespec cpu{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) == 0) counters.cpu_s = double(cpu.tv_sec) + double(cpu.tv_nsec) * 1e-9;
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) counters.involuntary_switches = usage.ru_nivcsw;
  // schedstat: "<ns on a CPU> <ns waiting for one> <time slices>", per thread.
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", error)) {
    std::ifstream schedstat(task.path() / "schedstat");
    uint64_t on_cpu_ns = 0, waiting_ns = 0;
    if (!(schedstat >> on_cpu_ns >> waiting_ns)) continue;
    counters.run_delay_s += double(waiting_ns) * 1e-9;
    counters.has_run_delay = true;
  }
  return counters;
}

int affinity_cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return CPU_COUNT(&set);
}

namespace {

std::filesystem::path cpu_lock_folder() {
  const char* folder = std::getenv("MEMFRONT_CPU_LOCKS");
  return folder && *folder ? std::filesystem::path(folder) : std::filesystem::path("/tmp/memfront-cpu-locks");
}

// The lock of one CPU, held (and its descriptor kept open) on success.
bool claim_cpu(const std::filesystem::path& folder, int cpu, std::vector<int>& held) {
  const std::string path = (folder / ("cpu" + std::to_string(cpu) + ".lock")).string();
  // Read-only is enough for flock, so a lock file another user made serves too.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return false;
  }
  held.push_back(fd);
  return true;
}

// Clock ticks each CPU has spent busy (/proc/stat's "cpuN" lines: all but
// idle and iowait), by CPU; empty where /proc/stat cannot be read.
std::vector<uint64_t> cpu_busy_ticks() {
  std::vector<uint64_t> busy;
  std::ifstream in("/proc/stat");
  in.imbue(std::locale::classic());
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("cpu", 0) != 0 || line.size() < 4 || line[3] < '0' || line[3] > '9') continue;
    std::istringstream fields(line.substr(3));
    size_t cpu = 0;
    uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    if (!(fields >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal)) continue;
    if (busy.size() <= cpu) busy.resize(cpu + 1, 0);
    busy[cpu] = user + nice + system + irq + softirq + steal;
  }
  return busy;
}

// The allowed CPUs, least busy first: how many clock ticks each spent on
// other work over 30 ms, three ticks at the usual 100 Hz (ties, and
// everything where /proc/stat is missing, in index order). A CPU that
// another program keeps busy is taken last.
// With no more CPUs than `count` there is nothing to choose, and the 30 ms
// of a trial's start-up are not spent.
std::vector<int> cpus_least_busy_first(const cpu_set_t& allowed, int count) {
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  }
  if (static_cast<int>(cpus.size()) <= count) return cpus;
  const std::vector<uint64_t> before = cpu_busy_ticks();
  if (before.empty()) return cpus;
  const timespec pause{0, 30'000'000};
  nanosleep(&pause, nullptr);
  const std::vector<uint64_t> after = cpu_busy_ticks();
  auto busy = [&](int cpu) {
    const size_t i = static_cast<size_t>(cpu);
    return i < before.size() && i < after.size() ? after[i] - before[i] : 0;
  };
  std::stable_sort(cpus.begin(), cpus.end(), [&](int a, int b) { return busy(a) < busy(b); });
  return cpus;
}

}  // namespace

bool bind_to_free_cpus(int count) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (count < 1 || sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return false;
  const std::filesystem::path folder = cpu_lock_folder();
  std::error_code error;
  if (std::filesystem::create_directories(folder, error)) {
    // Shared by every user of the machine, like /tmp itself.
    std::filesystem::permissions(folder, std::filesystem::perms::all | std::filesystem::perms::sticky_bit, error);
  }
  cpu_set_t chosen;
  CPU_ZERO(&chosen);
  std::vector<int> held;
  for (int cpu : cpus_least_busy_first(allowed, count)) {
    if (static_cast<int>(held.size()) == count) break;
    if (claim_cpu(folder, cpu, held)) CPU_SET(cpu, &chosen);
  }
  bool bound = static_cast<int>(held.size()) == count;
  if (bound) {
    // Threads started before the call (BLAS, MPI progress) are bound too.
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", error)) {
      const pid_t tid = static_cast<pid_t>(std::stol(task.path().filename().string()));
      bound = sched_setaffinity(tid, sizeof(chosen), &chosen) == 0 && bound;
    }
  }
  // Unbound, the claims are given back; bound, they are held for the process's
  // life (the descriptors stay open; the kernel releases them at exit).
  if (!bound) {
    for (int fd : held) ::close(fd);
  }
  return bound;
}

std::optional<double> load_average() {
  std::ifstream loadavg("/proc/loadavg");
  loadavg.imbue(std::locale::classic());
  double one_minute = 0;
  if (!(loadavg >> one_minute)) return std::nullopt;
  return one_minute;
}

}  // namespace memfront
