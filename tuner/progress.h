#pragma once
// What a sweep shows while it runs. On a terminal: one status line, redrawn
// in place and fitted to the terminal's width (a wrapped line would scroll
// instead of redrawing), whose clock moves while a trial runs. Elsewhere: one
// line per trial as it settles.
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>

#include "core/results.h"
#include "tuner/study.h"

namespace memfront {

// "12s", "3m05s", "1h02m".
std::string duration_text(double seconds);

// The timing of an ok record whose step time measured the machine's load, else null.
const TimingQuality* contended_timing(const TrialRecord& record);

// The width of the terminal on standard error; 80 when it has none.
int stderr_columns();

class SweepProgress {
 public:
  struct Options {
    bool bar = false;                // the redrawn line (a terminal), else one line per trial
    std::optional<int> expected;     // trials the sweep will settle, when known
    std::function<int()> columns = stderr_columns;
    std::function<double()> now;     // seconds on a steady clock; default the steady clock
    double tick_s = 1.0;             // how often the line is redrawn while a trial runs
  };
  SweepProgress(Options options, std::ostream& log);
  static Options options(bool bar, std::optional<int> expected) {
    Options o;
    o.bar = bar;
    o.expected = expected;
    return o;
  }
  ~SweepProgress();
  SweepProgress(const SweepProgress&) = delete;
  SweepProgress& operator=(const SweepProgress&) = delete;

  // A trial was launched: its clock starts and the line shows it running.
  void started(const std::string& id);

  // How a configuration got its record.
  enum class How { ran, looked_up, recorded, pruned };
  // A configuration has its record; `done` counts the configurations settled
  // so far. Only trials that ran take time: the ETA is the mean time of
  // those, times the configurations left, so records found in the results
  // file (--resume) do not make it look short.
  void settled(const TrialRecord& record, How how, bool is_reference, int done, int failed, int pruned,
               size_t front, const Study& study);

  // Ends the line on a terminal; stops the redraws.
  void finish();

 private:
  void draw_locked();
  std::string status_locked(int columns) const;

  Options options_;
  std::ostream& log_;
  double start_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  int done_ = 0, failed_ = 0, pruned_ = 0;
  size_t front_ = 0;
  int ran_ = 0;
  double ran_seconds_ = 0;           // spent in trials that ran
  std::optional<std::string> running_;  // the trial launched and not yet settled
  double running_since_ = 0;
  std::thread ticker_;               // redraws the line while a trial runs (bar only)
};

}  // namespace memfront
