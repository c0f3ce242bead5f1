// Search strategies on a small space with synthetic measurements: what each
// proposes, in what order, and what halving and NSGA-II keep.
#include <algorithm>
#include <set>

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

std::vector<Proposal> run_all(SearchStrategy& strategy, const std::vector<Candidate>& candidates) {
  std::vector<Proposal> all;
  for (auto batch = strategy.next(); !batch.empty(); batch = strategy.next()) {
    for (const Proposal& p : batch) {
      all.push_back(p);
      strategy.tell(p, synthetic(candidates[p.candidate], p.steps));
    }
  }
  return all;
}

std::vector<size_t> candidates_of(const std::vector<Proposal>& proposals) {
  std::vector<size_t> out;
  for (const Proposal& p : proposals) out.push_back(p.candidate);
  return out;
}

}  // namespace

TEST(Search, GridProposesEveryCandidateInOrderAtFullSteps) {
  Study study = study_with("grid", json::object(), {"checkpoint.every == 0 -> topk.attention == 0"});
  const auto candidates = enumerate_space(study);
  EXPECT_EQ(candidates.size(), 3u * 3 * 3 + 3);  // every = 0 keeps dense attention only
  auto strategy = make_strategy(study, candidates, std::nullopt);
  const auto proposals = run_all(*strategy, candidates);
  ASSERT_EQ(proposals.size(), candidates.size());
  for (size_t i = 0; i < proposals.size(); ++i) {
    EXPECT_EQ(proposals[i].candidate, i);
    EXPECT_EQ(proposals[i].steps, 27);
  }
  auto limited = make_strategy(study, candidates, 5);
  EXPECT_EQ(run_all(*limited, candidates).size(), 5u);
}

TEST(Search, RandomIsSeededAndNeverRepeats) {
  Study a = study_with("random"), b = study_with("random"), c = study_with("random", {{"seed", 8}});
  const auto candidates = enumerate_space(a);
  const auto first = candidates_of(run_all(*make_strategy(a, candidates, 12), candidates));
  const auto again = candidates_of(run_all(*make_strategy(b, candidates, 12), candidates));
  const auto other = candidates_of(run_all(*make_strategy(c, candidates, 12), candidates));
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
  EXPECT_EQ(std::set<size_t>(first.begin(), first.end()).size(), 12u);
}

TEST(Search, HalvingRunsLongerRoundsOnTheNonDominated) {
  Study study = study_with("halving", {{"halving", {{"min_steps", 3}, {"eta", 3}}}});
  const auto candidates = enumerate_space(study);
  auto strategy = make_strategy(study, candidates, std::nullopt);
  std::vector<std::vector<Proposal>> rounds;
  for (auto batch = strategy->next(); !batch.empty(); batch = strategy->next()) {
    rounds.push_back(batch);
    for (const Proposal& p : batch) strategy->tell(p, synthetic(candidates[p.candidate], p.steps));
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
    points.push_back(*objective_point(synthetic(candidates[p.candidate], p.steps), study.objectives));
  }
  std::set<size_t> promoted;
  for (const Proposal& p : rounds[1]) promoted.insert(p.candidate);
  for (size_t i : pareto_front(points)) EXPECT_TRUE(promoted.contains(rounds[0][i].candidate)) << i;
}

TEST(Search, HalvingFitsItsRoundsIntoTheBudget) {
  Study study = study_with("halving", {{"halving", {{"min_steps", 3}, {"eta", 3}}}});
  const auto candidates = enumerate_space(study);
  const auto proposals = run_all(*make_strategy(study, candidates, 20), candidates);
  EXPECT_EQ(proposals.size(), 20u);  // 14 + 5 + 2 = 21 would not fit; 13 + 5 + 2 = 20 does
}

TEST(Search, Nsga2IsSeededStaysInBudgetAndNeverRepeats) {
  Study study = study_with("nsga2", {{"nsga2", {{"population", 6}}}});
  const auto candidates = enumerate_space(study);
  const auto first = candidates_of(run_all(*make_strategy(study, candidates, 30), candidates));
  const auto again = candidates_of(run_all(*make_strategy(study, candidates, 30), candidates));
  EXPECT_EQ(first, again);
  EXPECT_EQ(first.size(), 30u);
  EXPECT_EQ(std::set<size_t>(first.begin(), first.end()).size(), 30u);
  // With the whole space as budget it ends having tried everything once.
  const auto everything = candidates_of(run_all(*make_strategy(study, candidates, std::nullopt), candidates));
  EXPECT_EQ(std::set<size_t>(everything.begin(), everything.end()).size(), candidates.size());
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
