#pragma once
// Slurm's commands (sbatch, squeue, sacct, scontrol), each run through the
// process module: no shell, a process group of its own (so that a Ctrl-C
// meant for the sweep cannot cut a submission in half), and a time limit.
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tuner/slurm.h"

namespace memfront {

// sbatch may wait for a busy controller; the queries answer quickly or not at all.
inline constexpr double kSubmitLimitS = 120;
inline constexpr double kQueryLimitS = 60;

class SlurmClient {
 public:
  // Submits; the job id. std::runtime_error when sbatch is not on PATH, times
  // out or rejects the job (with sbatch's own words).
  std::string submit(const std::vector<std::string>& argv, const std::filesystem::path& folder);
  // This user's queued and running array elements, or nullopt with
  // last_error() set when squeue fails.
  std::optional<ArrayStates> queue();
  // What Slurm says of the elements of these jobs that have left the queue:
  // sacct, else scontrol show job. Elements it no longer knows are absent.
  ArrayStates final_states(const std::set<std::string>& job_ids);
  const std::string& last_error() const { return last_error_; }

 private:
  std::string last_error_;
};

}  // namespace memfront
