#pragma once
// The records of Slurm array elements, as the local launcher's outcomes
// (tuner/launcher.h): each run of an element that finished, or the one record
// of an element that Slurm ended before its trial did.
#include <vector>

#include "tuner/launcher.h"
#include "tuner/process.h"
#include "tuner/slurm.h"
#include "tuner/slurm_state.h"

namespace memfront {

// How a run of the batch script ended, from its status in the end file.
ProcessEnd end_of_run(const EndFile::Run& run);

// The records of a finished element (its end file is there): one per run,
// each from that run's record file, exit status and stderr. An unreadable end
// file gives one failed record that says why.
std::vector<LaunchOutcome> outcomes_of_finished(const SlurmState& state, const SlurmState::Element& element);
// The record of an element Slurm ended without an end file, with Slurm's state
// and the end of the element's log in its error.
LaunchOutcome outcome_of_ended(const SlurmState& state, const SlurmState::Element& element,
                               const ElementState& slurm, TrialStatus status);

}  // namespace memfront
