#pragma once
// `memfront calibrate`: runs memfront-calibrate (kernels/calibrate_main.cpp)
// to time this machine's step calls, for a study's configurations or the
// built-in ones, and `memfront calibrate --validate`, which holds the cost
// model against the measured trials of a results file (tuner/model_check.h).
#include <atomic>
#include <filesystem>
#include <iosfwd>
#include <string>

namespace memfront {

struct CalibrateFlags {
  std::filesystem::path out;    // empty: default_calibration_path()
  std::filesystem::path study;  // time the calls of this study's configurations; empty: built-in configs
  bool quick = false;
  bool allow_loaded = false;
};

// The exit code: ok, failure (the calibration failed or the machine was busy;
// the message says which), bad_input, or interrupted.
int run_calibrate(const CalibrateFlags& flags, std::atomic<bool>* interrupted, std::ostream& out, std::ostream& err);

// Prints the check of the results file at `results`; with a calibration path,
// every trial is predicted again from it.
int run_validate(const std::filesystem::path& results, const std::filesystem::path& calibration, std::ostream& out,
                 std::ostream& err);

}  // namespace memfront
