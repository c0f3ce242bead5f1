#include "tuner/slurm_classify.h"

#include <filesystem>

namespace memfront {

ElementVerdict classify(const ElementSighting& sighting) {
  ElementVerdict verdict;
  if (sighting.end_file) {
    verdict.fate = ElementFate::finished;
    return verdict;
  }
  if (sighting.queued) {
    verdict.fate = ElementFate::in_queue;
    verdict.slurm_state = sighting.queued->state;
    return verdict;
  }
  if (!sighting.queue_known) {
    verdict.fate = ElementFate::unknown;
    return verdict;
  }
  verdict.slurm_state = sighting.accounting ? sighting.accounting->state : "";
  if (element_is_active(verdict.slurm_state)) {
    verdict.fate = ElementFate::in_queue;  // squeue and the accounting disagree for a moment
  } else if (verdict.slurm_state == "COMPLETED" && sighting.ended_ago && *sighting.ended_ago < kEndFileGrace) {
    verdict.fate = ElementFate::awaiting_end_file;
  } else if ((verdict.status = status_of_ended_element(verdict.slurm_state))) {
    verdict.fate = ElementFate::recorded;
  } else {
    verdict.fate = ElementFate::lost;
  }
  return verdict;
}

ElementSighting sight(const SlurmState& state, const SlurmState::Element& element,
                      const std::optional<ArrayStates>& queue, const ArrayStates& accounting,
                      std::chrono::system_clock::time_point now) {
  ElementSighting sighting;
  sighting.end_file = std::filesystem::exists(state.end_path(element.trial().id));
  sighting.queue_known = queue.has_value();
  sighting.queued = queue ? find_state(*queue, element) : nullptr;
  sighting.accounting = find_state(accounting, element);
  if (sighting.accounting && sighting.accounting->ended) {
    const auto ended = std::chrono::system_clock::from_time_t(*sighting.accounting->ended);
    sighting.ended_ago = std::chrono::duration_cast<std::chrono::seconds>(now - ended);
  }
  return sighting;
}

const ElementState* find_state(const ArrayStates& states, const SlurmState::Element& element) {
  auto job = states.find(element.array->job_id);
  if (job == states.end()) return nullptr;
  auto found = job->second.find(element.index);
  return found == job->second.end() ? nullptr : &found->second;
}

std::string ended_without_result(const std::string& state) {
  if (state.empty()) {
    return "left the queue without a result, and Slurm keeps no record of it (cancelled before it started, "
           "or forgotten since)";
  }
  return "ended " + state + " without a result";
}

}  // namespace memfront
