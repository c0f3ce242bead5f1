#include "tuner/search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "tuner/metrics.h"

namespace memfront {

ObjectiveScorer::ObjectiveScorer(const std::vector<Objective>& objectives) {
  for (const Objective& objective : objectives) {
    objectives_.emplace_back(resolve_metric_or_throw(objective.metric, "objective"), objective.goal);
  }
}

std::optional<ObjectivePoint> ObjectiveScorer::operator()(const TrialRecord& record) const {
  if (record.status != TrialStatus::ok) return std::nullopt;
  ObjectivePoint point;
  for (const auto& [metric, goal] : objectives_) {
    const std::optional<double> value = metric(record);
    if (!value || !std::isfinite(*value)) return std::nullopt;
    point.push_back(goal == Goal::minimize ? *value : -*value);
  }
  return point;
}

std::optional<ObjectivePoint> objective_point(const TrialRecord& record, const std::vector<Objective>& objectives) {
  return ObjectiveScorer(objectives)(record);
}

bool meets_outcome_constraints(const TrialRecord& record, const Study& study) {
  // A record that lacks a metric a constraint names (no metrics at all) does not meet it.
  return std::ranges::all_of(study.outcome_constraints,
                             [&](const RecordExpr& constraint) { return constraint.holds(record).value_or(false); });
}

std::vector<double> selection_scores(const std::vector<const TrialRecord*>& records, const Study& study) {
  // Score = tier * big + non-dominated rank - crowding share: lower is better.
  constexpr double kTier = 1e6;
  std::vector<double> scores(records.size(), 3 * kTier);
  const ObjectiveScorer score(study.objectives);
  for (int tier = 0; tier < 2; ++tier) {
    std::vector<ObjectivePoint> points;
    std::vector<size_t> members;
    for (size_t i = 0; i < records.size(); ++i) {
      auto point = score(*records[i]);
      if (!point) continue;
      const bool feasible = meets_outcome_constraints(*records[i], study);
      if (feasible == (tier == 0)) {
        points.push_back(*point);
        members.push_back(i);
      }
    }
    if (points.empty()) continue;
    const std::vector<int> ranks = nondominated_ranks(points);
    const std::vector<double> crowding = crowding_distances(points, ranks);
    for (size_t j = 0; j < members.size(); ++j) {
      // Crowding only orders points of one rank: map [0, inf] into (0, 0.5].
      const double spread = std::isinf(crowding[j]) ? 0.5 : 0.5 * crowding[j] / (1.0 + crowding[j]);
      scores[members[j]] = tier * kTier + ranks[j] - spread;
    }
  }
  return scores;
}

namespace {

// Indices 0..n-1 in a seeded random order.
std::vector<size_t> shuffled(size_t n, std::mt19937_64& rng) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

// grid and random: a fixed list, proposed in one batch.
class ListStrategy final : public SearchStrategy {
 public:
  ListStrategy(std::vector<size_t> order, int steps) {
    for (size_t c : order) pending_.push_back({c, steps});
  }
  std::vector<Proposal> next() override { return std::exchange(pending_, {}); }
  void tell(const Proposal&, const TrialRecord&) override {}

 private:
  std::vector<Proposal> pending_;
};

// Successive halving on the number of steps.
class HalvingStrategy final : public SearchStrategy {
 public:
  HalvingStrategy(const Study& study, size_t candidate_count, std::optional<int> budget) : study_(study) {
    const SearchSettings& s = study.search;
    // Round steps: min_steps, min_steps*eta, ... capped by (and ending at) the study's steps.
    for (int steps = std::min(s.halving_min_steps, study.steps); ; steps *= s.halving_eta) {
      steps_.push_back(std::min(steps, study.steps));
      if (steps >= study.steps) break;
    }
    // The largest first round whose rounds (each keeping ceil(n/eta)) fit the budget.
    auto total_for = [&](size_t first) {
      size_t total = 0, n = first;
      for (size_t r = 0; r < steps_.size(); ++r) {
        total += n;
        n = std::max<size_t>(1, (n + s.halving_eta - 1) / s.halving_eta);
      }
      return total;
    };
    size_t first = candidate_count;
    if (budget) {
      while (first > 1 && total_for(first) > static_cast<size_t>(*budget)) --first;
    }
    std::mt19937_64 rng(s.seed);
    std::vector<size_t> order = shuffled(candidate_count, rng);
    current_.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(first));
  }

  std::vector<Proposal> next() override {
    if (round_ > 0) {
      if (round_ >= steps_.size()) return {};
      promote();
    }
    if (round_ >= steps_.size()) return {};
    std::vector<Proposal> batch;
    for (size_t c : current_) batch.push_back({c, steps_[round_]});
    told_.clear();
    ++round_;
    return batch;
  }

  void tell(const Proposal& proposal, const TrialRecord& record) override { told_[proposal.candidate] = record; }

 private:
  // Keeps the best ceil(n/eta) of the round just run.
  void promote() {
    std::vector<const TrialRecord*> records;
    for (size_t c : current_) records.push_back(&told_.at(c));
    const std::vector<double> scores = selection_scores(records, study_);
    std::vector<size_t> order(current_.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
    const size_t keep = std::max<size_t>(1, (current_.size() + study_.search.halving_eta - 1) / study_.search.halving_eta);
    std::vector<size_t> kept;
    for (size_t i = 0; i < keep; ++i) kept.push_back(current_[order[i]]);
    current_ = kept;
  }

  const Study& study_;
  std::vector<int> steps_;
  size_t round_ = 0;
  std::vector<size_t> current_;
  std::map<size_t, TrialRecord> told_;
};

// NSGA-II over the knob-value indices of the study's candidates.
class Nsga2Strategy final : public SearchStrategy {
 public:
  Nsga2Strategy(const Study& study, const std::vector<Candidate>& candidates, std::optional<int> budget)
      : study_(study), candidates_(candidates), rng_(study.search.seed) {
    for (size_t i = 0; i < candidates.size(); ++i) index_of_[candidates[i].point] = i;
    population_size_ = std::min<size_t>(study.search.nsga2_population, candidates.size());
    budget_ = budget ? static_cast<size_t>(*budget) : candidates.size();
    budget_ = std::min(budget_, candidates.size());
  }

  std::vector<Proposal> next() override {
    if (proposed_.size() >= budget_) return {};
    std::vector<size_t> batch;
    if (population_.empty() && proposed_.empty()) {
      for (size_t c : shuffled(candidates_.size(), rng_)) {
        if (batch.size() == std::min(population_size_, budget_)) break;
        batch.push_back(c);
      }
    } else {
      select_survivors();
      const size_t wanted = std::min(population_size_, budget_ - proposed_.size());
      while (batch.size() < wanted) {
        std::optional<size_t> child = make_child(batch);
        if (!child) break;  // every candidate has been tried
        batch.push_back(*child);
      }
    }
    std::vector<Proposal> proposals;
    for (size_t c : batch) {
      proposed_.insert(c);
      proposals.push_back({c, study_.steps});
    }
    return proposals;
  }

  void tell(const Proposal& proposal, const TrialRecord& record) override {
    evaluated_[proposal.candidate] = record;
    population_.push_back(proposal.candidate);
  }

 private:
  // Keeps the best population_size_ of parents and children (rank, crowding).
  void select_survivors() {
    std::vector<const TrialRecord*> records;
    for (size_t c : population_) records.push_back(&evaluated_.at(c));
    scores_ = selection_scores(records, study_);
    std::vector<size_t> order(population_.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores_[a] < scores_[b]; });
    std::vector<size_t> survivors;
    std::vector<double> survivor_scores;
    for (size_t i = 0; i < order.size() && survivors.size() < population_size_; ++i) {
      survivors.push_back(population_[order[i]]);
      survivor_scores.push_back(scores_[order[i]]);
    }
    population_ = survivors;
    scores_ = survivor_scores;
  }

  // Binary tournament: the better scored of two random members.
  size_t tournament() {
    std::uniform_int_distribution<size_t> pick(0, population_.size() - 1);
    const size_t a = pick(rng_), b = pick(rng_);
    return population_[scores_[a] <= scores_[b] ? a : b];
  }

  // A child not yet proposed: crossover and mutation of two parents, retried;
  // when the neighbourhood is used up, any candidate not yet proposed.
  std::optional<size_t> make_child(const std::vector<size_t>& batch) {
    auto taken = [&](size_t c) { return proposed_.contains(c) || std::ranges::find(batch, c) != batch.end(); };
    const size_t knobs = study_.space.size();
    for (int attempt = 0; attempt < 50 && knobs > 0; ++attempt) {
      const Point& mother = candidates_[tournament()].point;
      const Point& father = candidates_[tournament()].point;
      Point child(knobs);
      std::bernoulli_distribution coin(0.5), mutate(1.0 / static_cast<double>(knobs));
      for (size_t k = 0; k < knobs; ++k) {
        child[k] = coin(rng_) ? mother[k] : father[k];
        if (mutate(rng_)) {
          std::uniform_int_distribution<int> value(0, static_cast<int>(study_.space[k].values.size()) - 1);
          child[k] = value(rng_);
        }
      }
      auto found = index_of_.find(child);
      if (found != index_of_.end() && !taken(found->second)) return found->second;
    }
    for (size_t c : shuffled(candidates_.size(), rng_)) {
      if (!taken(c)) return c;
    }
    return std::nullopt;
  }

  const Study& study_;
  const std::vector<Candidate>& candidates_;
  std::mt19937_64 rng_;
  std::map<Point, size_t> index_of_;
  size_t population_size_ = 0;
  size_t budget_ = 0;
  std::set<size_t> proposed_;
  std::map<size_t, TrialRecord> evaluated_;
  std::vector<size_t> population_;  // members (candidate indices), then children until selection
  std::vector<double> scores_;      // selection scores of population_ after select_survivors
};

}  // namespace

std::unique_ptr<SearchStrategy> make_strategy(const Study& study, const std::vector<Candidate>& candidates,
                                              std::optional<int> budget_trials) {
  const std::string& name = study.search.strategy;
  const size_t limit = budget_trials ? std::min<size_t>(*budget_trials, candidates.size()) : candidates.size();
  if (name == "grid") {
    std::vector<size_t> order(limit);
    std::iota(order.begin(), order.end(), 0);
    return std::make_unique<ListStrategy>(order, study.steps);
  }
  if (name == "random") {
    std::mt19937_64 rng(study.search.seed);
    std::vector<size_t> order = shuffled(candidates.size(), rng);
    order.resize(limit);
    return std::make_unique<ListStrategy>(order, study.steps);
  }
  if (name == "halving") return std::make_unique<HalvingStrategy>(study, candidates.size(), budget_trials);
  return std::make_unique<Nsga2Strategy>(study, candidates, budget_trials);
}

}  // namespace memfront
