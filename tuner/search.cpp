#include "tuner/search.h"

#include <algorithm>
#include <cmath>
#include <functional>
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

ShuffledOrder::ShuffledOrder(uint64_t size, uint64_t seed) : size_(size), seed_(seed) {
  while (half_bits_ < 32 && (uint64_t{1} << (2 * half_bits_)) < size) ++half_bits_;
}

std::optional<uint64_t> ShuffledOrder::next() {
  // Each number below 4^k maps to a different one: those below size come
  // out once each, in the permutation's order (fewer than 4 tries apiece on average).
  while (given_ < size_) {
    const uint64_t x = permute(counter_++);
    if (x < size_) {
      ++given_;
      return x;
    }
  }
  return std::nullopt;
}

uint64_t ShuffledOrder::permute(uint64_t x) const {
  // splitmix64's finalizer as the round function, keyed by seed and round.
  auto mix = [](uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  const uint64_t mask = half_bits_ == 32 ? 0xffffffffULL : (uint64_t{1} << half_bits_) - 1;
  uint64_t left = x >> half_bits_, right = x & mask;
  for (uint64_t round = 0; round < 4; ++round) {
    const uint64_t mixed = left ^ (mix(seed_ + 0x9e3779b97f4a7c15ULL * (round + 1) + mix(right)) & mask);
    left = right;
    right = mixed;
  }
  return (left << half_bits_) | right;
}

namespace {

// grid and random: the space walked in one order (grid order, or shuffled),
// a round of at most kMaxListRound candidates at a time.
class ListStrategy final : public SearchStrategy {
 public:
  using Order = std::function<std::optional<uint64_t>()>;  // the next grid index; none when walked
  ListStrategy(const Study& study, Order order, std::optional<int> budget)
      : study_(study), space_(study), order_(std::move(order)), budget_(budget) {}

  std::vector<Proposal> next() override {
    std::vector<Proposal> batch;
    while (!walked_ && batch.size() < kMaxListRound && (!budget_ || proposed_ < static_cast<uint64_t>(*budget_))) {
      const std::optional<uint64_t> index = order_();
      if (!index) {
        walked_ = true;
      } else if (std::optional<Candidate> candidate = space_.draw(*index)) {
        batch.push_back({std::move(*candidate), study_.steps});
        ++proposed_;
      }
    }
    if (proposed_ == 0) space_.fail_empty();
    return batch;
  }
  void tell(const Proposal&, const TrialRecord&) override {}
  std::optional<uint64_t> planned() const override {
    if (walked_) return proposed_;
    return budget_ ? std::optional<uint64_t>(*budget_) : std::nullopt;
  }

 private:
  const Study& study_;
  CandidateSpace space_;
  Order order_;
  std::optional<int> budget_;
  uint64_t proposed_ = 0;
  bool walked_ = false;
};

// Successive halving on the number of steps.
class HalvingStrategy final : public SearchStrategy {
 public:
  HalvingStrategy(const Study& study, std::optional<int> budget) : study_(study), space_(study) {
    const SearchSettings& s = study.search;
    // Round steps: min_steps, min_steps*eta, ... capped by (and ending at) the study's steps.
    for (int steps = std::min(s.halving_min_steps, study.steps); ; steps *= s.halving_eta) {
      steps_.push_back(std::min(steps, study.steps));
      if (steps >= study.steps) break;
    }
    // The largest first round whose rounds (each keeping ceil(n/eta)) fit
    // the budget (at least 1); without a budget, every candidate.
    auto total_for = [&](uint64_t first) {
      uint64_t total = 0, n = first;
      for (size_t r = 0; r < steps_.size(); ++r) {
        total += n;
        n = std::max<uint64_t>(1, (n + s.halving_eta - 1) / s.halving_eta);
      }
      return total;
    };
    uint64_t first = space_.size();
    if (budget && total_for(first) > static_cast<uint64_t>(*budget)) {
      uint64_t fits = 1, too_many = first;  // total_for grows with the first round
      while (too_many - fits > 1) {
        const uint64_t middle = fits + (too_many - fits) / 2;
        (total_for(middle) <= static_cast<uint64_t>(*budget) ? fits : too_many) = middle;
      }
      first = fits;
    }
    // A seeded sample of the space, drawn without listing it.
    ShuffledOrder order(space_.size(), s.seed);
    while (current_.size() < first) {
      const std::optional<uint64_t> index = order.next();
      if (!index) break;
      if (std::optional<Candidate> candidate = space_.draw(*index)) current_.push_back(std::move(*candidate));
    }
    if (current_.empty()) space_.fail_empty();
  }

  std::vector<Proposal> next() override {
    if (round_ > 0) {
      if (round_ >= steps_.size()) return {};
      promote();
    }
    if (round_ >= steps_.size()) return {};
    std::vector<Proposal> batch;
    for (const Candidate& c : current_) batch.push_back({c, steps_[round_]});
    told_.clear();
    ++round_;
    return batch;
  }

  void tell(const Proposal& proposal, const TrialRecord& record) override {
    told_[proposal.candidate.index] = record;
  }
  std::optional<uint64_t> planned() const override { return std::nullopt; }

 private:
  // Keeps the best ceil(n/eta) of the round just run.
  void promote() {
    std::vector<const TrialRecord*> records;
    for (const Candidate& c : current_) records.push_back(&told_.at(c.index));
    const std::vector<double> scores = selection_scores(records, study_);
    std::vector<size_t> order(current_.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
    const size_t keep = std::max<size_t>(1, (current_.size() + study_.search.halving_eta - 1) / study_.search.halving_eta);
    std::vector<Candidate> kept;
    for (size_t i = 0; i < keep; ++i) kept.push_back(current_[order[i]]);
    current_ = std::move(kept);
  }

  const Study& study_;
  CandidateSpace space_;
  std::vector<int> steps_;
  size_t round_ = 0;
  std::vector<Candidate> current_;
  std::map<uint64_t, TrialRecord> told_;  // by grid index
};

// NSGA-II over the knob-value indices of the study's points.
class Nsga2Strategy final : public SearchStrategy {
 public:
  Nsga2Strategy(const Study& study, std::optional<int> budget)
      : study_(study),
        space_(study),
        order_(space_.size(), study.search.seed),
        rng_(study.search.seed),
        population_size_(static_cast<size_t>(study.search.nsga2_population)),
        budget_(budget) {}

  std::vector<Proposal> next() override {
    if (budget_ && proposed_ >= static_cast<uint64_t>(*budget_)) return {};
    const uint64_t left = budget_ ? static_cast<uint64_t>(*budget_) - proposed_ : population_size_;
    const size_t wanted = static_cast<size_t>(std::min<uint64_t>(population_size_, left));
    std::vector<Candidate> batch;
    if (population_.empty() && proposed_ == 0) {
      // The first generation: a seeded sample of the space.
      while (batch.size() < wanted) {
        std::optional<Candidate> drawn = next_in_order();
        if (!drawn) break;
        batch.push_back(std::move(*drawn));
      }
      if (batch.empty()) space_.fail_empty();
    } else {
      select_survivors();
      while (batch.size() < wanted) {
        std::optional<Candidate> child = make_child();
        if (!child) break;  // every candidate has been tried
        batch.push_back(std::move(*child));
      }
    }
    std::vector<Proposal> proposals;
    for (Candidate& c : batch) {
      ++proposed_;
      proposals.push_back({c, study_.steps});
      points_[c.index] = std::move(c.point);
    }
    return proposals;
  }

  void tell(const Proposal& proposal, const TrialRecord& record) override {
    evaluated_[proposal.candidate.index] = record;
    population_.push_back(proposal.candidate.index);
  }
  std::optional<uint64_t> planned() const override {
    return budget_ ? std::optional<uint64_t>(*budget_) : std::nullopt;
  }

 private:
  // Keeps the best population_size_ of parents and children (rank, crowding).
  void select_survivors() {
    std::vector<const TrialRecord*> records;
    for (uint64_t c : population_) records.push_back(&evaluated_.at(c));
    scores_ = selection_scores(records, study_);
    std::vector<size_t> order(population_.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores_[a] < scores_[b]; });
    std::vector<uint64_t> survivors;
    std::vector<double> survivor_scores;
    for (size_t i = 0; i < order.size() && survivors.size() < population_size_; ++i) {
      survivors.push_back(population_[order[i]]);
      survivor_scores.push_back(scores_[order[i]]);
    }
    population_ = survivors;
    scores_ = survivor_scores;
  }

  // Binary tournament: the better scored of two random members.
  uint64_t tournament() {
    std::uniform_int_distribution<size_t> pick(0, population_.size() - 1);
    const size_t a = pick(rng_), b = pick(rng_);
    return population_[scores_[a] <= scores_[b] ? a : b];
  }

  // The next candidate of the seeded order not drawn yet.
  std::optional<Candidate> next_in_order() {
    while (const std::optional<uint64_t> index = order_.next()) {
      if (std::optional<Candidate> candidate = space_.draw(*index)) return candidate;
    }
    return std::nullopt;
  }

  // A child not yet proposed: crossover and mutation of two parents, retried;
  // when the neighbourhood is used up, any candidate not yet proposed.
  std::optional<Candidate> make_child() {
    const size_t knobs = study_.space.size();
    for (int attempt = 0; attempt < 50 && knobs > 0; ++attempt) {
      const Point& mother = points_.at(tournament());
      const Point& father = points_.at(tournament());
      Point child(knobs);
      std::bernoulli_distribution coin(0.5), mutate(1.0 / static_cast<double>(knobs));
      for (size_t k = 0; k < knobs; ++k) {
        child[k] = coin(rng_) ? mother[k] : father[k];
        if (mutate(rng_)) {
          std::uniform_int_distribution<int> value(0, static_cast<int>(study_.space[k].values.size()) - 1);
          child[k] = value(rng_);
        }
      }
      const uint64_t index = space_.index_of(child);
      if (points_.contains(index)) continue;  // proposed before
      if (std::optional<Candidate> candidate = space_.draw(index)) return candidate;
    }
    return next_in_order();
  }

  const Study& study_;
  CandidateSpace space_;  // draws each config once: a child drawn before is no candidate
  ShuffledOrder order_;
  std::mt19937_64 rng_;
  size_t population_size_ = 0;
  std::optional<int> budget_;
  uint64_t proposed_ = 0;
  std::map<uint64_t, Point> points_;          // grid index -> point, of every proposal
  std::map<uint64_t, TrialRecord> evaluated_;
  std::vector<uint64_t> population_;  // members (grid indices), then children until selection
  std::vector<double> scores_;        // selection scores of population_ after select_survivors
};

}  // namespace

std::unique_ptr<SearchStrategy> make_strategy(const Study& study, std::optional<int> budget_trials) {
  const std::string& name = study.search.strategy;
  if (name == "grid") {
    uint64_t next_index = 0;
    const uint64_t size = space_size(study);
    return std::make_unique<ListStrategy>(
        study, [next_index, size]() mutable { return next_index < size ? std::optional(next_index++) : std::nullopt; },
        budget_trials);
  }
  if (name == "random") {
    return std::make_unique<ListStrategy>(
        study, [order = ShuffledOrder(space_size(study), study.search.seed)]() mutable { return order.next(); },
        budget_trials);
  }
  if (name == "halving") return std::make_unique<HalvingStrategy>(study, budget_trials);
  return std::make_unique<Nsga2Strategy>(study, budget_trials);
}

}  // namespace memfront
