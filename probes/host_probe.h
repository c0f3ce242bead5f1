#pragma once
// Host probe: what every trial measures on the CPU side, whatever the backend.
// - PhaseTimer listens to core's annotation ranges and adds up the time spent in
//   each phase (forward, backward, recompute, optimizer, comm, ...), per step.
//   Phases can nest (a ZeRO reduce-scatter, phase comm, runs inside backward);
//   time goes to the innermost open phase only, so the phases of a step add up
//   to the step and "backward" means backward computation without its comm.
// - rss_peak_bytes() reads the process's resident high-water mark, the
//   operating system's cross-check of the arena's peak.
// - CpuCounters say what a stretch of wall time cost this process's threads:
//   CPU time, the time they were ready to run but waited for a CPU (the
//   scheduler's run delay: another process had the core), and involuntary
//   context switches. Run delay is the direct sign of a contended measurement;
//   sleeping in a communication wait is not run delay.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace memfront {

class PhaseTimer {
 public:
  PhaseTimer();   // subscribes to annotate ranges
  ~PhaseTimer();  // unsubscribes
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

  // Seconds per phase since the last take(), and a fresh start.
  std::map<std::string, double> take();

 private:
  int handle_;
  std::vector<std::string> open_;  // open phases, innermost last
  int64_t since_ns_ = 0;           // when the innermost open phase last started counting
  std::map<std::string, int64_t> total_ns_;
};

// VmHWM of this process (bytes); 0 where /proc is not available.
uint64_t rss_peak_bytes();

struct CpuCounters {
  double cpu_s = 0;             // CPU time of every thread of the process
  double run_delay_s = 0;       // summed over the process's threads (/proc/self/task/*/schedstat)
  bool has_run_delay = false;   // false where the kernel keeps no schedstat
  int64_t involuntary_switches = 0;
};
// The process's counters now; differences of two readings cost a stretch of time.
CpuCounters read_cpu_counters();

// CPUs this process may run on (its affinity mask); 0 if it cannot be read.
int affinity_cpu_count();

// Binds every thread of this process to `count` CPUs of its affinity mask
// that no other memfront process has claimed, and keeps them claimed until
// this process ends: ranks of one trial, and trials run side by side (tests,
// two sweeps), get disjoint cores instead of all piling onto the first. A
// claim is an advisory lock on a file per CPU (in $MEMFRONT_CPU_LOCKS, else
// /tmp/memfront-cpu-locks), which the kernel drops when the process dies.
// Of the unclaimed CPUs it takes the least busy first (/proc/stat over
// 30 ms), so that a core another program keeps busy is left to it.
// False, and nothing bound, when fewer than `count` CPUs are free.
bool bind_to_free_cpus(int count);

// The 1-minute load average (/proc/loadavg); nullopt where it cannot be read.
std::optional<double> load_average();

}  // namespace memfront
