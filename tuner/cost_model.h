#pragma once
// The cost model: closed forms that predict, for any config and any world
// size, per-rank peak memory by category, the bytes one step sends by link
// class, and the step time from rates calibrated on the machine
// (memfront calibrate). It prunes configurations that cannot fit before they
// run, answers what-if questions beyond the machine, and is shown beside every
// measurement with its error. Measurement wins over the model.
//
// The memory forms are exact for memfront's own step (the arena's categories,
// kernels/model.h and kernels/shard.h): the tests hold params, grads,
// optimizer, activations and recompute to the byte, and the total to 1%.
// The tuner never links the kernels: the sizes both sides compute (shards,
// parameter units, wire formats, ring traffic, saved activations) are the
// closed forms of core/closed_forms.h.
#include <cstdint>
#include <filesystem>
#include <string>

#include "core/arena.h"
#include "core/calibration.h"
#include "core/config.h"
#include "core/prediction.h"

namespace memfront {

// The calibration file's format is core's (core/calibration.h).
// $MEMFRONT_CALIBRATION, else $XDG_CACHE_HOME/memfront/calibration.json, else
// ~/.cache/memfront/calibration.json.
std::filesystem::path default_calibration_path();
// Missing file: defaults (measured = false). Malformed file: InputError.
Calibration load_calibration(const std::filesystem::path& path);

// Predicts the trial of `config` (its world, placement and knobs as given).
Prediction predict(const Config& config, const Calibration& calibration);

}  // namespace memfront
