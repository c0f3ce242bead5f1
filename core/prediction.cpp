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
          {"calibrated", p.calibrated}};
}

Prediction prediction_from_json(const json& j, std::string_view where, std::string pointer) {
  const StrictObject o(j, where, std::move(pointer),
                       {"peak_bytes", "comm", "flops_per_step", "compute_s", "comm_s", "step_time_s", "calibrated"});
  const StrictObject peak = o.object(
      "peak_bytes", {"params", "grads", "optimizer", "activations", "recompute", "comm", "workspace", "total"});
  Prediction p;
  for (MemCategory category : kAllMemCategories) {
    p.peak[static_cast<int>(category)] = peak.count(std::string(to_string(category)).c_str());
  }
  p.peak_total = peak.count("total");
  const StrictObject comm = o.object("comm", {"bytes_intra_node", "bytes_inter_node"});
  p.bytes_intra_node = comm.count("bytes_intra_node");
  p.bytes_inter_node = comm.count("bytes_inter_node");
  p.flops_per_step = o.non_negative("flops_per_step");
  p.compute_s = o.non_negative("compute_s");
  p.comm_s = o.non_negative("comm_s");
  p.step_time_s = o.non_negative("step_time_s");
  p.calibrated = o.boolean("calibrated");
  return p;
}

}  // namespace memfront
