#pragma once
// A study: which configurations to try, what to measure them by, and how to
// search (study JSON, documented in examples/ and the README).
//
//   {
//     "study": "quickstart",
//     "base": {<a trial config: model, batch, train, ...; defaults as in core/config.h>},
//     "space": {                                 knob path -> values
//       "checkpoint.every": [0, 1, 2],           a list
//       "batch.micro": {"range": [1, 8], "step": 1},       lo, lo+step, ... <= hi
//       "topk.grad": {"range": [0.01, 1], "factor": 10}    lo, lo*f, ... <= hi
//     },
//     "constraints": ["shard.strategy == \"hybrid\" -> world % shard.group == 0"],
//     "objectives": [{"metric": "peak_mem", "goal": "min"}, {"metric": "step_time", "goal": "min"}],
//     "outcome_constraints": ["peak_mem <= 16GiB"],
//     "reference": {<config overrides of base; default: base with every knob at its
//                    uncompressed value: fp32, no checkpointing, dense, ddp>},
//     "steps": 20, "warmup": 2, "repeats": 1,
//     "search": {"strategy": "grid" | "random" | "halving" | "nsga2",
//                "budget": {"trials": 100, "seconds": 600}, "seed": 1,
//                "halving": {"min_steps": 4, "eta": 3},
//                "nsga2": {"population": 12}},
//     "launcher": {"kind": "local", "timeout_s": 300, "mpirun": "mpirun",
//                  "mpirun_args": ["--oversubscribe"], "trace": false},
//     "link": {"latency_us": 5, "bandwidth_gbps": 10}
//   }
//
// Knob paths are those of the normalized config JSON (core/config.h to_json):
// "checkpoint.every", "world", "placement.ranks_per_node", "model.layers", ...
// Values are JSON values written into the base config at that path.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "tuner/expr.h"
#include "tuner/launcher.h"
#include "tuner/metrics.h"

namespace memfront {

struct Knob {
  std::string path;                   // "checkpoint.every"
  std::vector<nlohmann::json> values;  // the values to try, in the order given
};

enum class Goal { minimize, maximize };

struct Objective {
  std::string metric;  // a metric name (core/metric_registry.h)
  Goal goal = Goal::minimize;
};

struct NamedExpr {
  Expr expr;
  std::string pointer;  // where it stands in the study file, e.g. /constraints/1
};

struct SearchSettings {
  std::string strategy = "grid";  // grid, random, halving, nsga2
  std::optional<int> budget_trials;
  std::optional<double> budget_seconds;
  uint64_t seed = 1;
  int halving_min_steps = 4;  // halving: steps of the first round
  int halving_eta = 3;        // halving: keep 1/eta per round, eta x the steps
  int nsga2_population = 12;
};

struct LauncherSettings {
  std::string kind = "local";  // local (this issue); slurm later
  double timeout_s = kDefaultTrialTimeoutS;  // per trial
  std::string mpirun = kDefaultMpirun;
  std::vector<std::string> mpirun_args;  // added to every mpirun line
  std::vector<std::string> trial_args;   // added to every memfront-trial line (e.g. --mem-cap 1GiB)
  bool trace = false;          // every trial writes a trace (Chrome trace-event JSON) beside its record
};

struct Study {
  std::string name;
  std::filesystem::path path;       // the study file ("" when parsed from text)
  nlohmann::json base;              // base config JSON (partial)
  std::vector<Knob> space;
  std::vector<NamedExpr> constraints;          // over knobs
  std::vector<Objective> objectives;
  std::vector<RecordExpr> outcome_constraints;  // over metrics
  Config reference;                 // the study's reference configuration, normalized
  int steps = 20, warmup = 2, repeats = 1;
  SearchSettings search;
  LauncherSettings launcher;
  double link_latency_us = 5, link_bandwidth_gbps = 10;
};

// Parses and validates; InputError "<source>: <json pointer>: <what was expected>".
Study parse_study(const nlohmann::json& json, std::string_view source);
Study load_study(const std::filesystem::path& path);

// One point of the space: the value index of each knob, in space order.
using Point = std::vector<int>;

// The config of a point: base, then each knob's value written at its path, then
// the study's steps, warmup and link. Throws InputError (from parse_config) when
// the knobs do not combine into a valid config.
Config config_at(const Study& study, const Point& point);
// The same config, or the config rule its knobs break as data (out_of_range
// still throws: a point that does not fit the space is the caller's bug).
std::variant<Config, ConfigViolation> check_config_at(const Study& study, const Point& point);

// Whether `config` is a candidate of the space (its knobs take values of the
// space and make this very config, steps aside, passing the constraints):
// the reference usually is, and then runs once, not twice.
bool space_contains(const Study& study, const Config& config);

// Whether the point passes every parameter constraint. Names in constraints
// are knob paths or any path of the normalized config (e.g. world,
// model.layers); values compare as in Expr.
bool satisfies_constraints(const Study& study, const Config& config);

struct Candidate {
  uint64_t index = 0;  // the point's place in grid order (CandidateSpace)
  Point point;
  Config config;
};

// The candidates of a study's space, found as they are drawn: a point's
// config is made and checked against the constraints only when a strategy
// asks for it, so a space of 10^8 points is counted at once and sampled
// without being enumerated. Points are numbered in grid order (the last knob
// varies fastest). A config is drawn once: a point that makes an invalid
// config, fails a constraint, or normalizes to a config drawn before
// (shard.group under ddp) is no candidate.
class CandidateSpace {
 public:
  explicit CandidateSpace(const Study& study);
  const Study& study() const { return study_; }
  uint64_t size() const { return size_; }  // points of the grid, before constraints
  Point point_at(uint64_t index) const;
  uint64_t index_of(const Point& point) const;
  // The candidate at `index` if its config was not drawn before, else none.
  // An error in a constraint (a division by zero) is the study's: InputError.
  std::optional<Candidate> draw(uint64_t index);
  // For a strategy that drew every point once and found no candidate: the
  // InputError that names the constraint (or the config rule) that removed
  // the last points: "<study>: /constraints/1: removes every configuration of the space".
  [[noreturn]] void fail_empty() const;

 private:
  const Study& study_;
  uint64_t size_ = 0;
  std::set<std::string> ids_;                         // of the candidates drawn (the points left out are only counted)
  std::map<std::string, uint64_t> invalid_by_rule_;   // JSON pointer of the config rule -> points it removed
  std::string first_invalid_;
  uint64_t valid_ = 0;
  std::vector<uint64_t> removed_by_;                  // per constraint: points it was the first to fail
};

// Every candidate in grid order, drawn from a CandidateSpace; an empty space
// is its fail_empty error. For small spaces (tests, benchmarks): a sweep draws
// what its strategy asks for.
std::vector<Candidate> enumerate_space(const Study& study);

// Size of the full grid before constraints.
uint64_t space_size(const Study& study);

// How the study file `now` differs from `recorded` (a results header's
// study_spec), one entry per change: "/steps: 3 -> 5", "/space/topk.grad:
// added", "/warmup: removed". Empty when they are the same study.
std::vector<std::string> study_differences(const nlohmann::json& recorded, const nlohmann::json& now);

}  // namespace memfront
