// The sweep's progress: a terminal line that fits the terminal and moves
// while a trial runs, an ETA from the trials that ran, and what each line
// says a record came from.
#include "tuner/progress.h"

#include <atomic>
#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace memfront {
namespace {

TrialRecord record_of(const std::string& id) {
  TrialRecord record;
  record.id = id;
  record.status = TrialStatus::ok;
  return record;
}

std::vector<std::string> redraws(const std::string& log) {
  std::vector<std::string> lines;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line, '\r');) {
    if (!line.empty() && line != "\n") lines.push_back(line);
  }
  return lines;
}

// A clock the test moves.
struct FakeClock {
  std::atomic<double> seconds{0};
  std::function<double()> now() {
    return [this] { return seconds.load(); };
  }
};

TEST(SweepProgress, LineFitsTheTerminal) {
  FakeClock clock;
  std::ostringstream log;
  SweepProgress::Options options = SweepProgress::options(true, 25);
  options.columns = [] { return 50; };
  options.now = clock.now();
  options.tick_s = 3600;  // no redraw but those of the calls below
  const Study study{};
  {
    SweepProgress progress(options, log);
    for (int i = 1; i <= 3; ++i) {
      progress.started("0123456789abcdef");
      clock.seconds = clock.seconds + 100;
      progress.settled(record_of("0123456789abcdef"), SweepProgress::How::ran, false, i, 1, 2, 3, study);
    }
  }
  const std::vector<std::string> lines = redraws(log.str());
  ASSERT_GE(lines.size(), 6u);
  for (const std::string& line : lines) {
    std::string text = line;
    if (!text.empty() && text.back() == '\n') text.pop_back();
    EXPECT_EQ(text.size(), 49u) << "'" << text << "': one column short of the width, padded to clear the last line";
  }
  EXPECT_EQ(lines.back().rfind("[", 0), 0u);
}

TEST(SweepProgress, ClockMovesWhileATrialRuns) {
  FakeClock clock;
  std::ostringstream log;
  SweepProgress::Options options = SweepProgress::options(true, 4);
  options.columns = [] { return 200; };
  options.now = clock.now();
  options.tick_s = 0.01;
  SweepProgress progress(options, log);
  progress.started("0123456789abcdef");
  clock.seconds = 42;
  // The ticker redraws without any call: the running trial's clock shows
  // 42 s. (The log is read once the ticker has stopped: it writes to it.)
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  progress.finish();
  EXPECT_NE(log.str().find("running 0123456789abcdef 42s"), std::string::npos) << log.str();
}

// After --resume, the records found in the file settle at once: the ETA is
// the time of the trials that ran, times the configurations left.
TEST(SweepProgress, EtaLeavesOutRecordsFoundInTheFile) {
  FakeClock clock;
  std::ostringstream log;
  SweepProgress::Options options = SweepProgress::options(true, 12);
  options.columns = [] { return 200; };
  options.now = clock.now();
  options.tick_s = 3600;
  const Study study{};
  SweepProgress progress(options, log);
  for (int i = 1; i <= 10; ++i) {
    progress.settled(record_of(std::to_string(i)), SweepProgress::How::recorded, false, i, 0, 0, 1, study);
  }
  progress.started("0123456789abcdef");
  clock.seconds = 30;
  progress.settled(record_of("0123456789abcdef"), SweepProgress::How::ran, false, 11, 0, 0, 1, study);
  progress.finish();
  const std::vector<std::string> lines = redraws(log.str());
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("11/12 trials"), std::string::npos) << lines.back();
  EXPECT_NE(lines.back().find("ETA 30s"), std::string::npos) << lines.back();
}

TEST(SweepProgress, LinesSayWhereEachRecordCameFrom) {
  std::ostringstream log;
  const Study study{};
  SweepProgress progress(SweepProgress::options(false, 3), log);
  progress.settled(record_of("a"), SweepProgress::How::looked_up, true, 1, 0, 0, 1, study);
  progress.settled(record_of("b"), SweepProgress::How::recorded, false, 2, 0, 0, 1, study);
  progress.settled(record_of("c"), SweepProgress::How::ran, false, 3, 0, 0, 1, study);
  progress.finish();
  EXPECT_EQ(log.str(), "[1/3] a ok (looked up, reference)\n[2/3] b ok (recorded)\n[3/3] c ok (ran)\n");
}

}  // namespace
}  // namespace memfront
