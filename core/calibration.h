#pragma once
// The calibration file: the rates one machine was measured at by
// memfront-calibrate (kernels/calibrate_main.cpp, its writer), with which the
// cost model (tuner/cost_model.h, its reader) turns FLOPs and bytes into
// seconds. One struct and one JSON form for both sides, versioned by its
// "format" member.
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace memfront {

inline constexpr std::string_view kCalibrationFormat = "memfront.calibration/1";

// Measured with one BLAS thread per rank, as the trials run. The defaults are
// what the cost model predicts with when nothing was measured.
struct Calibration {
  bool measured = false;               // false: built-in defaults, say so beside every prediction
  std::string host;
  std::string created;                 // ISO 8601 UTC
  double gemm_flops_per_s = 50e9;      // cblas_sgemm on the step's GEMM shapes
  double attention_flops_per_s = 8e9;  // the attention kernels
  double memory_bytes_per_s = 10e9;    // streaming, for the memory-bound ops
  double link_latency_s = 5e-6;        // intra-node message latency (MPI point-to-point on this host)
  double link_bytes_per_s = 5e9;       // intra-node bandwidth
};

nlohmann::json to_json(const Calibration& calibration);
// Strict: every member present with its type and range, nothing else, and the
// format this memfront writes. Errors are InputError "<where>: <json pointer>: ...".
Calibration calibration_from_json(const nlohmann::json& json, std::string_view where);
// Written beside `path` and renamed over it, so that a reader never sees half
// a file; creates the parent directories.
void save_calibration(const std::filesystem::path& path, const Calibration& calibration);

}  // namespace memfront
