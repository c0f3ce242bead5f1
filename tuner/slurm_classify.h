#pragma once
// What becomes of a trial submitted as a Slurm array element: one decision,
// from everything known about the element at one moment, for every place that
// asks (a sweep taking over earlier submissions, a sweep waiting for its
// round, memfront collect, memfront status).
#include <chrono>
#include <optional>
#include <string>

#include "core/results.h"
#include "tuner/slurm.h"
#include "tuner/slurm_state.h"

namespace memfront {

// An element Slurm calls COMPLETED may have its end file still on the way
// through a shared file system's attribute cache: it is waited for this long
// after it ended before its trial counts as failed.
inline constexpr std::chrono::seconds kEndFileGrace{30};

// Everything known about one element at one moment.
struct ElementSighting {
  bool end_file = false;                     // its end file is there
  bool queue_known = true;                   // squeue answered; false: whether it is queued is unknown
  const ElementState* queued = nullptr;      // squeue's line for it, when it lists it
  const ElementState* accounting = nullptr;  // sacct's or scontrol's, once it left the queue
  // How long ago it ended, at least, when known (Slurm's end time, or when a
  // waiting sweep saw it leave the queue); unknown counts as long ago.
  std::optional<std::chrono::seconds> ended_ago;
};

enum class ElementFate {
  finished,          // its end file is there: its runs are merged
  in_queue,          // queued or running, by squeue or by an accounting that has not caught up
  awaiting_end_file, // COMPLETED less than kEndFileGrace ago and no end file yet
  recorded,          // Slurm ended it for the trial's own doing (timeout, oom, failed): recorded as that
  lost,              // ended without a result (cancelled, preempted, node failure, forgotten): it runs again
  unknown,           // squeue failed, so nothing can be said
};

struct ElementVerdict {
  ElementFate fate = ElementFate::unknown;
  std::optional<TrialStatus> status;  // recorded: the record's status
  std::string slurm_state;            // Slurm's word for it, "" when Slurm does not know it (any more)
};

ElementVerdict classify(const ElementSighting& sighting);

// The sighting of an element from what squeue (nullopt: it failed) and
// sacct/scontrol said, its end file and `now` (for the age of Slurm's end time).
ElementSighting sight(const SlurmState& state, const SlurmState::Element& element,
                      const std::optional<ArrayStates>& queue, const ArrayStates& accounting,
                      std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// What Slurm said of an element, if anything.
const ElementState* find_state(const ArrayStates& states, const SlurmState::Element& element);

// How a lost element ended, for messages.
std::string ended_without_result(const std::string& state);

}  // namespace memfront
