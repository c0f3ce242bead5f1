#include "core/timing.h"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/strict_json.h"

namespace memfront {

using nlohmann::json;

namespace {

std::string percent(double fraction) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.0f%%", fraction * 100);
  return text;
}

json or_null(const std::optional<double>& value) { return value ? json(*value) : json(nullptr); }

}  // namespace

TimingQuality assess_timing(const TimingEvidence& e) {
  TimingQuality q;
  q.cores = e.cores;
  q.ranks_on_machine = e.ranks_on_machine;
  q.oversubscribed = oversubscribes(e.ranks_on_machine, e.threads_per_rank, e.cores);
  q.bound = !e.ranks.empty() &&
            std::all_of(e.ranks.begin(), e.ranks.end(), [](const RankTiming& r) { return r.bound; });
  q.load_start = e.load_start;
  q.load_end = e.load_end;
  q.step_spread = e.step_median_s > 0 ? (e.step_p90_s - e.step_p10_s) / e.step_median_s : 0;

  int most_delayed = -1;
  double longest_delay = 0;
  bool every_delay_known = !e.ranks.empty();
  for (size_t r = 0; r < e.ranks.size() && e.step_median_s > 0; ++r) {
    const double cpu_per_wall = e.ranks[r].cpu_s / e.step_median_s;
    q.cpu_per_wall = r == 0 ? cpu_per_wall : std::min(q.cpu_per_wall, cpu_per_wall);
    if (!e.ranks[r].run_delay_s) {
      every_delay_known = false;
      continue;
    }
    longest_delay = std::max(longest_delay, *e.ranks[r].run_delay_s);
    const double fraction = *e.ranks[r].run_delay_s / e.step_median_s;
    if (!q.run_delay_fraction || fraction > *q.run_delay_fraction) {
      q.run_delay_fraction = fraction;
      most_delayed = static_cast<int>(r);
    }
  }

  if (every_delay_known && e.step_median_s > 0) q.quiet_step_s = std::max(e.step_median_s - longest_delay, 0.0);

  if (q.oversubscribed) {
    q.contended = true;
    q.reason = std::to_string(q.ranks_on_machine) + " ranks" +
               (e.threads_per_rank > 1 ? " x " + std::to_string(e.threads_per_rank) + " threads" : "") + " on " +
               std::to_string(q.cores) + " cores: ranks take turns, and waiting for a core is timed as work";
  } else if (q.run_delay_fraction && *q.run_delay_fraction > kContendedRunDelayFraction) {
    q.contended = true;
    q.reason = "rank " + std::to_string(most_delayed) + " waited for a CPU " + percent(*q.run_delay_fraction) +
               " of its step: another process had its core";
  }
  return q;
}

std::string timing_line(const TimingQuality& q) {
  std::string line = q.contended ? "timing     CONTENDED (" + q.reason + "): " : "timing     trusted: ";
  line += q.run_delay_fraction ? "run delay " + percent(*q.run_delay_fraction) + " of the step, "
                               : "run delay not available, ";
  line += "step spread " + percent(q.step_spread) + ", " + "ranks " + std::to_string(q.ranks_on_machine) + " on " +
          std::to_string(q.cores) + " cores" + (q.bound ? ", bound" : ", not bound");
  if (q.load_start && q.load_end) {
    char load[64];
    std::snprintf(load, sizeof(load), ", load %.2f -> %.2f", *q.load_start, *q.load_end);
    line += load;
  }
  if (q.contended && q.quiet_step_s) {
    char quiet[64];
    std::snprintf(quiet, sizeof(quiet), "; on a quiet machine about %.2f ms", *q.quiet_step_s * 1e3);
    line += quiet;
  }
  return line;
}

json to_json(const RankTiming& t) {
  return {{"cpu_s", t.cpu_s},
          {"run_delay_s", or_null(t.run_delay_s)},
          {"involuntary_switches", t.involuntary_switches},
          {"affinity_cpus", t.affinity_cpus},
          {"bound", t.bound}};
}

json to_json(const TimingQuality& q) {
  return {{"cores", q.cores},
          {"ranks_on_machine", q.ranks_on_machine},
          {"oversubscribed", q.oversubscribed},
          {"bound", q.bound},
          {"load_start", or_null(q.load_start)},
          {"load_end", or_null(q.load_end)},
          {"run_delay_fraction", or_null(q.run_delay_fraction)},
          {"cpu_per_wall", q.cpu_per_wall},
          {"step_spread", q.step_spread},
          {"quiet_step_s", or_null(q.quiet_step_s)},
          {"contended", q.contended},
          {"reason", q.reason}};
}

RankTiming rank_timing_from_json(const JsonField& o) {
  o.expect_object().only_keys({"cpu_s", "run_delay_s", "involuntary_switches", "affinity_cpus", "bound"});
  RankTiming t;
  t.cpu_s = o.non_negative_at("cpu_s");
  t.run_delay_s = o.optional_real_at("run_delay_s");
  t.involuntary_switches = o.non_negative_at("involuntary_switches");
  t.affinity_cpus = o.non_negative_int_at("affinity_cpus");
  t.bound = o.bool_at("bound");
  return t;
}

TimingQuality timing_quality_from_json(const JsonField& o) {
  o.expect_object().only_keys({"cores", "ranks_on_machine", "oversubscribed", "bound", "load_start", "load_end",
                               "run_delay_fraction", "cpu_per_wall", "step_spread", "quiet_step_s", "contended",
                               "reason"});
  TimingQuality q;
  q.cores = o.non_negative_int_at("cores");
  q.ranks_on_machine = o.non_negative_int_at("ranks_on_machine");
  q.oversubscribed = o.bool_at("oversubscribed");
  q.bound = o.bool_at("bound");
  q.load_start = o.optional_real_at("load_start");
  q.load_end = o.optional_real_at("load_end");
  q.run_delay_fraction = o.optional_real_at("run_delay_fraction");
  q.cpu_per_wall = o.non_negative_at("cpu_per_wall");
  q.step_spread = o.non_negative_at("step_spread");
  if (o.has("quiet_step_s")) q.quiet_step_s = o.optional_real_at("quiet_step_s");
  q.contended = o.bool_at("contended");
  q.reason = o.string_at("reason");
  return q;
}

}  // namespace memfront
