#pragma once
// memfront sweep: plans a study, runs its trials (or replays them from a
// recorded sweep), records every outcome, and keeps going after failures.
//
// - The study's reference configuration runs first, at every step count the
//   strategy uses, so that each trial's loss_delta compares like with like.
// - Every record carries the cost model's prediction. With outcome
//   constraints, a configuration the model predicts to break one is recorded
//   as `pruned` and not run (unless no_prune).
// - The results file is append-only; each record is one fsynced line. With
//   resume, configurations already recorded (same id) are not run again.
// - An interrupt (Ctrl-C) kills the running trial, records nothing for it,
//   and stops the sweep; a later resume runs what is missing.
// - Trials run through a TrialRunner: one at a time on this machine, or a
//   round at a time as a Slurm job array (tuner/slurm_launcher.h).
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/results.h"
#include "tuner/cost_model.h"
#include "tuner/launcher.h"
#include "tuner/study.h"

namespace memfront {

inline constexpr int kDefaultRemeasure = 2;
inline constexpr int kDefaultConfirm = 1;

struct SweepOptions {
  std::filesystem::path results;       // the results file (JSONL); empty: record nothing (replays)
  nlohmann::json study_spec;           // the study file's JSON, kept in the results header
  bool resume = false;                 // append to an existing results file, skipping recorded ids
  bool revise = false;                 // with resume: a changed study goes on as a new revision of it
  bool prune = true;                   // record model-predicted violations as pruned
  Calibration calibration;             // for predictions
  bool progress_bar = false;           // a live bar (a terminal) instead of one line per trial
  // A run whose step time is contended (core/timing.h) is run again, up to
  // this many more times per trial; the record keeps the runs that were not
  // and names the ones set aside (provenance.remeasured). `memfront sweep`
  // gives kDefaultRemeasure; a replay measures nothing and gives 0.
  int remeasure = 0;
  // The confirmation round: once the search is done, every point of the
  // front runs this many more times, interleaved (one run of each point per
  // pass), and the summary keeps all its runs' step times. The records stay as
  // they were measured. `memfront sweep` gives kDefaultConfirm; a replay 0.
  int confirm = 0;
  std::filesystem::path trial_exe;     // memfront-trial
  const std::atomic<bool>* interrupt = nullptr;
};

struct SweepSummary {
  int proposed = 0;    // trials the strategy asked for
  int launched = 0;    // trials run (reference runs included)
  int reused = 0;      // found in the results file already (resume)
  int failed = 0;      // launched and not ok
  int pruned = 0;
  bool interrupted = false;
  int left_running = 0;  // trials still in a batch system's queue when the sweep returned (no-wait, interrupt)
  int lost = 0;          // trials that ended without a result (cancelled, node failure): a resume runs them
  double seconds = 0;
  std::vector<TrialRecord> records;  // every record of this study in the file, the reference included
  // The confirmation round: id -> the median step time of every run of that
  // front point, the recorded one first. Empty without a confirmation round.
  std::map<std::string, std::vector<double>> confirmed_step_s;
  int confirmation_runs = 0;  // runs of the confirmation round (not in launched)
};

// How the trials of a sweep get run. The sweep hands a runner the trials of a
// round one by one (start), then waits for the round (finish_round). A runner
// that runs one trial at a time does it inside start, so that records come
// back in the order the strategy proposed them; one that batches (a Slurm job
// array) starts them all in finish_round and reports each as it ends.
class TrialRunner {
 public:
  // The runs of one trial: `repeats` of them, or fewer when one does not end ok.
  using Done = std::function<void(std::vector<LaunchOutcome> runs)>;
  struct RoundEnd {
    bool interrupted = false;  // the sweep was interrupted: stop
    int left_running = 0;      // trials left in a queue, to be collected later
    int lost = 0;              // trials that ended without a result; a resume runs them
  };

  virtual ~TrialRunner() = default;
  // Runs the trial, now or with the round, and calls done once it has ended.
  // False when the sweep is interrupted and the trial was not started.
  virtual bool start(const LaunchRequest& request, int repeats, Done done) = 0;
  // Returns once every trial started in this round has ended or been left.
  virtual RoundEnd finish_round() = 0;
};

// Runs a trial with a Launcher as soon as it is started, or, when the study
// repeats its trials, the round's trials together in passes (one run of each
// per pass) at finish_round. A contended run is measured again, up to
// `remeasure` times a trial: at once when the trial runs alone, in the next
// pass otherwise.
class SequentialRunner final : public TrialRunner {
 public:
  SequentialRunner(Launcher& launcher, const std::atomic<bool>* interrupt, int remeasure)
      : launcher_(launcher), interrupt_(interrupt), remeasure_(remeasure) {}
  bool start(const LaunchRequest& request, int repeats, Done done) override;
  RoundEnd finish_round() override;

 private:
  struct Trial {
    LaunchRequest request;
    int repeats = 1;
    Done done;
    std::vector<LaunchOutcome> runs;                      // kept
    nlohmann::json set_aside = nlohmann::json::array();  // contended runs measured again
    bool complete() const;  // all its repeats, or a run that did not end ok
    void end();             // hands the runs to done, naming what was set aside
  };
  // One run of the trial; false when the sweep was interrupted.
  bool measure_once(Trial& trial);

  Launcher& launcher_;
  const std::atomic<bool>* interrupt_;
  int remeasure_;
  std::vector<Trial> round_;  // trials with repeats, waiting for finish_round
};

// Runs a study with `launcher` (a LocalLauncher, or a ReplayLauncher), one trial at a time.
SweepSummary run_sweep(const Study& study, const SweepOptions& options, Launcher& launcher, std::ostream& log);
// Runs a study through any runner.
SweepSummary run_sweep(const Study& study, const SweepOptions& options, TrialRunner& runner, std::ostream& log);

// A trial's record from its runs: the run of median step time (with every
// run's median step time in provenance when the study repeats), the cost
// model's prediction, loss_delta against the reference's final loss (0 for
// the reference itself; none when the reference did not end ok), and its
// trace named relative to the results file.
TrialRecord record_of_runs(std::vector<LaunchOutcome> runs, int repeats, const std::optional<Prediction>& prediction,
                           bool is_reference, std::optional<double> reference_loss,
                           const std::filesystem::path& results);

// Replays a recorded sweep: a trial's record is looked up by config id in
// the recorded file instead of being run. A proposal for fewer steps than
// were recorded is answered from the recorded run's first steps (its training
// loss at that step stands in for the held-out loss). Nothing is launched.
class ReplayLauncher final : public Launcher {
 public:
  explicit ReplayLauncher(const std::vector<TrialRecord>& recorded);
  LaunchOutcome run(const LaunchRequest& request) override;
  int lookups() const { return lookups_; }

 private:
  std::map<std::string, const TrialRecord*> by_id_;  // id of the config with train.steps removed
  int lookups_ = 0;
};

// The records that ran the study's full number of steps (halving's shorter
// rounds are not comparable with them).
std::vector<TrialRecord> full_length(const std::vector<TrialRecord>& records, int steps);

// Whether a record satisfies every filter; a filter over a metric the record
// lacks does not hold. (An unknown name was rejected when the filter was made.)
bool passes_filters(const TrialRecord& record, const std::vector<RecordExpr>& filters);

// The Pareto front of records over objectives, after an optional filter:
// indices into records, ordered by the first objective.
std::vector<size_t> front_of(const std::vector<TrialRecord>& records, const std::vector<Objective>& objectives,
                             const std::vector<RecordExpr>& filters);

// The objectives of the study a results header keeps (its study_spec), as
// written; empty when it keeps none.
std::vector<Objective> recorded_objectives(const ResultsHeader& header);

// A table of the front: one row per point with its objectives and the knobs
// that differ between the records; with `confirmed` (a sweep's confirmation
// round), each point's step time over all its runs: median [min, max] xN.
std::string format_front(const std::vector<TrialRecord>& records, const std::vector<size_t>& front,
                         const std::vector<Objective>& objectives,
                         const std::map<std::string, std::vector<double>>* confirmed = nullptr);

}  // namespace memfront
