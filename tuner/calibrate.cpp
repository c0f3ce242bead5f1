#include "tuner/calibrate.h"

#include <cstdio>
#include <ostream>
#include <algorithm>
#include <optional>

#include "core/error.h"
#include "core/exit_code.h"
#include "core/jsonl.h"
#include "core/results.h"
#include "tuner/cost_model.h"
#include "tuner/launcher.h"
#include "tuner/model_check.h"
#include "tuner/process.h"
#include "tuner/study.h"

namespace memfront {

namespace {

// The configurations of a study, for memfront-calibrate --configs: the calls
// of a step depend on its shapes, formats and strategy, so every candidate of
// the space counts, but each once; of a space larger than kMostConfigs
// points, every n-th point (in grid order, where the last knobs vary
// fastest), and the calls of the others are interpolated.
constexpr uint64_t kMostConfigs = 20000;

nlohmann::json study_configs(const std::filesystem::path& path) {
  const Study study = load_study(path);
  CandidateSpace space(study);
  const uint64_t stride = std::max<uint64_t>(1, space.size() / kMostConfigs);
  nlohmann::json configs = nlohmann::json::array();
  for (uint64_t index = 0; index < space.size(); index += stride) {
    if (std::optional<Candidate> candidate = space.draw(index)) configs.push_back(to_json(candidate->config));
  }
  if (configs.empty() && stride == 1) space.fail_empty();
  if (configs.empty()) {
    throw InputError(path.string() + ": none of every " + std::to_string(stride) +
                     "th point of the space makes a valid configuration: calibrate on a smaller study");
  }
  return configs;
}

}  // namespace

int run_calibrate(const CalibrateFlags& flags, std::atomic<bool>* interrupted, std::ostream& out, std::ostream& err) {
  const std::filesystem::path path = flags.out.empty() ? default_calibration_path() : flags.out;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  CalibrateRequest request{path, flags.quick, {}, flags.allow_loaded};
  if (!flags.study.empty()) {
    request.configs = path.string() + ".configs.json";
    replace_file_atomically(request.configs, study_configs(flags.study).dump() + "\n");
  }
  ProcessRequest run;
  run.argv = calibrate_command(find_calibrate_executable(), request);
  // Its own process group does not see the terminal's Ctrl-C: the caller's
  // handler sets `interrupted`, and the process module stops the whole group.
  run.interrupt = interrupted;
  err << "memfront: " << shell_command(run.argv) << "\n";
  const ProcessEnd end = run_process(run);
  if (!request.configs.empty()) std::filesystem::remove(request.configs);
  out << end.out << std::flush;
  if (end.interrupted) {
    err << "memfront: calibration interrupted\n";
    return code(ExitCode::interrupted);
  }
  if (!end.ok()) {
    err << "memfront: calibration failed: " << describe(end) << "\n" << end.err_tail;
    return code(ExitCode::failure);
  }
  const Calibration calibration = load_calibration(path);
  char line[256];
  std::snprintf(line, sizeof line, "calibrated %s: %zu step calls timed; link %.1f us + %.2f GB/s%s\n",
                calibration.host.c_str(), calibration.ops.size(), calibration.link_latency_s * 1e6,
                calibration.link_bytes_per_s * 1e-9, calibration.loaded ? " (LOADED: measured on a busy machine)" : "");
  out << line;
  return 0;
}

int run_validate(const std::filesystem::path& results, const std::filesystem::path& calibration, std::ostream& out,
                 std::ostream& err) {
  const ResultsFile file = read_results(results);
  if (file.truncated_tail) err << "memfront: warning: " << *file.truncated_tail << "\n";
  std::optional<Calibration> repredict;
  if (!calibration.empty()) repredict = load_calibration(calibration);
  const ModelCheck check = check_cost_model(file, repredict);
  if (check.rows.empty()) {
    err << "memfront: " << results.string() << ": no trial has both a measured step time and a prediction\n";
    return code(ExitCode::failure);
  }
  out << format_model_check(check);
  return 0;
}

}  // namespace memfront
