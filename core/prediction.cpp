#include "core/prediction.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "core/strict_json.h"

namespace memfront {

using nlohmann::json;

json to_json(const Prediction& p) {
  json peak = json::object();
  for (MemCategory category : kAllMemCategories) {
    peak[std::string(to_string(category))] = p.peak[static_cast<int>(category)];
  }
  peak["total"] = p.peak_total;
  return {{"peak_bytes", peak},
          {"comm", {{"bytes_intra_node", p.bytes_intra_node}, {"bytes_inter_node", p.bytes_inter_node}}},
          {"flops_per_step", p.flops_per_step},
          {"compute_s", p.compute_s},
          {"comm_s", p.comm_s},
          {"step_time_s", p.step_time_s},
          {"phase_s", p.phase_s},
          {"calibrated", p.calibrated}};
}

Prediction prediction_from_json(const json& j, std::string_view where, std::string pointer) {
  const JsonField o(j, where, std::move(pointer));
  o.only_keys({"peak_bytes", "comm", "flops_per_step", "compute_s", "comm_s", "step_time_s", "phase_s", "calibrated"});
  const JsonField peak = o.object_at("peak_bytes");
  peak.only_keys({"params", "grads", "optimizer", "activations", "recompute", "comm", "workspace", "total"});
  Prediction p;
  for (MemCategory category : kAllMemCategories) {
    p.peak[static_cast<int>(category)] = peak.unsigned_at(to_string(category));
  }
  p.peak_total = peak.unsigned_at("total");
  const JsonField comm = o.object_at("comm");
  comm.only_keys({"bytes_intra_node", "bytes_inter_node"});
  p.bytes_intra_node = comm.unsigned_at("bytes_intra_node");
  p.bytes_inter_node = comm.unsigned_at("bytes_inter_node");
  p.flops_per_step = o.non_negative_at("flops_per_step");
  p.compute_s = o.non_negative_at("compute_s");
  p.comm_s = o.non_negative_at("comm_s");
  p.step_time_s = o.non_negative_at("step_time_s");
  p.calibrated = o.bool_at("calibrated");
  if (o.has("phase_s")) {
    const JsonField phases = o.object_at("phase_s");
    for (const auto& [phase, seconds] : phases.value().items()) p.phase_s[phase] = phases.non_negative_at(phase);
  }
  return p;
}

}  // namespace memfront
