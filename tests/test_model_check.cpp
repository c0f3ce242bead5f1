// memfront calibrate --validate: the figures it holds the cost model to.
#include <gtest/gtest.h>

#include <cmath>

#include "tuner/model_check.h"

using namespace memfront;

namespace {

TrialRecord timed(int every, int layers, double predicted_s, double measured_s, double compute_s) {
  TrialRecord r;
  r.config.checkpoint.every = every;
  r.config.model.layers = layers;
  r.id = config_id(r.config);
  TrialMetrics& m = r.metrics.emplace();
  m.step_time_s = {measured_s, measured_s * 0.99, measured_s * 1.01, measured_s * 0.98, measured_s * 1.02, 8};
  m.compute_s = compute_s;
  Prediction& p = r.prediction.emplace();
  p.step_time_s = predicted_s;
  return r;
}

}  // namespace

TEST(ModelCheck, SpearmanRanksWithTiesAtTheirAverage) {
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3}, {5, 5, 5}), 0.0) << "one side constant";
  EXPECT_DOUBLE_EQ(spearman({1}, {1}), 0.0) << "too few";
  // Ties: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4), each centred on 2.5:
  // covariance 1.5*1.5 + 0 + 0 + 1.5*1.5 = 4.5, variances 4.5 and 5.
  EXPECT_NEAR(spearman({1, 2, 2, 3}, {1, 2, 3, 4}), 4.5 / std::sqrt(4.5 * 5.0), 1e-12);
}

TEST(ModelCheck, RatiosTheirSpreadAndRecomputationThatGetsFaster) {
  ResultsFile file;
  // A model 2x low everywhere: a constant ratio, no variation, perfect order.
  file.trials.push_back(timed(0, 4, 0.010, 0.020, 0.018));
  file.trials.push_back(timed(2, 4, 0.012, 0.024, 0.022));
  file.trials.push_back(timed(1, 4, 0.013, 0.026, 0.024));
  TrialRecord failed = timed(0, 8, 0.5, 0.1, 0.1);
  failed.status = TrialStatus::failed;
  file.trials.push_back(failed);  // left out
  ModelCheck check = check_cost_model(file, std::nullopt);
  ASSERT_EQ(check.rows.size(), 3u);
  EXPECT_NEAR(check.ratio_median, 0.5, 1e-12);
  EXPECT_NEAR(check.ratio_cv, 0.0, 1e-12);
  EXPECT_NEAR(check.spearman, 1.0, 1e-12);
  EXPECT_EQ(check.recompute_groups, 1);
  EXPECT_TRUE(check.recompute_violations.empty());

  // Checkpointing that measures faster than no checkpointing, beyond the spreads.
  file.trials.push_back(timed(0, 6, 0.010, 0.020, 0.018));
  file.trials.push_back(timed(2, 6, 0.012, 0.012, 0.010));
  check = check_cost_model(file, std::nullopt);
  EXPECT_EQ(check.recompute_groups, 2);
  ASSERT_EQ(check.recompute_violations.size(), 1u);
  EXPECT_EQ(check.recompute_violations[0].more_id, file.trials.back().id);
  EXPECT_GT(check.ratio_cv, 0.1);
  const std::string text = format_model_check(check);
  EXPECT_NE(text.find("5 trials (0 contended)"), std::string::npos) << text;
  EXPECT_NE(text.find("1 pairs where compute time falls"), std::string::npos) << text;
}
