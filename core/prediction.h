#pragma once
// The cost model's prediction for one trial (tuner/cost_model.h predict()):
// what `memfront predict --json` prints and what a results record carries
// beside the measurement as "prediction" (results/SCHEMA.md). Core holds it so
// that records, the metric registry and the viewer read it typed; the tuner
// computes it.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "core/arena.h"

namespace memfront {

struct Prediction {
  BytesByCategory peak{};     // per rank, the largest over ranks, by category
  uint64_t peak_total = 0;    // per rank, the largest over ranks
  uint64_t bytes_intra_node = 0;  // per step, all ranks together
  uint64_t bytes_inter_node = 0;
  double flops_per_step = 0;  // all ranks together
  double compute_s = 0;       // per step
  double comm_s = 0;
  double step_time_s = 0;     // compute + comm (memfront's collectives do not overlap)
  // compute_s and comm_s by the trial's phases (forward, backward, recompute,
  // optimizer, quantize, topk, comm, step), as metrics.phase_s measures them.
  // Empty in records written before the cost model timed the step's calls.
  std::map<std::string, double> phase_s;
  bool calibrated = false;    // from a measured calibration

  friend bool operator==(const Prediction&, const Prediction&) = default;
};

nlohmann::json to_json(const Prediction& prediction);
// Reads what to_json writes, every member present with its type and nothing
// else. `pointer` is where the prediction sits in the document ("/prediction"
// in a record). Errors are InputError "<where>: <json pointer>: <what was expected>".
Prediction prediction_from_json(const nlohmann::json& json, std::string_view where, std::string pointer = "");

}  // namespace memfront
