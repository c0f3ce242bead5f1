// Records of Slurm array elements: from the end file of one that finished,
// or from Slurm's word for one that ended without it.
#include "tuner/slurm_records.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/exit_code.h"

namespace memfront {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The last few lines of an element's log, as one line.
std::string log_tail(const fs::path& path) {
  const std::string text = file_tail(path, 4096);
  std::vector<std::string> lines;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(one_line(line));
  }
  std::string tail;
  for (size_t i = lines.size() > 3 ? lines.size() - 3 : 0; i < lines.size(); ++i) {
    tail += (tail.empty() ? "" : " | ") + lines[i];
  }
  return one_line(tail, 300);
}

}  // namespace

ProcessEnd end_of_run(const EndFile::Run& run) {
  // The batch script runs each run under timeout(1) and srun: timeout's own
  // status when the deadline struck, the shell's 128 + N for a task killed by
  // signal N.
  ProcessEnd end;
  end.timed_out = run.exit_code == code(ExitCode::timed_out);
  if (run.exit_code > kSignalExitBase) {
    end.signal = run.exit_code - kSignalExitBase;
  } else {
    end.exit_code = run.exit_code;
  }
  end.wall_s = std::max(0.0, run.ended - run.started);
  return end;
}

std::vector<LaunchOutcome> outcomes_of_finished(const SlurmState& state, const SlurmState::Element& element) {
  const SlurmState::Trial& trial = element.trial();
  json slurm = {{"job_id", element.array->job_id}, {"array_task", element.index}};
  EndFile end;
  try {
    end = read_end_file(state.end_path(trial.id));
  } catch (const InputError& e) {
    LaunchOutcome outcome;
    outcome.record.id = trial.id;
    outcome.record.config = trial.config;
    outcome.record.status = TrialStatus::failed;
    outcome.record.error = "the array element's end file is unreadable: " + one_line(e.what());
    outcome.record.provenance = {{"slurm", slurm}};
    outcome.record_dir = state.trials_dir();
    return {outcome};
  }
  // The end file says which element wrote it (an earlier submission of the
  // same trial may have finished after all).
  slurm = {{"job_id", end.job_id}, {"array_task", end.task}, {"nodes", end.nodes}};
  const Config& config = trial.config;
  std::vector<LaunchOutcome> outcomes;
  for (size_t r = 0; r < end.runs.size(); ++r) {
    const EndFile::Run& run = end.runs[r];
    const int number = static_cast<int>(r) + 1;
    const std::string command =
        trial.command + " --out " + shell_command({state.record_path(trial.id, number).string()});
    LaunchOutcome outcome = outcome_of_run(config, end_of_run(run), command, element.array->timeout_s,
                                           state.record_path(trial.id, number), state.stderr_path(trial.id, number));
    outcome.record.provenance["slurm"] = slurm;
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

LaunchOutcome outcome_of_ended(const SlurmState& state, const SlurmState::Element& element, const ElementState& slurm,
                               TrialStatus status) {
  const SlurmState::Trial& trial = element.trial();
  LaunchOutcome outcome;
  outcome.record.id = trial.id;
  outcome.record.config = trial.config;
  outcome.record.status = status;
  const std::string tail = log_tail(state.log_path(element));
  if (slurm.state == "COMPLETED") {
    outcome.record.error = "array element " + element.name() + " completed but its end file " +
                           state.end_path(trial.id).string() +
                           " never appeared here: do the compute nodes share this file system?";
  } else {
    outcome.record.error = "Slurm ended array element " + element.name() + " as " + slurm.state +
                           (slurm.exit_code.empty() ? "" : " (exit " + slurm.exit_code + ")") +
                           " before the trial finished";
  }
  if (!tail.empty()) outcome.record.error += "; log: " + tail;
  outcome.record.provenance = {
      {"slurm", {{"job_id", element.array->job_id}, {"array_task", element.index}, {"nodes", slurm.nodes},
                 {"state", slurm.state}}},
      {"launcher", {{"command", trial.command}}}};
  outcome.command = trial.command;
  outcome.record_dir = state.trials_dir();
  return outcome;
}

}  // namespace memfront
