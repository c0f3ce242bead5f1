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
      if (std::optional<nlohmann::json::json_pointer> config = config_pointer(text.substr(7))) {
        names_.push_back({Name::Kind::config, text, std::nullopt, std::move(*config)});
        continue;
      }
    }
    MetricResolution resolved = resolve_metric(text);
    if (resolved.metric) {
      names_.push_back({Name::Kind::metric, text, std::move(resolved.metric)});
      continue;
    }
    // A knob path as the study's space names it: shard.strategy.
    if (std::optional<nlohmann::json::json_pointer> config = config_pointer(text); config && !under_config) {
      names_.push_back({Name::Kind::config, text, std::nullopt, std::move(*config)});
      continue;
    }
    std::vector<std::string> known = known_metric_names();
    known.insert(known.end(), config_paths().begin(), config_paths().end());
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
        if (!record.config.contains(name.config)) return std::nullopt;
        const nlohmann::json& node = record.config.at(name.config);
        if (node.is_number()) {
          values.emplace_back(node.get<double>());
        } else if (node.is_string()) {
          values.emplace_back(node.get<std::string>());
        } else if (node.is_boolean()) {
          values.emplace_back(node.get<bool>());
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
