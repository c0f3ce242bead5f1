#pragma once
// Metric names in the tuner: a record's value of a name, expressions over
// records, and values as a person reads them. Which names exist, their units,
// directions and where a record holds them is core/metric_registry.h; this
// adds what expressions name besides metrics: "status" and config paths.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/metric_registry.h"
#include "core/results.h"
#include "tuner/expr.h"

namespace memfront {

// The record's value of a metric name (core/metric_registry.h); nullopt when
// the record lacks it. An unknown name throws InputError naming the closest
// known ones. Resolve once with resolve_metric where a name meets many records.
std::optional<double> metric_value(const TrialRecord& record, std::string_view name);

// "1.50 GiB", "25.30 ms", "12346": a value in the unit the registry gives the
// name; a name it does not know formats as a plain number.
std::string format_metric(std::string_view name, double value);

// An expression over trial records (an outcome constraint, a --where filter,
// the viewer's constraint box) with its names resolved once, when it is made:
//   status                     the trial's status, a string ("ok", "oom", ...)
//   any metric name            a number (core/metric_registry.h)
//   a config path              with or without "config.": shard.strategy, world,
//                              as the config has it (a string, number or boolean)
class RecordExpr {
 public:
  // InputError "<where>: unknown metric 'pek_mem'; did you mean 'peak_mem'?"
  // for a name that is none of those.
  RecordExpr(Expr expr, std::string pointer, std::string_view where);

  // Whether the record satisfies it; nullopt when the record lacks a value a
  // name needs (a failed trial's metrics), without throwing, so that the
  // viewer can test 100k records per keystroke. A type error (a string
  // compared with a number) is the expression's and throws InputError.
  std::optional<bool> holds(const TrialRecord& record) const;

  Expr expr;
  std::string pointer;  // where it was written: /outcome_constraints/1, --where

 private:
  struct Name {
    enum class Kind { status, metric, config } kind;
    std::string text;              // as the expression writes it
    std::optional<MetricRef> metric;  // kind metric
    const ConfigKnob* knob = nullptr;       // kind config
  };
  std::vector<Name> names_;
};

}  // namespace memfront
