#include "tuner/model_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>

#include "core/step_calls.h"
#include "tuner/cost_model.h"

namespace memfront {

namespace {

// Ranks from 1, ties at their average rank.
std::vector<double> ranks_of(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = (i + j) / 2.0 + 1;
    i = j + 1;
  }
  return ranks;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  const double mean_a = std::accumulate(a.begin(), a.end(), 0.0) / n;
  const double mean_b = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += (a[i] - mean_a) * (b[i] - mean_b);
    aa += (a[i] - mean_a) * (a[i] - mean_a);
    bb += (b[i] - mean_b) * (b[i] - mean_b);
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}

// How much a config recomputes: the FLOPs of its recompute phase (the
// blocks' forward run again). Every checkpoint spacing recomputes every
// block once, so only no checkpointing against some differs; the few
// conversions of checkpoints do not count as recomputation.
double recomputed_flops(const Config& config) {
  double flops = 0;
  for (const StepCall& c : step_calls(config)) {
    if (std::string_view(c.phase) == "recompute" && step_op_counts_flops(c.call.op)) flops += c.times * c.call.work();
  }
  return flops;
}

}  // namespace

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) return 0.0;
  return pearson(ranks_of(a), ranks_of(b));
}

ModelCheck check_cost_model(const ResultsFile& file, const std::optional<Calibration>& repredict) {
  ModelCheck check;
  // Groups of configurations that differ only in checkpoint.every.
  struct Member {
    const TrialRecord* record;
    double recompute;
  };
  std::map<std::string, std::vector<Member>> groups;
  std::vector<double> ratios, predicted, measured;
  for (const TrialRecord& r : file.trials) {
    if (r.status != TrialStatus::ok || !r.metrics || r.metrics->step_time_s.count == 0) continue;
    const std::optional<Prediction> prediction = repredict ? std::optional(predict(r.config, *repredict)) : r.prediction;
    if (!prediction || prediction->step_time_s <= 0) continue;
    ModelCheckRow row;
    row.id = r.id;
    row.predicted_s = prediction->step_time_s;
    row.measured_s = r.metrics->step_time_s.median;
    row.measured_spread_s = r.metrics->step_time_s.p90 - r.metrics->step_time_s.p10;
    row.contended = r.metrics->timing && r.metrics->timing->contended;
    check.contended += row.contended;
    check.rows.push_back(row);
    ratios.push_back(row.predicted_s / row.measured_s);
    predicted.push_back(row.predicted_s);
    measured.push_back(row.measured_s);
    Config without = r.config;
    without.checkpoint.every = 0;
    groups[to_json(without).dump()].push_back({&r, recomputed_flops(r.config)});
  }
  if (!ratios.empty()) {
    const Spread spread = spread_of(ratios);
    check.ratio_median = spread.median;
    check.ratio_p10 = spread.p10;
    check.ratio_p90 = spread.p90;
    const double mean = std::accumulate(ratios.begin(), ratios.end(), 0.0) / ratios.size();
    double variance = 0;
    for (double x : ratios) variance += (x - mean) * (x - mean);
    check.ratio_cv = std::sqrt(variance / ratios.size()) / mean;
  }
  check.spearman = spearman(predicted, measured);

  for (auto& [key, members] : groups) {
    if (members.size() < 2) continue;
    ++check.recompute_groups;
    for (const Member& fewer : members) {
      for (const Member& more : members) {
        if (more.recompute <= fewer.recompute) continue;
        const TrialMetrics& a = *fewer.record->metrics;
        const TrialMetrics& b = *more.record->metrics;
        const double tolerance = (a.step_time_s.p90 - a.step_time_s.p10) + (b.step_time_s.p90 - b.step_time_s.p10);
        if (b.compute_s < a.compute_s - tolerance) {
          check.recompute_violations.push_back({fewer.record->id, more.record->id, a.compute_s, b.compute_s});
        }
      }
    }
  }
  return check;
}

std::string format_model_check(const ModelCheck& check) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-14s %13s %13s %9s  %s\n", "trial", "predicted ms", "measured ms", "ratio", "");
  out += line;
  for (const ModelCheckRow& r : check.rows) {
    std::snprintf(line, sizeof line, "%-14s %13.3f %13.3f %9.3f  %s\n", r.id.c_str(), r.predicted_s * 1e3,
                  r.measured_s * 1e3, r.predicted_s / r.measured_s, r.contended ? "[contended]" : "");
    out += line;
  }
  std::snprintf(line, sizeof line,
                "%zu trials (%d contended): predicted/measured median %.3f (p10 %.3f, p90 %.3f), "
                "coefficient of variation %.1f%%, Spearman %.3f\n",
                check.rows.size(), check.contended, check.ratio_median, check.ratio_p10, check.ratio_p90,
                100 * check.ratio_cv, check.spearman);
  out += line;
  std::snprintf(line, sizeof line,
                "recomputation: %d groups differing only in checkpoint.every, %zu pairs where compute time falls "
                "as recomputation grows (beyond the step-time spreads)\n",
                check.recompute_groups, check.recompute_violations.size());
  out += line;
  for (const RecomputeViolation& v : check.recompute_violations) {
    std::snprintf(line, sizeof line, "  %s compute %.3f ms > %s compute %.3f ms\n", v.fewer_id.c_str(),
                  v.fewer_compute_s * 1e3, v.more_id.c_str(), v.more_compute_s * 1e3);
    out += line;
  }
  return out;
}

}  // namespace memfront
