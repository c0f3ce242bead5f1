#pragma once
// Every kernel call one rank makes in one training step of a config, by the
// phase the trial books it under: the list the cost model times (each call
// at the calibration's seconds for it, core/calibration.h op_seconds) and
// memfront-calibrate measures (the distinct calls of the configs it is given).
// It follows kernels/model.cpp and kernels/shard.cpp call for call; the FLOPs
// of its GEMM and attention calls are the kernels' own count.
#include <vector>

#include "core/calibration.h"
#include "core/config.h"

namespace memfront {

struct StepCall {
  const char* phase;  // forward, backward, recompute, optimizer, quantize, topk, step
  OpCall call;
  double times;       // per step, on the rank with the largest shards
};
using StepCalls = std::vector<StepCall>;

StepCalls step_calls(const Config& config);

// The distinct calls of a list of configs, in first-seen order.
std::vector<OpCall> distinct_calls(const std::vector<Config>& configs);

}  // namespace memfront
