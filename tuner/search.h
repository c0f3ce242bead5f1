#pragma once
// Search strategies: which configurations of a study's space to run, in what
// order, and (for the adaptive ones) for how many steps. A strategy proposes a
// batch, the sweep runs it and tells back each record, and the strategy
// proposes the next batch, until it has nothing more to propose or the trial
// budget is spent (the sweep also stops on its time budget).
//
//   grid     every candidate in grid order
//   random   candidates in a seeded random order
//   halving  successive halving on steps: a seeded sample runs short; the best
//            1/eta by non-dominated rank run eta times longer; and so on until
//            the last round runs the study's steps
//   nsga2    NSGA-II: a population evolves by tournament selection on
//            (non-dominated rank, crowding distance), uniform crossover of knob
//            values and mutation, keeping the best of parents and children
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "core/metric_registry.h"
#include "core/pareto.h"
#include "core/results.h"
#include "tuner/study.h"

namespace memfront {

struct Proposal {
  Candidate candidate;  // the point and its config (at the study's steps)
  int steps = 0;        // timed steps to run it for
};

// A record's objectives as a point to minimize (maximized objectives negated),
// or nullopt when it did not end ok or lacks one of them. The metric names are
// resolved once, when the scorer is made, not once per record.
class ObjectiveScorer {
 public:
  explicit ObjectiveScorer(const std::vector<Objective>& objectives);
  std::optional<ObjectivePoint> operator()(const TrialRecord& record) const;

 private:
  std::vector<std::pair<MetricRef, Goal>> objectives_;
};

// ObjectiveScorer(objectives)(record), for one record.
std::optional<ObjectivePoint> objective_point(const TrialRecord& record, const std::vector<Objective>& objectives);

// Whether a record meets every outcome constraint of the study. A constraint
// over a metric the record lacks is not met.
bool meets_outcome_constraints(const TrialRecord& record, const Study& study);

// Selection order for records: a lower score is better. Feasible ok records
// come first by non-dominated rank (ties broken by larger crowding distance),
// then ok records that break an outcome constraint (by their own rank), then
// everything that did not end ok.
std::vector<double> selection_scores(const std::vector<const TrialRecord*>& records, const Study& study);

// The most configurations one round of grid or random search proposes: a
// larger space is walked a round at a time, so that its first trial starts
// at once rather than after every point has been made into a config.
inline constexpr size_t kMaxListRound = 10000;

class SearchStrategy {
 public:
  virtual ~SearchStrategy() = default;
  // The next batch; empty when the strategy is done. The first call throws
  // the space's InputError when no point of it is a candidate.
  virtual std::vector<Proposal> next() = 0;
  virtual void tell(const Proposal& proposal, const TrialRecord& record) = 0;
  // The proposals it makes in all, where that is known: every one when the
  // whole space has been drawn, else at most the budget; none for halving,
  // whose rounds depend on what it is told, or without a budget.
  virtual std::optional<uint64_t> planned() const = 0;
};

// A strategy drawing from the study's space (CandidateSpace) as it proposes;
// the study must outlive it. budget_trials: the most proposals in all (the
// study's budget, or unlimited).
std::unique_ptr<SearchStrategy> make_strategy(const Study& study, std::optional<int> budget_trials);

// The numbers 0..size-1 in a seeded random order, each once, one at a time,
// without listing them: a keyed Feistel permutation of the smallest range of
// 4^k numbers that holds them, skipping those beyond size (cycle walking).
class ShuffledOrder {
 public:
  ShuffledOrder(uint64_t size, uint64_t seed);
  std::optional<uint64_t> next();  // none once every number has been given

 private:
  uint64_t permute(uint64_t x) const;

  uint64_t size_;
  uint64_t seed_;
  int half_bits_ = 1;  // the range is 2^(2 * half_bits_)
  uint64_t counter_ = 0;
  uint64_t given_ = 0;
};

}  // namespace memfront
