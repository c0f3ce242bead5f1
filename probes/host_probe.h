#pragma once
// Host probe: what every trial measures on the CPU side, whatever the backend.
// - PhaseTimer listens to core's annotation ranges and adds up the time spent in
//   each phase (forward, backward, recompute, optimizer, ...), per step.
// - rss_peak_bytes() reads the process's resident high-water mark, the
//   operating system's cross-check of the arena's peak.
#include <cstdint>
#include <map>
#include <string>

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
  std::map<std::string, int64_t> open_since_ns_;  // phase -> start of its open range
  std::map<std::string, int64_t> total_ns_;
};

// VmHWM of this process (bytes); 0 where /proc is not available.
uint64_t rss_peak_bytes();

}  // namespace memfront
