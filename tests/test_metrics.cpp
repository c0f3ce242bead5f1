// Metric names over trial records, and how they read for a person.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/config.h"
#include "core/error.h"
#include "core/metric_registry.h"
#include "tuner/metrics.h"
#include "tuner/sweep.h"

using namespace memfront;

namespace {

TrialRecord measured_record() {
  TrialRecord r;
  Config c;
  c.checkpoint.every = 2;
  r.id = config_id(c);
  r.config = c;
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
  Prediction p;
  p.peak_total = 3000000;
  p.step_time_s = 0.02;
  r.prediction = p;
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
}

TEST(Metrics, PandasColumnNamesReadTheSamePaths) {
  // Bug: `--where 'metrics.phase_s.backward<1'`, the column name pandas shows, matched nothing.
  const TrialRecord r = measured_record();
  EXPECT_EQ(metric_value(r, "metrics.phase_s.backward"), 0.011);
  EXPECT_EQ(metric_value(r, "metrics.step_time_s.count"), 5.0);
  EXPECT_EQ(metric_value(r, "metrics.peak_bytes.activations"), double(1ull << 20));
  EXPECT_EQ(metric_value(r, "breakdown_s.comm"), 0.002);
  EXPECT_EQ(metric_value(r, "comm.bytes_inter_node"), 24.0);
  EXPECT_TRUE(*RecordExpr(Expr::parse("metrics.phase_s.backward < 1", "--where"), "--where", "--where").holds(r));
}

TEST(Metrics, UnknownNamesAreErrorsThatNameTheClosest) {
  const TrialRecord r = measured_record();
  try {
    metric_value(r, "pek_mem");
    FAIL() << "pek_mem resolved";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "unknown metric 'pek_mem'; did you mean 'peak_mem'?");
  }
  EXPECT_THROW(metric_value(r, "no_such_metric"), InputError);
  EXPECT_THROW(metric_value(r, "step_time_s.p95"), InputError);    // a path the record never has
  EXPECT_THROW(metric_value(r, "config.checkpoint.evry"), InputError);
  EXPECT_EQ(resolve_metric("setp_time").error, "unknown metric 'setp_time'; did you mean 'step_time'?");
  EXPECT_EQ(resolve_metric("xyzzy_quux_frobnicate").error,
            "unknown metric 'xyzzy_quux_frobnicate' (memfront metrics lists them)");
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

TEST(Metrics, RecordExpressionsServeConstraintsOverRecords) {
  const TrialRecord r = measured_record();
  auto holds = [&](const char* text) { return RecordExpr(Expr::parse(text, "t"), "t", "t").holds(r); };
  EXPECT_EQ(holds("peak_mem <= 16MiB && checkpoint.every == 2"), true);
  EXPECT_EQ(holds("status == \"ok\" && shard.strategy == \"ddp\""), true);
  EXPECT_EQ(holds("config.shard.strategy == \"ddp\""), true);
  EXPECT_EQ(holds("step_time < 20ms"), false);
}

TEST(Metrics, ConfigNamesReadTheTypedConfigThroughTheKnobTable) {
  TrialRecord r = measured_record();
  r.config.quant.error_feedback = false;
  EXPECT_EQ(metric_value(r, "config.quant.error_feedback"), 0.0);  // flags as 1 and 0
  EXPECT_EQ(metric_value(r, "config.topk.grad"), 1.0);
  EXPECT_FALSE(metric_value(r, "config.shard.strategy"));  // a name is no number
  EXPECT_EQ(resolve_metric("config.shard.strategi").error,
            "unknown metric 'config.shard.strategi'; did you mean 'config.shard.strategy'?");
  auto holds = [&](const char* text) { return RecordExpr(Expr::parse(text, "t"), "t", "t").holds(r); };
  EXPECT_EQ(holds("quant.error_feedback == false && world == 1 && train.eps < 0.001"), true);
  r.config.placement.order = PlacementOrder::explicit_list;
  r.config.placement.node_of_rank = {0};
  EXPECT_EQ(holds("placement.order == \"block\""), std::nullopt);  // a list has no value an expression compares
}

TEST(Metrics, RecordExpressionsRejectUnknownNamesWhenMade) {
  try {
    RecordExpr(Expr::parse("pek_mem <= 10MiB", "--where"), "--where", "--where");
    FAIL() << "pek_mem resolved";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "--where: unknown metric 'pek_mem'; did you mean 'peak_mem'?");
  }
  EXPECT_THROW(RecordExpr(Expr::parse("shard.stratgy == \"ddp\"", "t"), "t", "t"), InputError);
}

TEST(Metrics, AMissingValueIsNoValueNotAnError) {
  // A known metric the record lacks (loss_delta of a failed trial) makes the
  // expression not hold, without an exception on the viewer's hot path.
  TrialRecord failed = measured_record();
  failed.metrics.reset();
  failed.status = TrialStatus::failed;
  const RecordExpr filter(Expr::parse("loss_delta <= 0.05 || status == \"failed\"", "t"), "t", "t");
  EXPECT_EQ(filter.holds(failed), std::nullopt);
  EXPECT_EQ(filter.holds(measured_record()), false);
  EXPECT_FALSE(passes_filters(failed, {filter}));
}

TEST(Metrics, FiltersNoLongerSwallowErrors) {
  // Bug: passes_filters caught every error as "the record lacks a metric", so
  // an expression that cannot be evaluated matched nothing, silently.
  const RecordExpr filter(Expr::parse("shard.strategy < 3", "--where"), "--where", "--where");
  EXPECT_THROW(passes_filters(measured_record(), {filter}), InputError);
}

TEST(Metrics, KnownNames) {
  EXPECT_TRUE(find_metric("peak_mem"));
  EXPECT_TRUE(find_metric("peak_recompute"));
  EXPECT_TRUE(find_metric("loss_delta"));
  EXPECT_FALSE(find_metric("peak_weights"));
  EXPECT_FALSE(find_metric("phase_s.backward"));
  EXPECT_TRUE(resolve_metric("phase_s.backward").metric);
  EXPECT_TRUE(resolve_metric("predicted_peak_mem").metric);
  EXPECT_FALSE(resolve_metric("predicted_loss_delta").metric);  // the cost model does not predict loss
}

TEST(Metrics, UnitsComeFromTheRegistryNotTheNameSuffix) {
  // Bug: any name ending in _s was labelled seconds, so tokens_per_s showed "[s]".
  EXPECT_EQ(resolve_metric("tokens_per_s").metric->unit, MetricUnit::tokens_per_s);
  EXPECT_EQ(unit_symbol(resolve_metric("tokens_per_s").metric->unit), "tokens/s");
  EXPECT_EQ(unit_symbol(resolve_metric("gflops").metric->unit), "GFLOP/s");
  EXPECT_EQ(unit_symbol(resolve_metric("phase_s.backward").metric->unit), "s");
  EXPECT_EQ(unit_symbol(resolve_metric("step_time_s.count").metric->unit), "");
  EXPECT_EQ(unit_symbol(resolve_metric("predicted_peak_mem").metric->unit), "bytes");
  EXPECT_EQ(find_metric("tokens_per_s")->direction, MetricDirection::maximize);
  EXPECT_EQ(find_metric("peak_mem")->direction, MetricDirection::minimize);
}

TEST(Metrics, SchemaShowsTheRegistryTable) {
  // results/SCHEMA.md holds what `memfront metrics` prints, between two markers.
  std::ifstream in(std::string(MEMFRONT_SOURCE_DIR) + "/results/SCHEMA.md");
  ASSERT_TRUE(in) << "results/SCHEMA.md";
  std::stringstream text;
  text << in.rdbuf();
  const std::string schema = text.str();
  const std::string begin = "<!-- metrics: generated by `memfront metrics`; test_metrics checks it -->\n\n";
  const std::string end = "\n<!-- end of metrics -->";
  const size_t from = schema.find(begin);
  ASSERT_NE(from, std::string::npos) << "no metrics section in results/SCHEMA.md";
  const size_t to = schema.find(end, from);
  ASSERT_NE(to, std::string::npos);
  EXPECT_EQ(schema.substr(from + begin.size(), to - from - begin.size()), metrics_markdown())
      << "regenerate the section with `memfront metrics`";
}

TEST(Metrics, FormatsWithTheUnitTheNameImplies) {
  EXPECT_EQ(format_metric("peak_mem", double(3ull << 20)), "3.0 MiB");
  EXPECT_EQ(format_metric("comm_bytes", 1536), "1.5 KiB");
  EXPECT_EQ(format_metric("step_time", 0.0253), "25.30 ms");
  EXPECT_EQ(format_metric("phase_s.backward", 1.5), "1.50 s");
  EXPECT_EQ(format_metric("tokens_per_s", 12345.6), "12346");
  EXPECT_EQ(format_metric("metrics.phase_s.backward", 0.5), "500.00 ms");
  EXPECT_EQ(format_metric("loss_delta", 0.0123456), "0.01235");
}
