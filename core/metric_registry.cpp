#include "core/metric_registry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/arena.h"
#include "core/config.h"
#include "core/error.h"

namespace memfront {

namespace {

using Reading = std::optional<double>;

double as_number(uint64_t value) { return static_cast<double>(value); }

std::vector<MetricInfo> build_registry() {
  std::vector<MetricInfo> metrics;
  auto add = [&](MetricInfo info, bool summary = false) {
    info.summary = summary;
    metrics.push_back(std::move(info));
  };
  using enum MetricUnit;
  const auto min = MetricDirection::minimize, max = MetricDirection::maximize;

  add({"peak_mem", bytes, min, "metrics.peak_bytes.total", "prediction.peak_bytes.total",
       "max over ranks of the arena's peak of all categories together, per rank",
       [](const TrialMetrics& m) -> Reading { return as_number(m.peak_total_max); },
       [](const Prediction& p) -> Reading { return as_number(p.peak_total); }}, true);
  for (MemCategory category : kAllMemCategories) {
    const std::string name(to_string(category));
    add({"peak_" + name, bytes, min, "metrics.peak_bytes." + name, "prediction.peak_bytes." + name,
         "max over ranks of the arena's peak of " + name + ", per rank",
         [index = static_cast<int>(category)](const TrialMetrics& m) -> Reading { return as_number(m.peak_max[index]); },
         [index = static_cast<int>(category)](const Prediction& p) -> Reading { return as_number(p.peak[index]); }});
  }
  add({"step_time", seconds, min, "metrics.step_time_s.median", "prediction.step_time_s",
       "median seconds per timed step (none when no step was timed)",
       [](const TrialMetrics& m) -> Reading {
         return m.step_time_s.count > 0 ? Reading(m.step_time_s.median) : std::nullopt;
       },
       [](const Prediction& p) -> Reading { return p.step_time_s; }}, true);
  add({"comm_bytes", bytes, min, "metrics.comm.bytes_intra_node + metrics.comm.bytes_inter_node",
       "prediction.comm.bytes_intra_node + prediction.comm.bytes_inter_node",
       "bytes one step sends, all ranks together",
       [](const TrialMetrics& m) -> Reading { return as_number(m.bytes_intra_node + m.bytes_inter_node); },
       [](const Prediction& p) -> Reading { return as_number(p.bytes_intra_node + p.bytes_inter_node); }}, true);
  add({"inter_node_bytes", bytes, min, "metrics.comm.bytes_inter_node", "prediction.comm.bytes_inter_node",
       "the part of comm_bytes sent between nodes",
       [](const TrialMetrics& m) -> Reading { return as_number(m.bytes_inter_node); },
       [](const Prediction& p) -> Reading { return as_number(p.bytes_inter_node); }}, true);
  add({"intra_node_bytes", bytes, min, "metrics.comm.bytes_intra_node", "prediction.comm.bytes_intra_node",
       "the part of comm_bytes sent within a node",
       [](const TrialMetrics& m) -> Reading { return as_number(m.bytes_intra_node); },
       [](const Prediction& p) -> Reading { return as_number(p.bytes_intra_node); }});
  add({"tokens_per_s", tokens_per_s, max, "metrics.tokens_per_s", "", "training tokens per second, all ranks together",
       [](const TrialMetrics& m) -> Reading { return m.tokens_per_s; }, {}}, true);
  add({"gflops", gflop_per_s, max, "metrics.gflops", "", "FLOP per step the kernels counted, per median step second, / 1e9",
       [](const TrialMetrics& m) -> Reading { return m.gflops; }, {}}, true);
  add({"final_loss", none, min, "metrics.loss.final", "", "held-out loss after the last step",
       [](const TrialMetrics& m) -> Reading { return m.final_loss; }, {}}, true);
  add({"loss_delta", none, min, "metrics.loss.delta", "",
       "final_loss minus the study reference's at the same steps (none without an ok reference)",
       [](const TrialMetrics& m) -> Reading { return m.loss_delta; }, {}}, true);
  add({"compute_time", seconds, min, "metrics.breakdown_s.compute", "prediction.compute_s",
       "median seconds per step of compute (forward, backward, recompute, optimizer, quantize, topk)",
       [](const TrialMetrics& m) -> Reading { return m.compute_s; },
       [](const Prediction& p) -> Reading { return p.compute_s; }});
  add({"comm_time", seconds, min, "metrics.breakdown_s.comm", "prediction.comm_s",
       "median seconds per step in communication",
       [](const TrialMetrics& m) -> Reading { return m.comm_s; },
       [](const Prediction& p) -> Reading { return p.comm_s; }});
  add({"exposed_comm_time", seconds, min, "metrics.breakdown_s.exposed_comm", "",
       "the part of comm_time that compute does not hide",
       [](const TrialMetrics& m) -> Reading { return m.exposed_comm_s; }, {}});
  return metrics;
}

// The category peaks and the total, as the results file names them.
std::vector<std::string> peak_keys() {
  std::vector<std::string> keys;
  for (MemCategory category : kAllMemCategories) keys.emplace_back(to_string(category));
  keys.emplace_back("total");
  return keys;
}

Reading peak_of(const BytesByCategory& peaks, uint64_t total, const std::string& key) {
  if (key == "total") return as_number(total);
  return as_number(peaks[static_cast<int>(*parse_mem_category(key))]);
}

std::vector<RecordPath> build_record_paths() {
  using enum MetricUnit;
  std::vector<RecordPath> paths;
  paths.push_back({"peak_bytes", peak_keys(), false, bytes, "max over ranks of each category's arena peak, and of the total",
                   [](const TrialMetrics& m, const std::string& key) { return peak_of(m.peak_max, m.peak_total_max, key); }});
  paths.push_back({"peak_min_bytes", peak_keys(), false, bytes, "min over ranks of the same (the spread is max - min)",
                   [](const TrialMetrics& m, const std::string& key) { return peak_of(m.peak_min, m.peak_total_min, key); }});
  paths.push_back({"step_time_s", {"median", "p10", "p90", "min", "max"}, false, seconds,
                   "the timed steps' spread, seconds",
                   [](const TrialMetrics& m, const std::string& key) -> Reading {
                     const Spread& s = m.step_time_s;
                     if (key == "median") return s.median;
                     if (key == "p10") return s.p10;
                     if (key == "p90") return s.p90;
                     return key == "min" ? s.min : s.max;
                   }});
  paths.push_back({"step_time_s.count", {}, false, none, "how many steps were timed",
                   [](const TrialMetrics& m, const std::string&) -> Reading { return m.step_time_s.count; }});
  paths.push_back({"phase_s", {}, true, seconds, "median seconds per step of one phase (forward, backward, ...)",
                   [](const TrialMetrics& m, const std::string& key) -> Reading {
                     const auto found = m.phase_s.find(key);
                     return found == m.phase_s.end() ? std::nullopt : Reading(found->second);
                   }});
  paths.push_back({"breakdown_s", {"compute", "comm", "exposed_comm"}, false, seconds,
                   "the step split by what it waits for, median seconds",
                   [](const TrialMetrics& m, const std::string& key) -> Reading {
                     if (key == "compute") return m.compute_s;
                     return key == "comm" ? m.comm_s : m.exposed_comm_s;
                   }});
  paths.push_back({"flops_per_step", {}, false, flop, "FLOP per step the kernels counted",
                   [](const TrialMetrics& m, const std::string&) -> Reading { return m.flops_per_step; }});
  paths.push_back({"comm", {"bytes_intra_node", "bytes_inter_node"}, false, bytes,
                   "bytes one step sends, all ranks together, by link class",
                   [](const TrialMetrics& m, const std::string& key) -> Reading {
                     return as_number(key == "bytes_intra_node" ? m.bytes_intra_node : m.bytes_inter_node);
                   }});
  paths.push_back({"comm.emulated", {}, false, none, "1 when inter-node links were emulated on one host, else 0",
                   [](const TrialMetrics& m, const std::string&) -> Reading { return m.emulated ? 1.0 : 0.0; }});
  paths.push_back({"loss", {"final", "floor", "delta"}, false, none,
                   "held-out loss after the last step, the data's entropy rate, and final minus the reference's",
                   [](const TrialMetrics& m, const std::string& key) -> Reading {
                     if (key == "final") return m.final_loss;
                     return key == "floor" ? m.loss_floor : m.loss_delta;
                   }});
  return paths;
}

MetricRef named_ref(const MetricInfo& info) {
  return {info.name, info.unit, &info, [&info](const TrialRecord& record) -> Reading {
            return record.metrics ? info.measured(*record.metrics) : std::nullopt;
          }};
}

// A dotted path into the metrics object, or nullopt when no family has it.
std::optional<MetricRef> record_path_ref(std::string_view name) {
  for (const RecordPath& family : record_paths()) {
    std::string key;
    if (name == family.parent && family.keys.empty() && !family.any_key) {
      // a single field
    } else if (name.starts_with(family.parent + ".") && name.size() > family.parent.size() + 1) {
      key = std::string(name.substr(family.parent.size() + 1));
      if (!family.any_key && std::ranges::find(family.keys, key) == family.keys.end()) continue;
    } else {
      continue;
    }
    return MetricRef{std::string(name), family.unit, nullptr, [&family, key](const TrialRecord& record) -> Reading {
                       return record.metrics ? family.read(*record.metrics, key) : std::nullopt;
                     }};
  }
  return std::nullopt;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string_view unit_symbol(MetricUnit unit) {
  switch (unit) {
    case MetricUnit::bytes: return "bytes";
    case MetricUnit::seconds: return "s";
    case MetricUnit::tokens_per_s: return "tokens/s";
    case MetricUnit::gflop_per_s: return "GFLOP/s";
    case MetricUnit::flop: return "FLOP";
    case MetricUnit::none: return "";
  }
  return "";
}

std::string_view to_string(MetricDirection direction) {
  return direction == MetricDirection::maximize ? "max" : "min";
}

const std::vector<MetricInfo>& metric_registry() {
  static const std::vector<MetricInfo> registry = build_registry();
  return registry;
}

const MetricInfo* find_metric(std::string_view name) {
  for (const MetricInfo& info : metric_registry()) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

std::string RecordPath::pattern() const {
  if (any_key) return parent + ".<" + (parent == "phase_s" ? "phase" : "key") + ">";
  if (keys.empty()) return parent;
  // Braces and commas, as a shell expands them: a '|' would split a Markdown table cell.
  std::string alternatives;
  for (const std::string& key : keys) alternatives += (alternatives.empty() ? "" : ",") + key;
  return parent + ".{" + alternatives + "}";
}

const std::vector<RecordPath>& record_paths() {
  static const std::vector<RecordPath> paths = build_record_paths();
  return paths;
}

std::vector<std::string> known_metric_names() {
  std::vector<std::string> names;
  for (const MetricInfo& info : metric_registry()) {
    names.push_back(info.name);
    if (info.predicted) names.push_back("predicted_" + info.name);
  }
  for (const RecordPath& family : record_paths()) {
    if (family.keys.empty()) names.push_back(family.any_key ? family.pattern() : family.parent);
    for (const std::string& key : family.keys) names.push_back(family.parent + "." + key);
  }
  for (const ConfigKnob& knob : knob_table()) names.push_back("config." + std::string(knob.path));
  return names;
}

std::string unknown_name_message(std::string_view what, std::string_view name, const std::vector<std::string>& known) {
  // Names within a third of their length in edits (at least 2) are likely typos of it.
  const size_t limit = std::max<size_t>(2, name.size() / 3);
  size_t best = limit + 1;
  std::vector<std::string> closest;
  for (const std::string& candidate : known) {
    const size_t distance = edit_distance(name, candidate);
    if (distance < best) {
      best = distance;
      closest.clear();
    }
    if (distance == best && std::ranges::find(closest, candidate) == closest.end()) closest.push_back(candidate);
  }
  std::string message = "unknown " + std::string(what) + " '" + std::string(name) + "'";
  if (closest.empty()) return message + " (memfront metrics lists them)";
  if (closest.size() > 3) closest.resize(3);
  message += "; did you mean ";
  for (size_t i = 0; i < closest.size(); ++i) {
    if (i > 0) message += i + 1 == closest.size() ? " or " : ", ";
    message += "'" + closest[i] + "'";
  }
  return message + "?";
}

MetricResolution resolve_metric(std::string_view name) {
  const std::string_view given = name;
  if (name.starts_with("metrics.")) name.remove_prefix(8);  // the column name pandas shows
  if (const MetricInfo* info = find_metric(name)) return {named_ref(*info), ""};
  if (name.starts_with("predicted_")) {
    if (const MetricInfo* info = find_metric(name.substr(10)); info && info->predicted) {
      return {MetricRef{std::string(name), info->unit, info,
                        [info](const TrialRecord& record) -> std::optional<double> {
                          return record.prediction ? info->predicted(*record.prediction) : std::nullopt;
                        }},
              ""};
    }
  }
  if (name.starts_with("config.")) {
    if (const ConfigKnob* knob = find_knob(name.substr(7))) {
      return {MetricRef{std::string(name), MetricUnit::none, nullptr,
                        [knob](const TrialRecord& record) { return knob_number(knob->read(record.config)); }},
              ""};
    }
  }
  if (std::optional<MetricRef> path = record_path_ref(name)) return {std::move(*path), ""};
  return {std::nullopt, unknown_name_message("metric", given, known_metric_names())};
}

MetricRef resolve_metric_or_throw(std::string_view name, std::string_view where) {
  MetricResolution resolved = resolve_metric(name);
  if (!resolved.metric) throw InputError(std::string(where) + ": " + resolved.error);
  return std::move(*resolved.metric);
}

std::string format_metric_value(MetricUnit unit, double value) {
  char text[64];
  if (unit == MetricUnit::bytes && value >= 0) return format_bytes(static_cast<uint64_t>(std::llround(value)));
  if (unit == MetricUnit::seconds) {
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

namespace {

// A Markdown table whose columns are padded to line up, so that it reads as
// plain text on a terminal too.
std::string markdown_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(rows.front().size(), 3);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    out += "|";
    for (size_t c = 0; c < cells.size(); ++c) out += " " + cells[c] + std::string(widths[c] - cells[c].size(), ' ') + " |";
    out += "\n";
  };
  line(rows.front());
  std::vector<std::string> rule;
  for (size_t width : widths) rule.push_back(std::string(width, '-'));
  line(rule);
  for (size_t r = 1; r < rows.size(); ++r) line(rows[r]);
  return out;
}

std::string code(const std::string& text) { return text.empty() ? "" : "`" + text + "`"; }

}  // namespace

std::string metrics_markdown() {
  std::vector<std::vector<std::string>> named = {
      {"metric", "unit", "goal", "record path", "predicted_<metric> reads", "meaning"}};
  for (const MetricInfo& info : metric_registry()) {
    named.push_back({code(info.name), std::string(unit_symbol(info.unit)), std::string(to_string(info.direction)),
                     code(info.record_path), code(info.predicted_path),
                     info.description});
  }
  std::vector<std::vector<std::string>> paths = {{"path under `metrics`", "unit", "meaning"}};
  for (const RecordPath& family : record_paths()) {
    paths.push_back({code(family.pattern()), std::string(unit_symbol(family.unit)), family.description});
  }
  return "Named metrics (`predicted_<metric>` is the cost model's figure, read from the record's `prediction`):\n\n" +
         markdown_table(named) +
         "\nAny of these paths into a record's `metrics` is a metric too (`metrics.` in front is allowed), and so is\n"
         "`config.<path>` for a number of the normalized config (`config.checkpoint.every`):\n\n" +
         markdown_table(paths);
}

}  // namespace memfront
