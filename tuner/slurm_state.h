#pragma once
// The Slurm folder of a results file, where a Slurm sweep keeps everything a
// later process needs (tuner/slurm_launcher.h has the whole layout): the
// arrays submitted (state.jsonl), the trials' files, and the lock of the one
// process that merges into the results file.
#include <deque>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/prediction.h"
#include "core/time_limits.h"
#include "tuner/slurm.h"

namespace memfront {

// The Slurm folder of a results file and the arrays submitted from it.
class SlurmState {
 public:
  struct Trial {
    std::string id;
    Config config;
    std::string reference_id;   // the study reference's id at this trial's steps (its own for the reference)
    std::optional<Prediction> prediction;  // the cost model's, for the record
    std::string command;        // the srun command line of a run, for the record's provenance
  };
  struct Array {
    int number = 0;             // arrays/<number>.sbatch
    std::string job_id;
    std::string submitted;      // ISO 8601 UTC
    SlurmOptions options;
    int repeats = 1;
    double timeout_s = kDefaultTrialTimeoutS;  // per run
    std::vector<Trial> trials;  // element i runs trials[i]
  };
  // Where a trial was last submitted.
  struct Element {
    const Array* array = nullptr;
    int index = 0;
    const Trial& trial() const { return array->trials[static_cast<size_t>(index)]; }
    std::string name() const { return array->job_id + "_" + std::to_string(index); }
  };

  explicit SlurmState(const std::filesystem::path& results);
  static std::filesystem::path folder_of(const std::filesystem::path& results);

  const std::filesystem::path& folder() const { return folder_; }
  std::filesystem::path trials_dir() const { return folder_ / "trials"; }
  std::filesystem::path config_path(const std::string& id) const;
  std::filesystem::path record_path(const std::string& id, int run) const;
  std::filesystem::path stderr_path(const std::string& id, int run) const;
  std::filesystem::path end_path(const std::string& id) const;
  std::filesystem::path log_path(const Element& element) const;

  // Reads state.jsonl (none yet: no arrays). A last line cut short (a driver
  // killed while writing it) is left out; any other malformed line is an
  // InputError with its line number.
  void load();
  const std::deque<Array>& arrays() const { return arrays_; }
  // The last submission of each trial id.
  std::map<std::string, Element> latest_elements() const;
  // Writes the array as one fsynced line and keeps it (references to the
  // arrays already kept stay valid).
  const Array& append(Array array);

 private:
  std::filesystem::path folder_;
  std::deque<Array> arrays_;  // a deque: elements point into it while more are appended
};

// Exclusive right to merge into a results file: the sweep that submits and
// waits, or memfront collect. Released when the holder exits, however it exits.
class MergeLock {
 public:
  // std::runtime_error naming the holder's pid when another process holds it.
  explicit MergeLock(const SlurmState& state);
  MergeLock(const MergeLock&) = delete;
  MergeLock& operator=(const MergeLock&) = delete;
  ~MergeLock();

 private:
  int fd_ = -1;
};

}  // namespace memfront
