#include "tuner/slurm_collect.h"

#include <algorithm>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <stdexcept>

#include "core/error.h"
#include "tuner/slurm_classify.h"
#include "tuner/slurm_client.h"
#include "tuner/slurm_records.h"
#include "tuner/slurm_state.h"
#include "tuner/sweep.h"

namespace memfront {

namespace fs = std::filesystem;

CollectSummary collect_slurm_results(const fs::path& results, std::ostream& log) {
  SlurmState state(results);
  if (!fs::exists(state.folder())) {
    throw InputError(results.string() + ": no Slurm sweep to collect (" + state.folder().string() + " does not exist)");
  }
  MergeLock lock(state);
  state.load();
  const ResultsFile file = read_results(results);
  std::map<std::string, TrialRecord> recorded;
  for (const TrialRecord& record : file.trials) recorded.emplace(record.id, record);
  ResultsWriter writer = ResultsWriter::open_append(results);

  // The references first, so that the others find their loss.
  std::vector<SlurmState::Element> elements;
  for (const auto& [id, element] : state.latest_elements()) {
    if (!recorded.contains(id)) elements.push_back(element);
  }
  std::stable_partition(elements.begin(), elements.end(), [](const SlurmState::Element& element) {
    return element.trial().id == element.trial().reference_id;
  });

  SlurmClient client;
  std::optional<ArrayStates> queue;
  ArrayStates finals;
  const bool any_unfinished = std::any_of(elements.begin(), elements.end(), [&](const SlurmState::Element& element) {
    return !fs::exists(state.end_path(element.trial().id));
  });
  if (any_unfinished) {
    queue = client.queue();
    if (!queue) throw std::runtime_error("slurm: " + client.last_error());
    std::set<std::string> gone_jobs;
    for (const SlurmState::Element& element : elements) {
      if (!find_state(*queue, element)) gone_jobs.insert(element.array->job_id);
    }
    finals = client.final_states(gone_jobs);
  }

  CollectSummary summary;
  for (const SlurmState::Element& element : elements) {
    const SlurmState::Trial& trial = element.trial();
    const ElementVerdict verdict = classify(sight(state, element, queue, finals));
    std::vector<LaunchOutcome> runs;
    switch (verdict.fate) {
      case ElementFate::finished:
        runs = outcomes_of_finished(state, element);
        break;
      case ElementFate::recorded:
        runs = {outcome_of_ended(state, element, *find_state(finals, element), *verdict.status)};
        break;
      case ElementFate::in_queue:
      case ElementFate::awaiting_end_file:
        ++summary.in_queue;
        continue;
      case ElementFate::lost:
        ++summary.lost;
        continue;
      case ElementFate::unknown:  // squeue answered above, or every element had finished
        throw std::logic_error("collect: element " + element.name() + " classified without squeue's answer");
    }
    const bool is_reference = trial.id == trial.reference_id;
    std::optional<double> reference_loss;
    if (!is_reference) {
      auto reference = recorded.find(trial.reference_id);
      if (reference == recorded.end()) {
        ++summary.waiting_for_reference;
        continue;
      }
      if (reference->second.status == TrialStatus::ok && reference->second.metrics) {
        reference_loss = reference->second.metrics->final_loss;
      }
    }
    TrialRecord record = record_of_runs(std::move(runs), element.array->repeats, trial.prediction, is_reference,
                                        reference_loss, results);
    writer.append(record);
    ++summary.merged;
    if (record.status != TrialStatus::ok) ++summary.failed;
    log << "memfront: merged " << record.id << " " << to_string(record.status) << " (job " << element.name() << ")"
        << (record.error.empty() ? "" : "  " + record.error) << "\n";
    recorded.emplace(record.id, std::move(record));
  }
  return summary;
}

std::string slurm_status(const fs::path& results, const std::vector<TrialRecord>& recorded) {
  SlurmState state(results);
  if (!fs::exists(state.folder())) return "";
  state.load();
  std::map<std::string, const TrialRecord*> by_id;
  for (const TrialRecord& record : recorded) by_id.emplace(record.id, &record);

  SlurmClient client;
  const std::optional<ArrayStates> queue = client.queue();
  std::set<std::string> gone_jobs;
  const auto latest = state.latest_elements();
  for (const auto& [id, element] : latest) {
    if (!by_id.contains(id) && !fs::exists(state.end_path(id)) && queue && !find_state(*queue, element)) {
      gone_jobs.insert(element.array->job_id);
    }
  }
  const ArrayStates finals = client.final_states(gone_jobs);

  std::map<std::string, int> counts = {{"queued", 0}, {"running", 0}, {"done", 0}, {"failed", 0}, {"cancelled", 0}};
  std::string details;
  for (const auto& [id, element] : latest) {
    if (auto found = by_id.find(id); found != by_id.end()) {
      ++counts[found->second->status == TrialStatus::ok ? "done" : "failed"];
      continue;
    }
    const ElementSighting sighting = sight(state, element, queue, finals);
    const ElementVerdict verdict = classify(sighting);
    std::string phase, detail;
    switch (verdict.fate) {
      case ElementFate::finished: {
        bool ok = false;
        try {
          ok = read_end_file(state.end_path(id)).runs.back().exit_code == 0;
        } catch (const InputError&) {
        }
        phase = ok ? "done" : "failed";
        detail = "finished, not merged yet: memfront collect merges it";
        break;
      }
      case ElementFate::unknown:
        phase = "unknown";
        detail = client.last_error();
        break;
      case ElementFate::in_queue:
        phase = verdict.slurm_state == "PENDING" ? "queued" : "running";
        if (sighting.queued) {
          detail = phase == "queued" ? (sighting.queued->reason.empty() ? "" : "(" + sighting.queued->reason + ")")
                                     : "on " + sighting.queued->nodes;
        }
        break;
      case ElementFate::awaiting_end_file:
        phase = "running";
        detail = "completed; its end file is on its way";
        break;
      case ElementFate::recorded:
        phase = "failed";
        detail = "Slurm: " + verdict.slurm_state + "; memfront collect records it";
        break;
      case ElementFate::lost:
        phase = "cancelled";
        detail = ended_without_result(verdict.slurm_state) + "; memfront sweep --resume runs it again";
        break;
    }
    ++counts[phase];
    details += "  " + id + "  " + phase + "  job " + element.name() + (detail.empty() ? "" : "  " + detail) + "\n";
  }
  std::set<std::string> jobs;
  for (const SlurmState::Array& array : state.arrays()) jobs.insert(array.job_id);
  std::string text = "slurm: " + std::to_string(latest.size()) + " trials in " + std::to_string(state.arrays().size()) +
                     " arrays (jobs " + joined(jobs, ',') + "):";
  bool first = true;
  for (const char* phase : {"done", "failed", "running", "queued", "cancelled", "unknown"}) {
    if (counts[phase] == 0 && std::string(phase) == "unknown") continue;
    text += std::string(first ? " " : ", ") + std::to_string(counts[phase]) + " " + phase;
    first = false;
  }
  return text + "\n" + details;
}

}  // namespace memfront
