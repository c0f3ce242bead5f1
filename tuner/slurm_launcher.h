#pragma once
// Sweeps on a Slurm cluster. Each round of a sweep is submitted as a job
// array (one per allocation shape); each element runs one trial under srun
// and leaves its record in the sweep's Slurm folder, and the driver merges
// the records into the results file, through the sweep's own recorder, as
// they finish. Everything a later process needs is in that folder, so that
// `memfront status`, `memfront collect` and `memfront sweep --resume` work
// from the results path alone once the driver is gone:
//
//   <results>.slurm/
//     state.jsonl            one line per submitted array: its job id, the
//                            options, and per element the trial's id, config,
//                            reference id, prediction and command
//     lock                   held by the one process that merges (sweep or collect)
//     arrays/<n>.sbatch      the batch script of array n
//     logs/<job>_<i>.out     Slurm's output of element i
//     trials/<id>.config.json, <id>.<run>.record.json, <id>.<run>.stderr,
//            <id>.trace.json, <id>.end.json (the element's last word: it finished)
//
// A trial is merged once its end file is there, and only once: its id is then
// in the results file. An element that Slurm ended without an end file is
// recorded when Slurm's state puts it down to the trial (TIMEOUT: timeout,
// OUT_OF_MEMORY: oom, FAILED: failed, with the state in the error) and left
// out otherwise (CANCELLED, NODE_FAIL, PREEMPTED, ..., or no longer known), so
// that `sweep --resume` runs it again. A trial whose element is still queued
// or running when a sweep resumes is waited for, not submitted twice.
//
// The state of an element that has left the queue comes from sacct, or from
// `scontrol show job` where there is no accounting database (sacct then only
// says that accounting is disabled); Slurm forgets such jobs MinJobAge
// seconds after they end, after which they count as no longer known.
#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tuner/slurm.h"
#include "tuner/sweep.h"

namespace memfront {

// The Slurm folder of a results file and the arrays submitted from it.
class SlurmState {
 public:
  struct Trial {
    std::string id;
    nlohmann::json config;      // normalized
    std::string reference_id;   // the study reference's id at this trial's steps (its own for the reference)
    nlohmann::json prediction;  // the cost model's, for the record
    std::string command;        // the srun command line of a run, for the record's provenance
  };
  struct Array {
    int number = 0;             // arrays/<number>.sbatch
    std::string job_id;
    std::string submitted;      // ISO 8601 UTC
    SlurmOptions options;
    int repeats = 1;
    double timeout_s = 300;     // per run
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

// Slurm's commands, each run without a shell and within a time limit.
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

// The records of a finished element (its end file is there): one per run,
// each from that run's record file, exit status and stderr. An unreadable end
// file gives one failed record that says why.
std::vector<LaunchOutcome> outcomes_of_finished(const SlurmState& state, const SlurmState::Element& element);
// The record of an element Slurm ended without an end file, with Slurm's state
// and the end of the element's log in its error.
LaunchOutcome outcome_of_ended(const SlurmState& state, const SlurmState::Element& element,
                               const ElementState& slurm, TrialStatus status);

// Runs a sweep's rounds as job arrays. Holds the merge lock from construction.
class SlurmRunner final : public TrialRunner {
 public:
  struct Settings {
    std::filesystem::path results;
    std::string job_name;       // memfront-<study>
    SlurmOptions options;
    bool wait = true;           // false (--no-wait): submit, merge what has finished, return
  };
  SlurmRunner(Settings settings, const std::atomic<bool>* interrupt, std::ostream& log);

  bool start(const LaunchRequest& request, int repeats, Done done) override;
  RoundEnd finish_round() override;

 private:
  struct Pending {
    LaunchRequest request;
    int repeats = 1;
    Done done;
  };
  struct Awaited {
    Pending* trial;
    SlurmState::Element element;
    std::optional<std::chrono::steady_clock::time_point> left_queue;  // when squeue stopped listing it
  };

  // The round's trials submitted by an earlier sweep: those finished are
  // merged by wait, those still queued or running are awaited, those Slurm
  // ended as the trial's failure are recorded now; the rest, and trials never
  // submitted, are returned to be submitted.
  std::vector<Pending*> take_over_earlier_submissions();
  void submit(const std::vector<Pending*>& trials);
  void submit_array(const ArrayShape& shape, const std::vector<Pending*>& trials);
  // Until every awaited trial is merged or settled, or the sweep is interrupted.
  void wait(RoundEnd& end);
  // Merges every awaited trial whose end file is there; true if any.
  bool merge_finished();
  // Settles the awaited trials that left the queue without an end file.
  void check_queue(RoundEnd& end);

  Settings settings_;
  const std::atomic<bool>* interrupt_;
  std::ostream& log_;
  SlurmState state_;
  MergeLock lock_;
  SlurmClient client_;
  std::vector<Pending> round_;
  std::map<std::string, Awaited> awaited_;  // by trial id
  std::optional<std::chrono::steady_clock::time_point> queue_failing_since_;
};

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
