#pragma once
// How well the cost model's step time matches measured ones, over the records
// of a results file: what `memfront calibrate --validate` prints. For every
// trial that ran (status ok, timed), the predicted ÷ measured step time; over
// the file, its median, spread and coefficient of variation (a constant factor
// is a calibration offset; its variation is the model's error), and the
// Spearman rank correlation of predicted and measured times (whether the
// model orders configurations as the machine does). And one physical check:
// within every group of configurations that differ only in
// checkpoint.every, measured compute time must not fall as recomputation
// (the FLOPs run again) grows, beyond the two trials' recorded step-time
// spreads.
#include <optional>
#include <string>
#include <vector>

#include "core/calibration.h"
#include "core/results.h"

namespace memfront {

struct ModelCheckRow {
  std::string id;
  double predicted_s = 0;
  double measured_s = 0;    // metrics.step_time_s.median
  double measured_spread_s = 0;  // p90 - p10 of the timed steps
  bool contended = false;   // metrics.timing said the machine disturbed it
};

struct RecomputeViolation {
  std::string fewer_id, more_id;        // less and more recomputation
  double fewer_compute_s, more_compute_s;
};

struct ModelCheck {
  std::vector<ModelCheckRow> rows;
  double ratio_median = 0, ratio_p10 = 0, ratio_p90 = 0;
  double ratio_cv = 0;  // standard deviation ÷ mean of predicted ÷ measured
  double spearman = 0;
  int contended = 0;
  int recompute_groups = 0;  // groups with more than one checkpoint.every
  std::vector<RecomputeViolation> recompute_violations;
};

// Spearman's rank correlation of two equally long samples, ties given their
// average rank; 0 when fewer than two values or one side is constant.
double spearman(const std::vector<double>& a, const std::vector<double>& b);

// With `repredict`, every trial's prediction is made again from that
// calibration (to try a new calibration on old measurements); otherwise each
// record's own. Records without a prediction are left out.
ModelCheck check_cost_model(const ResultsFile& file, const std::optional<Calibration>& repredict);

// One row per trial (id, predicted, measured, ratio), then the summary lines.
std::string format_model_check(const ModelCheck& check);

}  // namespace memfront
