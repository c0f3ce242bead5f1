#pragma once
// Host probe: what every trial measures on the CPU side, whatever the backend.
// - PhaseTimer listens to core's annotation ranges and adds up the time spent in
//   each phase (forward, backward, recompute, optimizer, comm, ...), per step.
//   Phases can nest (a ZeRO reduce-scatter, phase comm, runs inside backward);
//   time goes to the innermost open phase only, so the phases of a step add up
//   to the step and "backward" means backward computation without its comm.
// - rss_peak_bytes() reads the process's resident high-water mark, the
//   operating system's cross-check of the arena's peak.
#include <cstdint>
#include <map>
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

}  // namespace memfront
