#include "probes/host_probe.h"

#include <fstream>
#include <sstream>

#include "core/annotate.h"

namespace memfront {

PhaseTimer::PhaseTimer() {
  handle_ = annotate::subscribe([this](const annotate::RangeEvent& event) {
    if (!event.is_phase) return;
    std::string name(event.name);
    if (event.begin) {
      open_since_ns_[name] = event.time_ns;
    } else if (auto it = open_since_ns_.find(name); it != open_since_ns_.end()) {
      total_ns_[name] += event.time_ns - it->second;
      open_since_ns_.erase(it);
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
