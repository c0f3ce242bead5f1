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
// that `sweep --resume` runs it again; one that Slurm calls COMPLETED is first
// given kEndFileGrace after it ended for its end file to arrive. A trial whose
// element is still queued or running when a sweep resumes is waited for, not
// submitted twice. Every caller decides this with classify() (slurm_classify.h).
//
// The state of an element that has left the queue comes from sacct, or from
// `scontrol show job` where there is no accounting database (sacct then only
// says that accounting is disabled); Slurm forgets such jobs MinJobAge
// seconds after they end, after which they count as no longer known.
//
// The pieces, one job each: tuner/slurm.h (Slurm's vocabulary: shapes, the
// batch script, sbatch's line, parsers of what the commands print),
// slurm_state.h (the folder and its lock), slurm_client.h (running Slurm's
// commands), slurm_classify.h (an element's fate), slurm_records.h (records
// of elements), this file (a sweep's rounds as arrays), slurm_collect.h
// (memfront collect and status).
#include <atomic>
#include <chrono>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tuner/slurm.h"
#include "tuner/slurm_client.h"
#include "tuner/slurm_state.h"
#include "tuner/sweep.h"

namespace memfront {

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

}  // namespace memfront
