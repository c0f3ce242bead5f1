#include "tuner/calibrate.h"

#include <cstdio>
#include <ostream>
#include <set>

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

// The distinct configurations of a study, for memfront-calibrate --configs:
// the calls of a step depend on its shapes, formats and strategy, so every
// configuration of the space counts, but each once.
nlohmann::json study_configs(const std::filesystem::path& path) {
  const Study study = load_study(path);
  nlohmann::json configs = nlohmann::json::array();
  std::set<std::string> seen;
  for (const Candidate& candidate : enumerate_space(study)) {
    nlohmann::json config = to_json(candidate.config);
    if (seen.insert(config.dump()).second) configs.push_back(std::move(config));
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
