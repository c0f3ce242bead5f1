#pragma once
// Metric names: what objectives, outcome constraints and --where filters can
// say about a trial record.
//
//   peak_mem            max over ranks of the arena's total peak, bytes
//   peak_<category>     max over ranks of one category's peak (peak_params,
//                       peak_grads, peak_optimizer, peak_activations,
//                       peak_recompute, peak_comm, peak_workspace), bytes
//   step_time           median seconds per step
//   comm_bytes          bytes all ranks send per step
//   inter_node_bytes    the inter-node part of comm_bytes
//   intra_node_bytes    the intra-node part
//   tokens_per_s, gflops, final_loss, loss_delta
//   comm_time, compute_time, exposed_comm_time   breakdown seconds per step
//   predicted_peak_mem, predicted_step_time      the cost model's figures
//   any dotted path into the record's metrics object (phase_s.backward,
//   step_time_s.p90, ...), or into its config (config.checkpoint.every, ...)
#include <optional>
#include <string>
#include <string_view>

#include "core/results.h"
#include "tuner/expr.h"

namespace memfront {

// nullopt when the record has no such value (no metrics, unknown name, null).
std::optional<double> metric_value(const TrialRecord& record, std::string_view name);

// The lookup an Expr over a record uses: metric names, plus config knob paths
// (without the "config." prefix too, as strings or numbers) and "status".
NameLookup record_lookup(const TrialRecord& record);

// Whether a metric name is known by name (not a dotted path), for validating
// study objectives early.
bool is_named_metric(std::string_view name);

// "1.50 GiB", "12.3 ms", "4.2 MB", "0.0123": a metric value for a person,
// with the unit its name implies.
std::string format_metric(std::string_view name, double value);

}  // namespace memfront
