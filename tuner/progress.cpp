#include "tuner/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "tuner/metrics.h"

namespace memfront {

std::string duration_text(double seconds) {
  char text[32];
  const int s = static_cast<int>(std::lround(seconds));
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%dh%02dm", s / 3600, s / 60 % 60);
  } else if (s >= 60) {
    std::snprintf(text, sizeof text, "%dm%02ds", s / 60, s % 60);
  } else {
    std::snprintf(text, sizeof text, "%ds", s);
  }
  return text;
}

const TimingQuality* contended_timing(const TrialRecord& record) {
  if (record.status != TrialStatus::ok || !record.metrics || !record.metrics->timing) return nullptr;
  return record.metrics->timing->contended ? &*record.metrics->timing : nullptr;
}

int stderr_columns() {
  winsize size{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// "3/25", or "3" when the total is not known.
std::string count_text(int done, const std::optional<int>& expected) {
  std::string text = std::to_string(done);
  if (expected) {
    text += '/';
    text += std::to_string(*expected);
  }
  return text;
}

const char* label(SweepProgress::How how) {
  switch (how) {
    case SweepProgress::How::ran: return "ran";
    case SweepProgress::How::looked_up: return "looked up";
    case SweepProgress::How::recorded: return "recorded";
    case SweepProgress::How::pruned: return "pruned by the cost model";
  }
  return "";
}

}  // namespace

SweepProgress::SweepProgress(Options options, std::ostream& log) : options_(std::move(options)), log_(log) {
  if (!options_.now) options_.now = steady_seconds;
  start_ = options_.now();
  if (options_.bar) {
    ticker_ = std::thread([this] {
      std::unique_lock lock(mutex_);
      while (!wake_.wait_for(lock, std::chrono::duration<double>(options_.tick_s), [this] { return stopping_; })) {
        if (running_) draw_locked();
      }
    });
  }
}

SweepProgress::~SweepProgress() { finish(); }

void SweepProgress::started(const std::string& id) {
  std::lock_guard lock(mutex_);
  running_ = id;
  running_since_ = options_.now();
  if (options_.bar) draw_locked();
}

void SweepProgress::settled(const TrialRecord& record, How how, bool is_reference, int done, int failed,
                            int pruned, size_t front, const Study& study) {
  std::lock_guard lock(mutex_);
  done_ = done;
  failed_ = failed;
  pruned_ = pruned;
  front_ = front;
  if (how == How::ran && running_) {
    ++ran_;
    ran_seconds_ += options_.now() - running_since_;
  }
  if (how == How::ran || how == How::looked_up) running_.reset();
  if (options_.bar) {
    draw_locked();
    return;
  }
  // Appended piece by piece: g++ 12 misreports "literal" + std::string&& (-Wrestrict).
  std::string line = "[";
  line += count_text(done, options_.expected);
  line += "] " + record.id + " " + std::string(to_string(record.status)) + " (" + label(how) +
          (is_reference ? ", reference" : "") + ")";
  for (const Objective& objective : study.objectives) {
    if (auto value = metric_value(record, objective.metric)) {
      line += "  " + objective.metric + " " + format_metric(objective.metric, *value);
    }
  }
  if (!record.error.empty()) line += "  " + record.error;
  if (record.provenance.contains("remeasured")) {
    line += "  (measured again: " + std::to_string(record.provenance["remeasured"].size()) + " contended run(s))";
  }
  if (const TimingQuality* timing = contended_timing(record)) line += "  CONTENDED: " + timing->reason;
  log_ << line << "\n" << std::flush;
}

void SweepProgress::finish() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  if (options_.bar) log_ << "\n" << std::flush;
}

std::string SweepProgress::status_locked(int columns) const {
  const double now = options_.now();
  const std::optional<int>& expected = options_.expected;
  // The bar shrinks before anything else goes.
  const int bar_width = std::clamp(columns - 70, 8, 24);
  const int filled = expected ? std::min(bar_width, done_ * bar_width / std::max(1, *expected)) : 0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(static_cast<size_t>(bar_width), '.');
  std::string text = "[" + bar + "] ";
  text += count_text(done_, expected);
  text += " trials  " + std::to_string(failed_) + " failed  " + std::to_string(pruned_) + " pruned  front " +
          std::to_string(front_) + "  " + duration_text(now - start_);
  if (expected && ran_ > 0 && done_ < *expected) {
    text += "  ETA " + duration_text(ran_seconds_ / ran_ * (*expected - done_));
  }
  if (running_) text += "  running " + *running_ + " " + duration_text(now - running_since_);
  return text;
}

void SweepProgress::draw_locked() {
  // One column short of the width: a line that fills it wraps on some
  // terminals, and then "\r" no longer returns to its start.
  const size_t fit = static_cast<size_t>(std::max(10, options_.columns() - 1));
  std::string text = status_locked(static_cast<int>(fit) + 1);
  text.resize(fit, ' ');  // cut to the width, or padded to clear what the last line left
  log_ << "\r" << text << std::flush;
}

}  // namespace memfront
