#include "tuner/metrics.h"

#include <algorithm>

#include "core/error.h"

namespace memfront {

std::optional<double> metric_value(const TrialRecord& record, std::string_view name) {
  const MetricResolution resolved = resolve_metric(name);
  if (!resolved.metric) throw InputError(resolved.error);
  return (*resolved.metric)(record);
}

std::string format_metric(std::string_view name, double value) {
  const MetricResolution resolved = resolve_metric(name);
  return format_metric_value(resolved.metric ? resolved.metric->unit : MetricUnit::none, value);
}

RecordExpr::RecordExpr(Expr expression, std::string where_written, std::string_view where)
    : expr(std::move(expression)), pointer(std::move(where_written)) {
  for (const std::string& text : expr.names()) {
    if (text == "status") {
      names_.push_back({Name::Kind::status, text, std::nullopt});
      continue;
    }
    // A config path under config. first: as a metric it would read numbers only.
    const bool under_config = text.starts_with("config.");
    if (under_config) {
      if (const ConfigKnob* knob = find_knob(text.substr(7))) {
        names_.push_back({Name::Kind::config, text, std::nullopt, knob});
        continue;
      }
    }
    MetricResolution resolved = resolve_metric(text);
    if (resolved.metric) {
      names_.push_back({Name::Kind::metric, text, std::move(resolved.metric)});
      continue;
    }
    // A knob path as the study's space names it: shard.strategy.
    if (const ConfigKnob* knob = find_knob(text); knob && !under_config) {
      names_.push_back({Name::Kind::config, text, std::nullopt, knob});
      continue;
    }
    std::vector<std::string> known = known_metric_names();
    for (const ConfigKnob& knob : knob_table()) known.emplace_back(knob.path);
    known.emplace_back("status");
    throw InputError(std::string(where) + ": " + unknown_name_message("metric", text, known));
  }
}

std::optional<bool> RecordExpr::holds(const TrialRecord& record) const {
  std::vector<ExprValue> values;
  values.reserve(names_.size());
  for (const Name& name : names_) {
    switch (name.kind) {
      case Name::Kind::status:
        values.emplace_back(std::string(to_string(record.status)));
        break;
      case Name::Kind::metric: {
        const std::optional<double> value = (*name.metric)(record);
        if (!value) return std::nullopt;
        values.emplace_back(*value);
        break;
      }
      case Name::Kind::config: {
        const KnobValue value = name.knob->read(record.config);
        if (const bool* flag = std::get_if<bool>(&value)) {
          values.emplace_back(*flag);
        } else if (const std::string* text = std::get_if<std::string>(&value)) {
          values.emplace_back(*text);
        } else if (const std::optional<double> number = knob_number(value)) {
          values.emplace_back(*number);
        } else {
          return std::nullopt;  // placement.order as an explicit list of nodes
        }
        break;
      }
    }
  }
  // Every name has its value: the lookup finds it by position.
  return expr.test([&](std::string_view text) -> std::optional<ExprValue> {
    for (size_t i = 0; i < names_.size(); ++i) {
      if (names_[i].text == text) return values[i];
    }
    return std::nullopt;
  });
}

}  // namespace memfront
