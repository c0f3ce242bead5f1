// Search strategies on a small space with synthetic measurements: what each
// proposes, in what order, and what halving and NSGA-II keep.
#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/config.h"
#include "tuner/search.h"
#include "tuner/study.h"

using namespace memfront;
using nlohmann::json;

namespace {

Study study_with(const std::string& strategy, json search_extra = json::object(), json constraints = json::array()) {
  json search = {{"strategy", strategy}, {"seed", 7}};
  search.update(search_extra);
  json spec = {
      {"study", "search-test"},
      {"base", {{"model", {{"vocab", 64}, {"seq", 16}, {"width", 32}, {"heads", 2}, {"layers", 4}}}}},
      {"space",
       {{"checkpoint.every", {0, 1, 2, 4}},
        {"precision.activations", {"fp32", "bf16", "int8"}},
        {"topk.attention", {0, 4, 8}}}},
      {"constraints", constraints},
      {"objectives", {{{"metric", "peak_mem"}, {"goal", "min"}}, {{"metric", "step_time"}, {"goal", "min"}}}},
      {"steps", 27},
      {"search", search},
  };
  return parse_study(spec, "search-test.json");
}

// Memory falls with checkpointing and narrower activations; time rises with
// checkpointing: a real trade-off with a known front.
TrialRecord synthetic(const Candidate& c, int steps) {
  TrialRecord r;
  r.id = config_id(c.config);
  r.config = c.config;
  r.config.train.steps = steps;
  TrialMetrics m;
  const double every = c.config.checkpoint.every == 0 ? 8 : c.config.checkpoint.every;
  const double width = c.config.precision.activations == DType::fp32 ? 4 : c.config.precision.activations == DType::bf16 ? 2 : 1.1;
  m.peak_total_max = static_cast<uint64_t>(1000 * every * width + 10 * c.config.topk.attention);
  m.step_time_s.median = 1.0 / every + 0.01 * width + 0.001 * c.config.topk.attention;
  m.step_time_s.count = steps;
  r.metrics = m;
  return r;
}

std::vector<Proposal> run_all(SearchStrategy& strategy) {
  std::vector<Proposal> all;
  for (auto batch = strategy.next(); !batch.empty(); batch = strategy.next()) {
    for (const Proposal& p : batch) {
      all.push_back(p);
      strategy.tell(p, synthetic(p.candidate, p.steps));
    }
  }
  return all;
}

// The grid indices of the proposals' points, in proposal order.
std::vector<uint64_t> candidates_of(const std::vector<Proposal>& proposals) {
  std::vector<uint64_t> out;
  for (const Proposal& p : proposals) out.push_back(p.candidate.index);
  return out;
}

}  // namespace

TEST(Search, GridProposesEveryCandidateInOrderAtFullSteps) {
  Study study = study_with("grid", json::object(), {"checkpoint.every == 0 -> topk.attention == 0"});
  const auto candidates = enumerate_space(study);
  EXPECT_EQ(candidates.size(), 3u * 3 * 3 + 3);  // every = 0 keeps dense attention only
  auto strategy = make_strategy(study, std::nullopt);
  const auto proposals = run_all(*strategy);
  ASSERT_EQ(proposals.size(), candidates.size());
  for (size_t i = 0; i < proposals.size(); ++i) {
    EXPECT_EQ(proposals[i].candidate.index, candidates[i].index);
    EXPECT_EQ(proposals[i].candidate.config, candidates[i].config);
    EXPECT_EQ(proposals[i].steps, 27);
  }
  auto limited = make_strategy(study, 5);
  EXPECT_EQ(run_all(*limited).size(), 5u);
}

TEST(Search, RandomIsSeededAndNeverRepeats) {
  Study a = study_with("random"), b = study_with("random"), c = study_with("random", {{"seed", 8}});
  const auto first = candidates_of(run_all(*make_strategy(a, 12)));
  const auto again = candidates_of(run_all(*make_strategy(b, 12)));
  const auto other = candidates_of(run_all(*make_strategy(c, 12)));
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
  EXPECT_EQ(std::set<uint64_t>(first.begin(), first.end()).size(), 12u);
  // Without a budget, every candidate once.
  const auto everything = candidates_of(run_all(*make_strategy(a, std::nullopt)));
  EXPECT_EQ(std::set<uint64_t>(everything.begin(), everything.end()).size(), enumerate_space(a).size());
}

TEST(Search, HalvingRunsLongerRoundsOnTheNonDominated) {
  Study study = study_with("halving", {{"halving", {{"min_steps", 3}, {"eta", 3}}}});
  const auto candidates = enumerate_space(study);
  auto strategy = make_strategy(study, std::nullopt);
  std::vector<std::vector<Proposal>> rounds;
  for (auto batch = strategy->next(); !batch.empty(); batch = strategy->next()) {
    rounds.push_back(batch);
    for (const Proposal& p : batch) strategy->tell(p, synthetic(p.candidate, p.steps));
  }
  // Steps 3, 9, 27; each round a third (rounded up) of the one before.
  ASSERT_EQ(rounds.size(), 3u);
  EXPECT_EQ(rounds[0].size(), candidates.size());
  EXPECT_EQ(rounds[1].size(), 12u);
  EXPECT_EQ(rounds[2].size(), 4u);
  EXPECT_EQ(rounds[0][0].steps, 3);
  EXPECT_EQ(rounds[1][0].steps, 9);
  EXPECT_EQ(rounds[2][0].steps, 27);
  // The second round holds the whole Pareto front of the first.
  std::vector<ObjectivePoint> points;
  for (const Proposal& p : rounds[0]) {
    points.push_back(*objective_point(synthetic(p.candidate, p.steps), study.objectives));
  }
  std::set<uint64_t> promoted;
  for (const Proposal& p : rounds[1]) promoted.insert(p.candidate.index);
  for (size_t i : pareto_front(points)) EXPECT_TRUE(promoted.contains(rounds[0][i].candidate.index)) << i;
}

TEST(Search, HalvingFitsItsRoundsIntoTheBudget) {
  Study study = study_with("halving", {{"halving", {{"min_steps", 3}, {"eta", 3}}}});
  const auto proposals = run_all(*make_strategy(study, 20));
  EXPECT_EQ(proposals.size(), 20u);  // 14 + 5 + 2 = 21 would not fit; 13 + 5 + 2 = 20 does
}

TEST(Search, Nsga2IsSeededStaysInBudgetAndNeverRepeats) {
  Study study = study_with("nsga2", {{"nsga2", {{"population", 6}}}});
  const auto first = candidates_of(run_all(*make_strategy(study, 30)));
  const auto again = candidates_of(run_all(*make_strategy(study, 30)));
  EXPECT_EQ(first, again);
  EXPECT_EQ(first.size(), 30u);
  EXPECT_EQ(std::set<uint64_t>(first.begin(), first.end()).size(), 30u);
  // With the whole space as budget it ends having tried everything once.
  const auto everything = candidates_of(run_all(*make_strategy(study, std::nullopt)));
  EXPECT_EQ(everything.size(), enumerate_space(study).size());
  EXPECT_EQ(std::set<uint64_t>(everything.begin(), everything.end()).size(), everything.size());
}

TEST(Search, SelectionPutsFeasibleFrontFirstAndFailuresLast) {
  json spec = {{"study", "s"},
               {"space", {{"checkpoint.every", {0, 1}}}},
               {"objectives", {{{"metric", "peak_mem"}}, {{"metric", "step_time"}}}},
               {"outcome_constraints", {"peak_mem <= 5000"}}};
  Study study = parse_study(spec, "s.json");
  auto make = [](uint64_t mem, double time, TrialStatus status = TrialStatus::ok) {
    TrialRecord r;
    r.id = "x";
    r.status = status;
    TrialMetrics m;
    m.peak_total_max = mem;
    m.step_time_s.median = time;
    m.step_time_s.count = 1;
    r.metrics = m;
    return r;
  };
  const TrialRecord front = make(1000, 2.0), dominated = make(2000, 3.0), infeasible = make(9000, 0.1),
                    failed = make(1, 0.01, TrialStatus::failed);
  const auto scores = selection_scores({&failed, &infeasible, &dominated, &front}, study);
  EXPECT_LT(scores[3], scores[2]);  // front before dominated
  EXPECT_LT(scores[2], scores[1]);  // feasible before infeasible, however fast
  EXPECT_LT(scores[1], scores[0]);  // failures last
  EXPECT_TRUE(meets_outcome_constraints(front, study));
  EXPECT_FALSE(meets_outcome_constraints(infeasible, study));
  EXPECT_FALSE(objective_point(failed, study.objectives));
}

TEST(Search, ShuffledOrderGivesEveryNumberOnceInASeededOrder) {
  for (uint64_t size : {1u, 2u, 7u, 64u, 1000u}) {
    ShuffledOrder order(size, 3);
    std::vector<uint64_t> given;
    while (const auto next = order.next()) given.push_back(*next);
    ASSERT_EQ(given.size(), size);
    std::vector<uint64_t> sorted = given;
    std::sort(sorted.begin(), sorted.end());
    for (uint64_t i = 0; i < size; ++i) EXPECT_EQ(sorted[i], i);
    if (size >= 64) {
      EXPECT_NE(given, sorted) << "not shuffled";
      std::vector<uint64_t> other;
      ShuffledOrder reseeded(size, 4);
      while (const auto next = reseeded.next()) other.push_back(*next);
      EXPECT_NE(given, other) << "the seed changes nothing";
    }
  }
}

TEST(Search, PointsAndGridIndicesCorrespond) {
  const Study study = study_with("grid");
  const CandidateSpace space(study);
  EXPECT_EQ(space.size(), 36u);
  EXPECT_EQ(space.point_at(0), (Point{0, 0, 0}));
  EXPECT_EQ(space.point_at(1), (Point{0, 0, 1}));  // the last knob varies fastest
  EXPECT_EQ(space.point_at(35), (Point{3, 2, 2}));
  for (uint64_t i = 0; i < space.size(); ++i) EXPECT_EQ(space.index_of(space.point_at(i)), i);
}

// A space of 10^8 points is neither listed nor made into configs before the
// first proposal: every strategy proposes at once, and the configs it
// proposes are distinct points of the space that pass the constraints.
TEST(Search, AHugeSpaceIsSampledWithoutBeingEnumerated) {
  for (const std::string strategy : {"grid", "random", "halving", "nsga2"}) {
    json spec = {{"study", "huge"},
                 {"space", {{"batch.micro", {{"range", {1, 10000}}, {"step", 1}}},
                            {"batch.accum", {{"range", {1, 10000}}, {"step", 1}}}}},
                 {"constraints", {"batch.micro * batch.accum % 2 == 0"}},
                 {"objectives", {{{"metric", "peak_mem"}}, {{"metric", "step_time"}}}},
                 {"search", {{"strategy", strategy}, {"budget", {{"trials", 20}}}, {"halving", {{"min_steps", 4}}}}}};
    const Study study = parse_study(spec, "huge.json");
    ASSERT_EQ(space_size(study), 100000000u);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<Proposal> proposals = run_all(*make_strategy(study, study.search.budget_trials));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 5) << strategy;
    EXPECT_LE(proposals.size(), 20u) << strategy;
    EXPECT_GE(proposals.size(), 10u) << strategy;
    std::set<std::string> ids;
    for (const Proposal& p : proposals) {
      EXPECT_EQ(p.candidate.config.batch.micro * p.candidate.config.batch.accum % 2, 0) << strategy;
      if (p.steps == study.steps) ids.insert(config_id(p.candidate.config));
    }
    if (strategy != "halving") {
      EXPECT_EQ(ids.size(), proposals.size()) << strategy;
    }
  }
}
