#include "probes/host_probe.h"

#include <fstream>
#include <sstream>

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

}  // namespace memfront
