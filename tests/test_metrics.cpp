// Metric names over trial records, and how they read for a person.
#include <gtest/gtest.h>

#include "core/config.h"
#include "tuner/metrics.h"

using namespace memfront;

namespace {

TrialRecord measured_record() {
  TrialRecord r;
  Config c;
  c.checkpoint.every = 2;
  r.id = config_id(c);
  r.config = to_json(c);
  TrialMetrics m;
  m.peak_total_max = 3ull << 20;
  m.peak_max[static_cast<int>(MemCategory::activations)] = 1ull << 20;
  m.step_time_s.median = 0.025;
  m.step_time_s.count = 5;
  m.bytes_intra_node = 1000;
  m.bytes_inter_node = 24;
  m.tokens_per_s = 12345;
  m.final_loss = 3.5;
  m.loss_delta = 0.125;
  m.phase_s["backward"] = 0.011;
  m.comm_s = 0.002;
  r.metrics = m;
  r.prediction = {{"peak_bytes", {{"total", 3000000}}}, {"step_time_s", 0.02}};
  return r;
}

}  // namespace

TEST(Metrics, NamedMetricsReadTheRecord) {
  const TrialRecord r = measured_record();
  EXPECT_EQ(metric_value(r, "peak_mem"), double(3ull << 20));
  EXPECT_EQ(metric_value(r, "peak_activations"), double(1ull << 20));
  EXPECT_EQ(metric_value(r, "step_time"), 0.025);
  EXPECT_EQ(metric_value(r, "comm_bytes"), 1024.0);
  EXPECT_EQ(metric_value(r, "inter_node_bytes"), 24.0);
  EXPECT_EQ(metric_value(r, "tokens_per_s"), 12345.0);
  EXPECT_EQ(metric_value(r, "loss_delta"), 0.125);
  EXPECT_EQ(metric_value(r, "comm_time"), 0.002);
  EXPECT_EQ(metric_value(r, "predicted_peak_mem"), 3000000.0);
  EXPECT_EQ(metric_value(r, "predicted_step_time"), 0.02);
}

TEST(Metrics, DottedPathsReachAnyMetricAndTheConfig) {
  const TrialRecord r = measured_record();
  EXPECT_EQ(metric_value(r, "phase_s.backward"), 0.011);
  EXPECT_EQ(metric_value(r, "step_time_s.count"), 5.0);
  EXPECT_EQ(metric_value(r, "config.checkpoint.every"), 2.0);
  EXPECT_FALSE(metric_value(r, "phase_s.nothing"));
  EXPECT_FALSE(metric_value(r, "no_such_metric"));
}

TEST(Metrics, MissingValuesAreNotZero) {
  TrialRecord failed = measured_record();
  failed.metrics.reset();
  failed.status = TrialStatus::failed;
  EXPECT_FALSE(metric_value(failed, "peak_mem"));
  TrialRecord no_delta = measured_record();
  no_delta.metrics->loss_delta.reset();
  EXPECT_FALSE(metric_value(no_delta, "loss_delta"));
}

TEST(Metrics, LookupServesExpressionsOverRecords) {
  const TrialRecord r = measured_record();
  const NameLookup lookup = record_lookup(r);
  EXPECT_TRUE(Expr::parse("peak_mem <= 16MiB && checkpoint.every == 2", "t").test(lookup));
  EXPECT_TRUE(Expr::parse("status == \"ok\" && shard.strategy == \"ddp\"", "t").test(lookup));
  EXPECT_FALSE(Expr::parse("step_time < 20ms", "t").test(lookup));
}

TEST(Metrics, KnownNames) {
  EXPECT_TRUE(is_named_metric("peak_mem"));
  EXPECT_TRUE(is_named_metric("peak_recompute"));
  EXPECT_TRUE(is_named_metric("loss_delta"));
  EXPECT_FALSE(is_named_metric("peak_weights"));
  EXPECT_FALSE(is_named_metric("phase_s.backward"));
}

TEST(Metrics, FormatsWithTheUnitTheNameImplies) {
  EXPECT_EQ(format_metric("peak_mem", double(3ull << 20)), "3.0 MiB");
  EXPECT_EQ(format_metric("comm_bytes", 1536), "1.5 KiB");
  EXPECT_EQ(format_metric("step_time", 0.0253), "25.30 ms");
  EXPECT_EQ(format_metric("phase_s.backward", 1.5), "1.50 s");
  EXPECT_EQ(format_metric("tokens_per_s", 12345.6), "12346");
  EXPECT_EQ(format_metric("loss_delta", 0.0123456), "0.01235");
}
