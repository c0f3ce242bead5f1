#pragma once
// FrontAnalysis: what the front view and the parallel coordinates draw,
// computed from the store without any widget: each trial's value on the
// chosen axes, whether it is shown (status toggle), whether it meets the
// outcome constraints set in the GUI, the Pareto front of the objectives among
// the shown feasible trials, and a colour group per trial (by a knob or by
// status). Recomputing after a constraint change must take well under 200 ms
// for 100k trials.
#include <optional>
#include <string>
#include <vector>

#include <QString>

#include "tuner/expr.h"

namespace memfront {

class TrialStore;

struct FrontSettings {
  std::string x = "peak_mem", y = "step_time";  // axis metrics
  std::vector<std::string> objectives;           // the front's objectives (minimized; "-name" maximizes)
  std::vector<std::string> constraints;          // expressions over metrics, e.g. "peak_mem <= 40GiB"
  std::string colour_by = "status";              // "status" or a config path, e.g. "shard.strategy"
  bool show_unsuccessful = true;                 // failed, timeout, oom, pruned, invalid
};

struct FrontAnalysis {
  std::vector<double> x, y;           // per trial; NaN when the trial lacks the metric
  std::vector<bool> shown;            // drawn at all
  std::vector<bool> feasible;         // meets every constraint (false when it lacks a metric)
  std::vector<int> front;             // indices of the Pareto front, sorted by x
  std::vector<int> colour_group;      // per trial, an index into groups
  std::vector<QString> groups;        // the colour groups' labels
  QString error;                      // a constraint that does not parse, one line; empty when fine
};

// Computes everything for the store's current trials.
FrontAnalysis analyse(const TrialStore& store, const FrontSettings& settings);

}  // namespace memfront
