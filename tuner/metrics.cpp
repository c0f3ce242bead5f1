#include "tuner/metrics.h"

#include <cmath>
#include <cstdio>

#include "core/arena.h"

namespace memfront {

namespace {

// The node at a dotted path inside a JSON object ("phase_s.backward"), or null.
const nlohmann::json* node_at(const nlohmann::json& root, std::string_view path) {
  const nlohmann::json* node = &root;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string key(path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (!node->is_object() || !node->contains(key)) return nullptr;
    node = &(*node)[key];
    if (dot == std::string_view::npos) return node;
    start = dot + 1;
  }
}

std::optional<double> number_at(const nlohmann::json& root, std::string_view path) {
  const nlohmann::json* node = node_at(root, path);
  if (node && node->is_number()) return node->get<double>();
  if (node && node->is_boolean()) return node->get<bool>() ? 1.0 : 0.0;
  return std::nullopt;
}

// A config value at a dotted path, as an expression value.
std::optional<ExprValue> config_value(const nlohmann::json& config, std::string_view path) {
  const nlohmann::json* node = node_at(config, path);
  if (!node) return std::nullopt;
  if (node->is_number()) return ExprValue(node->get<double>());
  if (node->is_string()) return ExprValue(node->get<std::string>());
  if (node->is_boolean()) return ExprValue(node->get<bool>());
  return std::nullopt;
}

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

}  // namespace

bool is_named_metric(std::string_view name) {
  static const char* const names[] = {"peak_mem",   "step_time",        "comm_bytes",         "inter_node_bytes",
                                      "intra_node_bytes", "tokens_per_s", "gflops",        "final_loss",
                                      "loss_delta", "comm_time",        "compute_time",       "exposed_comm_time",
                                      "predicted_peak_mem", "predicted_step_time"};
  for (const char* known : names) {
    if (name == known) return true;
  }
  if (starts_with(name, "peak_")) return parse_mem_category(name.substr(5)).has_value();
  return false;
}

std::optional<double> metric_value(const TrialRecord& record, std::string_view name) {
  if (starts_with(name, "predicted_")) {
    if (!record.prediction.is_object()) return std::nullopt;
    if (name == "predicted_peak_mem") return number_at(record.prediction, "peak_bytes.total");
    if (name == "predicted_step_time") return number_at(record.prediction, "step_time_s");
    return number_at(record.prediction, name.substr(10));
  }
  if (starts_with(name, "config.")) {
    auto value = config_value(record.config, name.substr(7));
    if (value && std::holds_alternative<double>(*value)) return std::get<double>(*value);
    return std::nullopt;
  }
  if (!record.metrics) return std::nullopt;
  const TrialMetrics& m = *record.metrics;
  if (name == "peak_mem") return static_cast<double>(m.peak_total_max);
  if (starts_with(name, "peak_")) {
    if (auto category = parse_mem_category(name.substr(5))) {
      return static_cast<double>(m.peak_max[static_cast<int>(*category)]);
    }
  }
  if (name == "step_time") return m.step_time_s.count > 0 ? std::optional(m.step_time_s.median) : std::nullopt;
  if (name == "comm_bytes") return static_cast<double>(m.bytes_intra_node + m.bytes_inter_node);
  if (name == "inter_node_bytes") return static_cast<double>(m.bytes_inter_node);
  if (name == "intra_node_bytes") return static_cast<double>(m.bytes_intra_node);
  if (name == "tokens_per_s") return m.tokens_per_s;
  if (name == "gflops") return m.gflops;
  if (name == "final_loss") return m.final_loss;
  if (name == "loss_delta") return m.loss_delta;
  if (name == "comm_time") return m.comm_s;
  if (name == "compute_time") return m.compute_s;
  if (name == "exposed_comm_time") return m.exposed_comm_s;
  // Anything else: a path into the metrics object as the results file has it.
  return number_at(to_json(record)["metrics"], name);
}

NameLookup record_lookup(const TrialRecord& record) {
  return [&record](std::string_view name) -> std::optional<ExprValue> {
    if (name == "status") return ExprValue(std::string(to_string(record.status)));
    if (auto value = metric_value(record, name)) return ExprValue(*value);
    if (starts_with(name, "config.")) return config_value(record.config, name.substr(7));
    return config_value(record.config, name);  // knob paths as in the study: shard.strategy, world
  };
}

std::string format_metric(std::string_view name, double value) {
  char text[64];
  const bool bytes = starts_with(name, "peak_") || starts_with(name, "predicted_peak") ||
                     name.find("bytes") != std::string_view::npos;
  const bool seconds = name.ends_with("_time") || starts_with(name, "phase_s.") ||
                       starts_with(name, "step_time_s.") || starts_with(name, "breakdown_s.");
  if (bytes && value >= 0) return format_bytes(static_cast<uint64_t>(std::llround(value)));
  if (seconds) {
    if (std::abs(value) >= 1) {
      std::snprintf(text, sizeof text, "%.2f s", value);
    } else {
      std::snprintf(text, sizeof text, "%.2f ms", value * 1e3);
    }
    return text;
  }
  std::snprintf(text, sizeof text, std::abs(value) >= 1000 ? "%.0f" : "%.4g", value);
  return text;
}

}  // namespace memfront
