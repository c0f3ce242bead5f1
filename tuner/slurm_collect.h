#pragma once
// memfront collect and memfront status over a Slurm sweep's folder, from the
// results path alone, once the sweep that submitted is gone.
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "core/results.h"

namespace memfront {

// memfront collect: merges into the results file every trial whose element
// has finished (or that Slurm ended as the trial's own failure), the
// references first so that the others get their loss_delta; a trial whose
// reference has no record yet waits for it.
struct CollectSummary {
  int merged = 0;
  int failed = 0;      // of those merged
  int in_queue = 0;    // queued or running
  int lost = 0;        // ended without a result: sweep --resume runs them
  int waiting_for_reference = 0;
};
CollectSummary collect_slurm_results(const std::filesystem::path& results, std::ostream& log);

// memfront status: the trials of the Slurm sweep by state (queued, running,
// done, failed, cancelled), then a line for each one not yet recorded.
// Reads only (takes no lock); empty when the results file has no Slurm folder.
std::string slurm_status(const std::filesystem::path& results, const std::vector<TrialRecord>& recorded);

}  // namespace memfront
