#pragma once
// How far a trial's step time can be trusted (the timing protocol, README
// "Step time you can trust"). A step time measures the configuration only when
// every rank had its core to itself while it stepped; what each rank saw of
// the machine is recorded beside the time, and one rule (assess_timing) turns
// it into a `contended` flag with its reason. A contended time is printed and
// kept, but flagged: the sweep measures it again (tuner/sweep.h) and the front
// says which times it could not trust.
//
// Counters come from the host probe (probes/host_probe.h): CPU time, the
// scheduler's run delay (ready to run, no CPU free) and involuntary context
// switches of the rank's threads over each timed step.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/strict_json.h"

namespace memfront {

// One rank, medians over its timed steps (seconds per step).
struct RankTiming {
  double cpu_s = 0;                     // CPU time of the rank's threads
  std::optional<double> run_delay_s;    // waiting for a CPU; none where the kernel keeps no schedstat
  double involuntary_switches = 0;      // per step
  int affinity_cpus = 0;                // CPUs the rank could run on while it stepped
  bool bound = false;                   // bound to cores of its own by the trial (train.threads of them)

  friend bool operator==(const RankTiming&, const RankTiming&) = default;
};

// The whole trial.
struct TimingQuality {
  int cores = 0;                        // online CPUs of the machine the ranks ran on
  int ranks_on_machine = 0;             // ranks that shared it (the world, on one host)
  bool oversubscribed = false;          // more ranks than cores
  bool bound = false;                   // every rank bound to cores of its own
  std::optional<double> load_start;     // 1-minute load average before the first step (rank 0)
  std::optional<double> load_end;       // and after the last
  std::optional<double> run_delay_fraction;  // max over ranks of run delay ÷ step time
  double cpu_per_wall = 0;              // min over ranks of CPU time ÷ step time (comm waits sleep, so < 1 is not alone a sign)
  double step_spread = 0;               // (p90 - p10) ÷ median of the timed steps (rank 0)
  // The step less the longest any rank waited for a CPU in it (medians): what
  // the step would take on a quiet machine, the configuration's own time when
  // another process took turns on its cores. None without schedstat (and in
  // records written before it).
  std::optional<double> quiet_step_s;
  bool contended = false;
  std::string reason;                   // why contended, one line; empty otherwise

  friend bool operator==(const TimingQuality&, const TimingQuality&) = default;
};

// Whether `ranks` ranks of `threads` BLAS threads each outnumber a machine's
// cores: then they take turns, and each one's wait is timed as work.
constexpr bool oversubscribes(int ranks, int threads, int cores) { return cores > 0 && ranks * threads > cores; }

// A rank is judged to have waited for a CPU when its run delay passes this
// share of its step time: a quiet machine gives well under 1%.
inline constexpr double kContendedRunDelayFraction = 0.05;

// What rank 0 knows when it judges the trial.
struct TimingEvidence {
  int cores = 0;                       // of rank 0's machine
  int ranks_on_machine = 0;            // ranks that ran on rank 0's machine
  int threads_per_rank = 1;            // train.threads
  std::vector<RankTiming> ranks;       // every rank's medians
  double step_median_s = 0;            // rank 0's timed steps
  double step_p10_s = 0, step_p90_s = 0;
  std::optional<double> load_start, load_end;
};

// The one rule: contended when the ranks' threads outnumber the cores, or any rank
// waited for a CPU longer than kContendedRunDelayFraction of its step.
TimingQuality assess_timing(const TimingEvidence& evidence);

// One line for summaries: "timing     trusted: ..." or "timing     CONTENDED: <reason>; ...".
std::string timing_line(const TimingQuality& timing);

nlohmann::json to_json(const RankTiming& timing);
nlohmann::json to_json(const TimingQuality& timing);
// Strict readers of what to_json writes (every member, nothing else).
RankTiming rank_timing_from_json(const JsonField& field);
TimingQuality timing_quality_from_json(const JsonField& field);

}  // namespace memfront
