#include "gui/front_analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <thread>

#include "core/error.h"
#include "core/pareto.h"
#include "gui/trial_store.h"
#include "tuner/metrics.h"

namespace memfront {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A metric's value, NaN when the trial lacks it or the name is unknown.
double value_or_nan(const std::optional<MetricRef>& metric, const TrialRecord& record) {
  const std::optional<double> value = metric ? (*metric)(record) : std::nullopt;
  return value ? *value : kNaN;
}

// The colour group of a trial: its status, or the value of the knob that
// colour_by names (resolved once, by the caller).
QString group_of(const TrialRecord& record, const std::string& colour_by, const ConfigKnob* colour_knob) {
  if (colour_by == "status") return QString::fromStdString(std::string(to_string(record.status)));
  if (!colour_knob) return QStringLiteral("(none)");
  return QString::fromStdString(knob_text(colour_knob->read(record.config)));
}

}  // namespace

FrontAnalysis analyse(const TrialStore& store, const FrontSettings& settings) {
  const int count = store.trial_count();
  FrontAnalysis analysis;
  analysis.x.resize(count);
  analysis.y.resize(count);
  analysis.shown.resize(count);
  analysis.feasible.resize(count);
  analysis.colour_group.resize(count);

  // A constraint that does not parse, or names no metric or config path, is
  // reported and all of them are ignored, rather than silently applying only
  // some. Names are resolved here, once, not per trial.
  std::vector<RecordExpr> constraints;
  for (size_t i = 0; i < settings.constraints.size(); ++i) {
    const std::string where = "constraint " + std::to_string(i + 1);
    try {
      constraints.emplace_back(Expr::parse(settings.constraints[i], where), where, where);
    } catch (const InputError& error) {
      analysis.error = QString::fromStdString(error.what());
      constraints.clear();
      break;
    }
  }
  // The axes and objectives, resolved once; an unknown name reads as NaN and is reported.
  auto resolve = [&](std::string_view name, const char* what) {
    MetricResolution resolved = resolve_metric(name);
    if (!resolved.metric && analysis.error.isEmpty()) analysis.error = QString::fromStdString(what + resolved.error);
    return std::move(resolved.metric);
  };
  const std::optional<MetricRef> x_metric = resolve(settings.x, "x axis: "), y_metric = resolve(settings.y, "y axis: ");

  const std::vector<std::string> objectives =
      settings.objectives.empty() ? store.default_objectives() : settings.objectives;
  std::vector<std::pair<std::optional<MetricRef>, double>> metrics;  // metric, sign (-1 maximizes)
  for (const std::string& objective : objectives) {
    const bool maximize = objective.starts_with('-');
    metrics.emplace_back(resolve(std::string_view(objective).substr(maximize ? 1 : 0), "objective: "),
                         maximize ? -1.0 : 1.0);
  }

  // Each trial's values are independent of the others': compute them on every
  // core (at 100k trials this is most of the time of a constraint change).
  // (shown and feasible are std::vector<bool>, packed bits: threads write
  // these byte-per-trial copies instead, and they are copied over after.)
  std::vector<QString> labels(count);
  const ConfigKnob* colour_knob = find_knob(settings.colour_by);
  std::vector<double> values(static_cast<size_t>(count) * metrics.size());
  std::vector<char> shown(count, 0), feasible_trial(count, 0), on_front_candidate(count, 0);
  const auto measure = [&](int begin, int end) {
    for (int i = begin; i < end; ++i) {
      const TrialRecord& record = store.trial(i);
      analysis.x[i] = value_or_nan(x_metric, record);
      analysis.y[i] = value_or_nan(y_metric, record);
      shown[i] = settings.show_unsuccessful || record.status == TrialStatus::ok;
      bool feasible = true;
      for (const RecordExpr& constraint : constraints) {
        try {
          feasible = constraint.holds(record).value_or(false);  // false: the trial lacks a metric it needs
        } catch (const InputError&) {
          feasible = false;  // a type error (a string compared with a number): nothing meets it
        }
        if (!feasible) break;
      }
      feasible_trial[i] = feasible;
      labels[i] = group_of(record, settings.colour_by, colour_knob);
      if (!shown[i] || !feasible || metrics.empty()) continue;
      bool finite = true;
      double* point = values.data() + static_cast<size_t>(i) * metrics.size();
      for (size_t k = 0; k < metrics.size() && finite; ++k) {
        point[k] = metrics[k].second * value_or_nan(metrics[k].first, record);
        finite = std::isfinite(point[k]);
      }
      on_front_candidate[i] = finite;
    }
  };
  const int workers = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, count / 1024 + 1);
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(measure, count * w / workers, count * (w + 1) / workers);
  measure(0, count / workers);
  for (std::thread& thread : threads) thread.join();

  std::map<QString, int> group_index;  // sorted labels
  std::vector<ObjectivePoint> points;
  std::vector<int> point_trial;
  for (int i = 0; i < count; ++i) {
    analysis.shown[i] = shown[i];
    analysis.feasible[i] = feasible_trial[i];
    group_index.emplace(labels[i], 0);
    if (!on_front_candidate[i]) continue;
    const double* point = values.data() + static_cast<size_t>(i) * metrics.size();
    points.emplace_back(point, point + metrics.size());
    point_trial.push_back(i);
  }

  int next = 0;
  for (auto& [label, index] : group_index) {
    index = next++;
    analysis.groups.push_back(label);
  }
  for (int i = 0; i < count; ++i) analysis.colour_group[i] = group_index[labels[i]];

  for (size_t index : pareto_front(points)) analysis.front.push_back(point_trial[index]);
  // By x for drawing the front as a line; trials without an x go last.
  std::stable_sort(analysis.front.begin(), analysis.front.end(), [&](int a, int b) {
    const double xa = analysis.x[a];
    const double xb = analysis.x[b];
    if (std::isnan(xa) || std::isnan(xb)) return !std::isnan(xa) && std::isnan(xb);
    return xa < xb;
  });
  return analysis;
}

}  // namespace memfront
