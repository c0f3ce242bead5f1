// The timing protocol's one rule (core/timing.h): when a step time is flagged
// contended, and why; and the record's timing members read back strictly.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/timing.h"

using namespace memfront;

namespace {

RankTiming rank(double cpu_s, std::optional<double> run_delay_s, bool bound = true) {
  RankTiming r;
  r.cpu_s = cpu_s;
  r.run_delay_s = run_delay_s;
  r.affinity_cpus = 1;
  r.bound = bound;
  return r;
}

TimingEvidence quiet_two_ranks() {
  TimingEvidence e;
  e.cores = 4;
  e.ranks_on_machine = 2;
  e.ranks = {rank(0.010, 0.0001), rank(0.009, 0.0002)};
  e.step_median_s = 0.010;
  e.step_p10_s = 0.0098;
  e.step_p90_s = 0.0104;
  e.load_start = 2.0;
  e.load_end = 2.1;
  return e;
}

}  // namespace

TEST(Timing, AQuietBoundTrialIsTrusted) {
  const TimingQuality q = assess_timing(quiet_two_ranks());
  EXPECT_FALSE(q.contended);
  EXPECT_TRUE(q.reason.empty());
  EXPECT_FALSE(q.oversubscribed);
  EXPECT_TRUE(q.bound);
  ASSERT_TRUE(q.run_delay_fraction);
  EXPECT_NEAR(*q.run_delay_fraction, 0.02, 1e-12);  // the larger of the two ranks'
  EXPECT_NEAR(q.cpu_per_wall, 0.9, 1e-12);           // the smaller
  EXPECT_NEAR(q.step_spread, 0.06, 1e-12);
  EXPECT_NE(timing_line(q).find("trusted"), std::string::npos);
}

TEST(Timing, ARankThatWaitedForACpuMakesTheTrialContended) {
  TimingEvidence e = quiet_two_ranks();
  e.ranks[1].run_delay_s = 0.004;  // 40% of the step
  const TimingQuality q = assess_timing(e);
  EXPECT_TRUE(q.contended);
  EXPECT_NE(q.reason.find("rank 1 waited for a CPU 40%"), std::string::npos) << q.reason;
  EXPECT_NE(timing_line(q).find("CONTENDED"), std::string::npos);
  // Without the 4 ms rank 1 waited, the step would have taken 6 ms.
  ASSERT_TRUE(q.quiet_step_s);
  EXPECT_NEAR(*q.quiet_step_s, 0.006, 1e-12);
  EXPECT_NE(timing_line(q).find("on a quiet machine about 6.00 ms"), std::string::npos) << timing_line(q);
  TimingEvidence unknown = e;
  unknown.ranks[0].run_delay_s.reset();
  EXPECT_FALSE(assess_timing(unknown).quiet_step_s) << "one rank's wait unknown: no estimate";

  e.ranks[1].run_delay_s = kContendedRunDelayFraction * e.step_median_s * 0.99;  // just under the line
  EXPECT_FALSE(assess_timing(e).contended);
}

TEST(Timing, MoreRanksThanCoresIsContendedWhateverTheCountersSay) {
  TimingEvidence e = quiet_two_ranks();
  e.cores = 1;
  const TimingQuality q = assess_timing(e);
  EXPECT_TRUE(q.oversubscribed);
  EXPECT_TRUE(q.contended);
  EXPECT_NE(q.reason.find("2 ranks on 1 cores"), std::string::npos) << q.reason;

  e.cores = 4;
  e.threads_per_rank = 4;  // two ranks of four BLAS threads on four cores
  const TimingQuality threads = assess_timing(e);
  EXPECT_TRUE(threads.contended);
  EXPECT_NE(threads.reason.find("2 ranks x 4 threads on 4 cores"), std::string::npos) << threads.reason;
}

TEST(Timing, WithoutSchedstatTheRunDelayIsUnknownNotZero) {
  TimingEvidence e = quiet_two_ranks();
  for (RankTiming& r : e.ranks) r.run_delay_s.reset();
  e.ranks[0].bound = false;
  const TimingQuality q = assess_timing(e);
  EXPECT_FALSE(q.run_delay_fraction);
  EXPECT_FALSE(q.contended);
  EXPECT_FALSE(q.bound);
  EXPECT_EQ(timing_quality_from_json(JsonField(to_json(q), "t")).run_delay_fraction, std::nullopt);
}

TEST(Timing, RoundTripsThroughJsonAndReadsStrictly) {
  TimingEvidence e = quiet_two_ranks();
  e.ranks[1].run_delay_s = 0.004;
  const TimingQuality q = assess_timing(e);
  EXPECT_EQ(timing_quality_from_json(JsonField(to_json(q), "t", "/metrics/timing")), q);
  EXPECT_EQ(rank_timing_from_json(JsonField(to_json(e.ranks[0]), "t")), e.ranks[0]);

  nlohmann::json broken = to_json(q);
  broken["contended"] = "yes";
  try {
    timing_quality_from_json(JsonField(broken, "r.jsonl:3", "/metrics/timing"));
    FAIL() << "a string for a flag was accepted";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("r.jsonl:3: /metrics/timing/contended: expected a boolean, got string \"yes\""),
              std::string::npos)
        << error.what();
  }
  nlohmann::json extra = to_json(e.ranks[0]);
  extra["steal"] = 1;
  EXPECT_THROW(rank_timing_from_json(JsonField(extra, "t")), InputError);
}
