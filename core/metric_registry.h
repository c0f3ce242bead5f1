#pragma once
// The metric registry: the one list of what can be said about a trial record
// by name. Study objectives and outcome constraints, --where filters, memfront
// pareto/export/status and the viewer (axes, labels, tooltips, compare dialog,
// detail pane, table) all read it; `memfront metrics` prints it and
// results/SCHEMA.md shows the same table (a test holds them together).
//
// A name is one of:
//   a named metric          peak_mem, step_time, tokens_per_s, ... (metric_registry())
//   predicted_<metric>      the cost model's figure for a metric it predicts
//   a record path           a dotted path into the record's metrics object as the
//                           results file writes it: phase_s.backward, step_time_s.p90,
//                           breakdown_s.comm (record_paths()); the "metrics." prefix
//                           that pandas shows in a column name is accepted too
//   config.<path>           a number of the config: config.checkpoint.every, any
//                           knob of core/config.h's knob_table() (flags read as 1
//                           and 0; names and lists read as none)
//
// Resolve a name once (resolve_metric), then read it from any number of records
// without exceptions: a known name a record lacks (loss_delta of a failed
// trial, any metric of a pruned one) reads as nullopt. An unknown name is an
// error that names the closest known ones.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/results.h"

namespace memfront {

enum class MetricUnit { bytes, seconds, tokens_per_s, gflop_per_s, flop, none };
// "bytes", "s", "tokens/s", "GFLOP/s", "FLOP", "" (none).
std::string_view unit_symbol(MetricUnit unit);

// Which way a metric is better when nothing else says (export --pick best:<metric>).
enum class MetricDirection { minimize, maximize };
std::string_view to_string(MetricDirection direction);  // "min", "max"

struct MetricInfo {
  std::string name;            // peak_mem
  MetricUnit unit = MetricUnit::none;
  MetricDirection direction = MetricDirection::minimize;
  std::string record_path;     // where the record holds it: metrics.peak_bytes.total
  std::string predicted_path;  // the cost model's counterpart in the record; empty when it predicts none
  std::string description;     // one line
  // The measured value; nullopt when the metrics lack it.
  std::function<std::optional<double>(const TrialMetrics&)> measured;
  // The cost model's value from the record's prediction; empty when predicted_path is.
  std::function<std::optional<double>(const Prediction&)> predicted;
  bool summary = false;  // among the few figures that sum a trial up (the viewer's compare dialog)
};

// Every named metric, in the order `memfront metrics` lists them.
const std::vector<MetricInfo>& metric_registry();
// The named metric, or null (dotted paths and predicted_ names are not named metrics).
const MetricInfo* find_metric(std::string_view name);

// A family of dotted paths into the metrics object: "phase_s" with any key,
// "step_time_s" with the keys median, p10, ..., or a single field ("gflops").
struct RecordPath {
  std::string parent;              // phase_s; the whole path when it has no keys
  std::vector<std::string> keys;   // the keys under parent; empty with any_key or for a single field
  bool any_key = false;            // phase_s: the phases a trial ran
  MetricUnit unit = MetricUnit::none;
  std::string description;
  std::function<std::optional<double>(const TrialMetrics&, const std::string& key)> read;
  std::string pattern() const;     // "phase_s.<phase>", "step_time_s.{median,p10,...}", "flops_per_step"
};
const std::vector<RecordPath>& record_paths();

// A name resolved against the registry: reads its number from any record.
struct MetricRef {
  std::string name;  // as resolved: the "metrics." prefix removed
  MetricUnit unit = MetricUnit::none;
  const MetricInfo* info = nullptr;  // the named metric (or its prediction's); null for paths
  std::function<std::optional<double>(const TrialRecord&)> read;

  std::optional<double> operator()(const TrialRecord& record) const { return read(record); }
};

// The metric a name resolves to, or the message for an unknown one:
// "unknown metric 'pek_mem'; did you mean 'peak_mem'?".
struct MetricResolution {
  std::optional<MetricRef> metric;
  std::string error;  // set when metric is not
};
MetricResolution resolve_metric(std::string_view name);
// The same; an unknown name throws InputError "<where>: <error>".
MetricRef resolve_metric_or_throw(std::string_view name, std::string_view where);

// Every name resolve_metric accepts, dotted path families as their keys
// (phase_s.<phase> as written), for suggestions.
std::vector<std::string> known_metric_names();
// "unknown <what> 'name'; did you mean 'a' or 'b'?" with the closest of `known`
// (edit distance), or "unknown <what> 'name' (memfront metrics lists them)".
std::string unknown_name_message(std::string_view what, std::string_view name, const std::vector<std::string>& known);

// "1.50 GiB", "12.30 ms", "12346": a value for a person, in the unit's own
// scale; no unit suffix beyond bytes and seconds.
std::string format_metric_value(MetricUnit unit, double value);

// The registry as a Markdown section (named metrics, then record paths): what
// `memfront metrics --markdown` prints and results/SCHEMA.md holds.
std::string metrics_markdown();

}  // namespace memfront
