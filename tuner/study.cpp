#include "tuner/study.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>

#include "core/error.h"
#include "core/json_file.h"

namespace memfront {

using nlohmann::json;

namespace {

constexpr int64_t kIntMax = 1 << 30;        // as core/config.cpp bounds its counts
constexpr size_t kMaxKnobValues = 10000;    // a range finer than this is a mistake, not a sweep

// "integer", "number", "string", ...: a JSON value's type as errors name it.
std::string type_name(const json& value) {
  if (value.is_number_integer()) return "integer";
  if (value.is_number_float()) return "number";
  return value.type_name();
}

std::string got(const json& value) { return type_name(value) + " " + value.dump(); }

[[noreturn]] void fail(std::string_view source, const std::string& pointer, const std::string& what) {
  fail_at(source, pointer, what);
}

// One object of the study file. Unknown keys are refused up front, so that a
// typo is reported as a typo rather than as the missing field it was meant to
// be; fields are then read with their JSON pointers at hand for errors.
class Fields {
 public:
  Fields(const json* object, std::string pointer, std::string_view source,
         std::initializer_list<std::string_view> keys)
      : object_(object), pointer_(std::move(pointer)), source_(source) {
    if (!object_) return;
    if (!object_->is_object()) fail(pointer_, "expected an object, got " + got(*object_));
    for (const auto& [key, value] : object_->items()) {
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
      std::string expected;
      for (std::string_view k : keys) expected += (expected.empty() ? "" : ", ") + std::string(k);
      fail(at(key), "unknown key (expected one of: " + expected + ")");
    }
  }

  [[noreturn]] void fail(const std::string& pointer, const std::string& what) const {
    memfront::fail(source_, pointer, what);
  }
  std::string at(std::string_view key) const { return pointer_ + "/" + json_pointer_token(key); }
  const std::string& pointer() const { return pointer_; }

  // nullptr when the key (or this whole object) is absent.
  const json* find(std::string_view key) const {
    if (!object_) return nullptr;
    auto it = object_->find(std::string(key));
    return it == object_->end() ? nullptr : &*it;
  }

  int64_t integer(std::string_view key, int64_t fallback, int64_t lo, int64_t hi) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number_integer()) fail(at(key), "expected an integer, got " + got(*v));
    const bool too_big = v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi);
    if (too_big || v->get<int64_t>() < lo || v->get<int64_t>() > hi) {
      const std::string bounds =
          hi == INT64_MAX ? ">= " + std::to_string(lo) : std::to_string(lo) + ".." + std::to_string(hi);
      fail(at(key), "must be " + bounds + ", got " + v->dump());
    }
    return v->get<int64_t>();
  }

  double number(std::string_view key, double fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number()) fail(at(key), "expected a number, got " + got(*v));
    return v->get<double>();
  }

  std::string string(std::string_view key, std::string fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_string()) fail(at(key), "expected a string, got " + got(*v));
    return v->get<std::string>();
  }

 private:
  const json* object_;
  std::string pointer_;
  std::string_view source_;
};

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    parts.emplace_back(path.substr(start, dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

// The value at a dotted path, or nullptr when some part of it is missing.
const json* find_path(const json& root, std::string_view path) {
  const json* node = &root;
  for (const std::string& part : split_path(path)) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(part);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

// Writes a value at a dotted path, creating the objects on the way.
void set_path(json& root, std::string_view path, json value) {
  json* node = &root;
  for (const std::string& part : split_path(path)) node = &(*node)[part];
  *node = std::move(value);
}

std::string dotted_to_pointer(std::string_view path) {
  std::string pointer;
  for (const std::string& part : split_path(path)) pointer += "/" + json_pointer_token(part);
  return pointer;
}

// Names in constraints read the normalized config by dotted path; objects and
// arrays (an explicit placement.order) are not values an expression can use.
NameLookup config_lookup(const json& normalized) {
  return [&normalized](std::string_view name) -> std::optional<ExprValue> {
    const json* value = find_path(normalized, name);
    if (!value) return std::nullopt;
    if (value->is_number()) return value->get<double>();
    if (value->is_string()) return value->get<std::string>();
    if (value->is_boolean()) return value->get<bool>();
    return std::nullopt;
  };
}

// Config paths the study sets on every config from its own fields. A base,
// reference or space that set them too would be silently overridden, so that
// is an error which names the study field to use.
struct StudySetting {
  std::string_view path;
  std::string_view field;
};
constexpr StudySetting kStudySettings[] = {{"train.steps", "steps"},
                                           {"train.warmup", "warmup"},
                                           {"placement.link_latency_us", "link.latency_us"},
                                           {"placement.link_bandwidth_gigabytes_per_s", "link.bandwidth_gbps"}};

std::string study_setting_message(const StudySetting& setting) {
  return "set by the study's \"" + std::string(setting.field) +
         "\" (it applies to every trial and to the reference), not here";
}

void reject_study_settings(const json& config, const std::string& pointer, std::string_view source) {
  for (const StudySetting& setting : kStudySettings) {
    if (find_path(config, setting.path)) {
      fail(source, pointer + dotted_to_pointer(setting.path), study_setting_message(setting));
    }
  }
}

// Writes the study's steps, warmup and link into a config JSON.
json with_study_settings(const Study& study, json config) {
  set_path(config, "train.steps", study.steps);
  set_path(config, "train.warmup", study.warmup);
  set_path(config, "placement.link_latency_us", study.link_latency_us);
  set_path(config, "placement.link_bandwidth_gigabytes_per_s", study.link_bandwidth_gbps);
  return config;
}

Config finish_config(const Study& study, json config, const std::string& source) {
  return parse_config(with_study_settings(study, std::move(config)), source);
}

// What a knob's values must be, from the JSON type of its normalized default:
// a knob's values are type-checked here, while whether they combine into a
// valid config (checkpoint.every <= model.layers, ...) is decided per point,
// since other knobs of the space may change the answer.
enum class KnobKind { integer, number, string, boolean, placement_order };

struct KindText {
  std::string_view one;   // "an integer"
  std::string_view many;  // "integers"
};

KindText kind_text(KnobKind kind) {
  switch (kind) {
    case KnobKind::integer: return {"an integer", "integers"};
    case KnobKind::number: return {"a number", "numbers"};
    case KnobKind::string: return {"a string", "strings"};
    case KnobKind::boolean: return {"true or false", "booleans"};
    case KnobKind::placement_order: return {"\"block\", \"cyclic\" or a rank->node list", "\"block\", \"cyclic\" or rank->node lists"};
  }
  return {"?", "?"};
}

bool fits(const json& value, KnobKind kind) {
  switch (kind) {
    case KnobKind::integer: return value.is_number_integer();
    case KnobKind::number: return value.is_number();
    case KnobKind::string: return value.is_string();
    case KnobKind::boolean: return value.is_boolean();
    case KnobKind::placement_order: return value.is_string() || value.is_array();
  }
  return false;
}

// "backend, batch.*, checkpoint.*, ...": the paths under one object, for errors.
std::string paths_under(const json& object, const std::string& prefix) {
  std::string list;
  for (const auto& [key, value] : object.items()) {
    list += (list.empty() ? "" : ", ") + prefix + key + (value.is_object() ? ".*" : "");
  }
  return list;
}

KnobKind knob_kind(const json& normalized, const std::string& path, const std::string& pointer,
                   std::string_view source) {
  for (const StudySetting& setting : kStudySettings) {
    if (path == setting.path) fail(source, pointer, study_setting_message(setting));
  }
  const json* node = &normalized;
  std::string walked;
  for (const std::string& part : split_path(path)) {
    if (!node->is_object()) fail(source, pointer, "unknown knob: " + walked + " is a knob, not a group of knobs");
    auto it = node->find(part);
    if (it == node->end()) {
      fail(source, pointer, "unknown knob (expected one of: " +
                                paths_under(*node, walked.empty() ? "" : walked + ".") + ")");
    }
    walked += (walked.empty() ? "" : ".") + part;
    node = &*it;
  }
  if (node->is_object()) fail(source, pointer, "a group of knobs (expected one of: " + paths_under(*node, path + ".") + ")");
  if (path == "placement.order") return KnobKind::placement_order;
  if (node->is_number_integer()) return KnobKind::integer;
  if (node->is_number()) return KnobKind::number;
  if (node->is_boolean()) return KnobKind::boolean;
  return KnobKind::string;
}

// Floating-point steps accumulate error (0.1 + 2 * 0.1 = 0.30000000000000004);
// twelve significant digits keep the values as a person would write them.
// to_chars and from_chars, not snprintf and strtod: the same in every locale.
double tidy(double value) {
  char text[32];
  const char* const end = std::to_chars(text, text + sizeof text, value, std::chars_format::general, 12).ptr;
  double tidied = value;
  std::from_chars(text, end, tidied);
  return tidied;
}

// {"range": [lo, hi], "step": s} or {"range": [lo, hi], "factor": f}.
std::vector<json> range_values(const Fields& spec, KnobKind kind, const std::string& path) {
  if (kind != KnobKind::integer && kind != KnobKind::number) {
    spec.fail(spec.pointer(), "a range needs a numeric knob; " + path + " takes " + std::string(kind_text(kind).many));
  }
  const json* range = spec.find("range");
  const json* step = spec.find("step");
  const json* factor = spec.find("factor");
  if (!range || !range->is_array() || range->size() != 2 || !(*range)[0].is_number() || !(*range)[1].is_number()) {
    spec.fail(spec.at("range"), "expected [lo, hi]" + (range ? ", got " + range->dump() : std::string()));
  }
  if (!step == !factor) spec.fail(spec.pointer(), "expected either \"step\" or \"factor\" beside \"range\"");
  const json& increment = step ? *step : *factor;
  const std::string increment_pointer = spec.at(step ? "step" : "factor");
  if (!increment.is_number()) spec.fail(increment_pointer, "expected a number, got " + got(increment));
  if (kind == KnobKind::integer) {
    for (size_t i = 0; i < 2; ++i) {
      if (!(*range)[i].is_number_integer()) {
        spec.fail(spec.at("range") + "/" + std::to_string(i),
                  path + " takes integers; expected an integer, got " + got((*range)[i]));
      }
    }
    if (!increment.is_number_integer()) {
      spec.fail(increment_pointer, path + " takes integers; expected an integer, got " + got(increment));
    }
  }
  const double lo = (*range)[0].get<double>(), hi = (*range)[1].get<double>(), by = increment.get<double>();
  if (lo > hi) spec.fail(spec.at("range"), "expected lo <= hi, got " + range->dump());
  if (step && !(by > 0)) spec.fail(increment_pointer, "must be > 0, got " + increment.dump());
  if (factor && !(by > 1)) spec.fail(increment_pointer, "must be > 1, got " + increment.dump());
  if (factor && !(lo > 0)) spec.fail(spec.at("range") + "/0", "a factor range needs lo > 0, got " + (*range)[0].dump());

  std::vector<json> values;
  auto add = [&](const json& value) {
    values.push_back(value);
    if (values.size() > kMaxKnobValues) {
      spec.fail(spec.pointer(), "the range gives more than " + std::to_string(kMaxKnobValues) + " values");
    }
  };
  if (kind == KnobKind::integer) {
    // Integers stay integers: no rounding, and overflow ends the range.
    const int64_t ilo = (*range)[0].get<int64_t>(), ihi = (*range)[1].get<int64_t>(), iby = increment.get<int64_t>();
    for (int64_t v = ilo; v <= ihi;) {
      add(v);
      if (step ? __builtin_add_overflow(v, iby, &v) : __builtin_mul_overflow(v, iby, &v)) break;
    }
  } else {
    for (int i = 0;; ++i) {
      const double v = tidy(step ? lo + i * by : lo * std::pow(by, i));
      if (v > hi) break;
      add(v);
    }
  }
  return values;
}

Knob parse_knob(const std::string& path, const json& spec, const json& normalized, std::string_view source) {
  const std::string pointer = "/space/" + json_pointer_token(path);
  const KnobKind kind = knob_kind(normalized, path, pointer, source);
  Knob knob{path, {}};
  if (spec.is_object()) {
    knob.values = range_values(Fields(&spec, pointer, source, {"range", "step", "factor"}), kind, path);
    return knob;
  }
  if (!spec.is_array()) {
    fail(source, pointer, "expected a list of values or {\"range\": [lo, hi], \"step\" or \"factor\": x}, got " + got(spec));
  }
  if (spec.empty()) fail(source, pointer, "expected at least one value");
  for (size_t i = 0; i < spec.size(); ++i) {
    const std::string at = pointer + "/" + std::to_string(i);
    if (!fits(spec[i], kind)) {
      const KindText text = kind_text(kind);
      fail(source, at, "expected " + std::string(text.one) + " (" + path + " takes " + std::string(text.many) +
                           "), got " + got(spec[i]));
    }
    for (size_t j = 0; j < i; ++j) {
      if (spec[j] == spec[i]) fail(source, at, "duplicate of value " + std::to_string(j) + " (" + spec[j].dump() + ")");
    }
    knob.values.push_back(spec[i]);
  }
  return knob;
}

// A list of expression strings, each parsed with its pointer; absent is empty.
std::vector<NamedExpr> parse_expressions(const Fields& root, std::string_view key, std::string_view source) {
  std::vector<NamedExpr> expressions;
  const json* list = root.find(key);
  if (!list) return expressions;
  if (!list->is_array()) root.fail(root.at(key), "expected a list of expressions, got " + got(*list));
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string pointer = root.at(key) + "/" + std::to_string(i);
    if (!(*list)[i].is_string()) root.fail(pointer, "expected an expression string, got " + got((*list)[i]));
    expressions.push_back({Expr::parse((*list)[i].get<std::string>(), std::string(source) + ": " + pointer), pointer});
  }
  return expressions;
}

std::vector<Objective> parse_objectives(const Fields& root, std::string_view source) {
  const json* list = root.find("objectives");
  const std::string pointer = root.at("objectives");
  if (!list) root.fail(pointer, "expected at least one objective, e.g. [{\"metric\": \"peak_mem\", \"goal\": \"min\"}]");
  if (!list->is_array()) root.fail(pointer, "expected a list of objectives, got " + got(*list));
  if (list->empty()) root.fail(pointer, "expected at least one objective");
  std::vector<Objective> objectives;
  for (size_t i = 0; i < list->size(); ++i) {
    const Fields fields(&(*list)[i], pointer + "/" + std::to_string(i), source, {"metric", "goal"});
    Objective objective;
    objective.metric = fields.string("metric", "");
    if (objective.metric.empty()) fields.fail(fields.at("metric"), "expected a metric name, e.g. \"peak_mem\"");
    // A misspelt objective would run the whole study for an empty front.
    if (const MetricResolution resolved = resolve_metric(objective.metric); !resolved.metric) {
      fields.fail(fields.at("metric"), resolved.error);
    }
    for (const Objective& earlier : objectives) {
      if (earlier.metric == objective.metric) fields.fail(fields.at("metric"), "\"" + objective.metric + "\" is already an objective");
    }
    const std::string goal = fields.string("goal", "min");
    if (goal != "min" && goal != "max") fields.fail(fields.at("goal"), "expected \"min\" or \"max\", got \"" + goal + "\"");
    objective.goal = goal == "min" ? Goal::minimize : Goal::maximize;
    objectives.push_back(objective);
  }
  return objectives;
}

// Without a "reference", the reference is the base with every compression and
// memory-saving knob at its uncompressed value (DESIGN.md, loss_delta); world
// and placement stay the base's, so only the knobs' effect on loss is compared.
json default_reference(json base) {
  set_path(base, "checkpoint.every", 0);
  set_path(base, "precision.activations", "fp32");
  set_path(base, "precision.compute", "fp32");
  set_path(base, "quant.grad", "fp32");
  set_path(base, "quant.weights", "fp32");
  set_path(base, "topk.grad", 1.0);
  set_path(base, "topk.attention", 0);
  set_path(base, "shard.strategy", "ddp");
  return base;
}

void parse_search(const Fields& root, Study& study, std::string_view source) {
  const Fields search(root.find("search"), "/search", source, {"strategy", "budget", "seed", "halving", "nsga2"});
  SearchSettings& s = study.search;
  s.strategy = search.string("strategy", s.strategy);
  if (s.strategy != "grid" && s.strategy != "random" && s.strategy != "halving" && s.strategy != "nsga2") {
    search.fail(search.at("strategy"), "expected one of grid, random, halving, nsga2, got \"" + s.strategy + "\"");
  }
  const Fields budget(search.find("budget"), "/search/budget", source, {"trials", "seconds"});
  if (budget.find("trials")) s.budget_trials = static_cast<int>(budget.integer("trials", 0, 1, kIntMax));
  if (budget.find("seconds")) {
    s.budget_seconds = budget.number("seconds", 0);
    if (!(*s.budget_seconds > 0)) budget.fail(budget.at("seconds"), "must be > 0, got " + json(*s.budget_seconds).dump());
  }
  s.seed = static_cast<uint64_t>(search.integer("seed", static_cast<int64_t>(s.seed), 0, INT64_MAX));
  const Fields halving(search.find("halving"), "/search/halving", source, {"min_steps", "eta"});
  s.halving_min_steps = static_cast<int>(halving.integer("min_steps", s.halving_min_steps, 1, kIntMax));
  s.halving_eta = static_cast<int>(halving.integer("eta", s.halving_eta, 2, kIntMax));
  // Halving's rounds grow from min_steps up to the study's steps.
  if (s.strategy == "halving" && s.halving_min_steps > study.steps) {
    halving.fail(halving.at("min_steps"), "must be <= steps=" + std::to_string(study.steps) + " for strategy halving, got " +
                                              std::to_string(s.halving_min_steps));
  }
  const Fields nsga2(search.find("nsga2"), "/search/nsga2", source, {"population"});
  s.nsga2_population = static_cast<int>(nsga2.integer("population", s.nsga2_population, 4, kIntMax));
}

void parse_launcher(const Fields& root, Study& study, std::string_view source) {
  const Fields launcher(root.find("launcher"), "/launcher", source,
                        {"kind", "timeout_s", "mpirun", "mpirun_args", "trial_args", "trace"});
  LauncherSettings& l = study.launcher;
  l.kind = launcher.string("kind", l.kind);
  if (l.kind != "local") {
    // A Slurm sweep is chosen where it runs (`memfront sweep --launcher slurm` on
    // a login node), so one study file serves a laptop and a cluster.
    launcher.fail(launcher.at("kind"), "expected \"local\", got \"" + l.kind +
                                           "\" (a Slurm sweep is `memfront sweep study.json --launcher slurm`)");
  }
  l.timeout_s = launcher.number("timeout_s", l.timeout_s);
  if (!(l.timeout_s > 0)) launcher.fail(launcher.at("timeout_s"), "must be > 0, got " + json(l.timeout_s).dump());
  l.mpirun = launcher.string("mpirun", l.mpirun);
  if (l.mpirun.empty()) launcher.fail(launcher.at("mpirun"), "expected the mpirun command, got \"\"");
  auto strings = [&](const char* key) {
    std::vector<std::string> list;
    const json* args = launcher.find(key);
    if (!args) return list;
    if (!args->is_array()) launcher.fail(launcher.at(key), "expected a list of strings, got " + got(*args));
    for (size_t i = 0; i < args->size(); ++i) {
      if (!(*args)[i].is_string()) {
        launcher.fail(launcher.at(key) + "/" + std::to_string(i), "expected a string, got " + got((*args)[i]));
      }
      list.push_back((*args)[i].get<std::string>());
    }
    return list;
  };
  l.mpirun_args = strings("mpirun_args");
  l.trial_args = strings("trial_args");
  // The launcher sets these itself, per trial.
  for (size_t i = 0; i < l.trial_args.size(); ++i) {
    for (const char* own : {"--config", "--out", "--trace"}) {
      const std::string& arg = l.trial_args[i];
      if (arg == own || arg.starts_with(std::string(own) + "=")) {
        launcher.fail(launcher.at("trial_args") + "/" + std::to_string(i),
                      std::string(own) + " is set by the launcher for each trial (use \"trace\": true for traces)");
      }
    }
  }
  if (const json* trace = launcher.find("trace")) {
    if (!trace->is_boolean()) launcher.fail(launcher.at("trace"), "expected true or false, got " + got(*trace));
    l.trace = trace->get<bool>();
  }
}

// The study's name names its results file (results/<study>.jsonl).
bool is_file_name(const std::string& name) {
  if (name.empty() || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char ch) {
    return std::isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
  });
}

// Errors of a study that was handed over in memory name its study, not a file.
std::string study_source(const Study& study) { return study.path.empty() ? study.name : study.path.string(); }

// The constraint a normalized config fails first, or nullopt.
std::optional<size_t> failed_constraint(const Study& study, const json& normalized) {
  const NameLookup lookup = config_lookup(normalized);
  for (size_t i = 0; i < study.constraints.size(); ++i) {
    if (!study.constraints[i].expr.test(lookup)) return i;
  }
  return std::nullopt;
}

}  // namespace

Study parse_study(const json& j, std::string_view source) {
  const Fields root(&j, "", source,
                    {"study", "base", "space", "constraints", "objectives", "outcome_constraints", "reference", "steps",
                     "warmup", "repeats", "search", "launcher", "link"});
  Study study;

  if (!root.find("study")) root.fail("/study", "expected the study's name");
  study.name = root.string("study", "");
  if (!is_file_name(study.name)) {
    root.fail("/study", "expected a name of letters, digits, '.', '_' and '-' (it names the results file), got \"" +
                            study.name + "\"");
  }

  // The base must be a valid config on its own; its normalized JSON is the
  // catalogue of knob paths and their types for the space and constraints.
  const json* base = root.find("base");
  study.base = base ? *base : json::object();
  if (!study.base.is_object()) root.fail("/base", "expected a config object, got " + got(study.base));
  reject_study_settings(study.base, "/base", source);
  const json normalized = to_json(parse_config(study.base, std::string(source) + ": /base"));

  study.steps = static_cast<int>(root.integer("steps", study.steps, 1, kIntMax));
  study.warmup = static_cast<int>(root.integer("warmup", study.warmup, 0, kIntMax));
  study.repeats = static_cast<int>(root.integer("repeats", study.repeats, 1, kIntMax));
  const Fields link(root.find("link"), "/link", source, {"latency_us", "bandwidth_gbps"});
  study.link_latency_us = link.number("latency_us", study.link_latency_us);
  if (!(study.link_latency_us >= 0)) link.fail(link.at("latency_us"), "must be >= 0, got " + json(study.link_latency_us).dump());
  study.link_bandwidth_gbps = link.number("bandwidth_gbps", study.link_bandwidth_gbps);
  if (!(study.link_bandwidth_gbps > 0)) {
    link.fail(link.at("bandwidth_gbps"), "must be > 0, got " + json(study.link_bandwidth_gbps).dump());
  }

  // Knobs come in the order of the object's keys, which nlohmann::json sorts.
  if (const json* space = root.find("space")) {
    if (!space->is_object()) root.fail("/space", "expected an object of knob path -> values, got " + got(*space));
    for (const auto& [path, spec] : space->items()) study.space.push_back(parse_knob(path, spec, normalized, source));
  }
  uint64_t points = 1;
  for (const Knob& knob : study.space) {
    if (__builtin_mul_overflow(points, knob.values.size(), &points)) {
      root.fail("/space", "more than " + std::to_string(std::numeric_limits<uint64_t>::max()) + " points");
    }
  }

  // Constraints name config paths: a misspelt one is caught here, even when
  // the logical operators would never evaluate it.
  study.constraints = parse_expressions(root, "constraints", source);
  const NameLookup lookup = config_lookup(normalized);
  for (const NamedExpr& constraint : study.constraints) {
    for (const std::string& name : constraint.expr.names()) {
      if (!lookup(name)) {
        root.fail(constraint.pointer, "unknown name '" + name + "' in \"" + constraint.expr.text() +
                                          "\" (expected a path of the normalized config, e.g. shard.group)");
      }
    }
  }
  study.objectives = parse_objectives(root, source);
  // Outcome constraints name metrics: a misspelt one is caught here, before any trial runs.
  for (NamedExpr& constraint : parse_expressions(root, "outcome_constraints", source)) {
    const std::string where = std::string(source) + ": " + constraint.pointer;
    study.outcome_constraints.emplace_back(std::move(constraint.expr), std::move(constraint.pointer), where);
  }

  // A given reference is a merge patch of the base (RFC 7386: objects merge,
  // null removes a key of the base).
  if (const json* overrides = root.find("reference")) {
    if (!overrides->is_object()) root.fail("/reference", "expected an object of config overrides, got " + got(*overrides));
    reject_study_settings(*overrides, "/reference", source);
    json reference = study.base;
    reference.merge_patch(*overrides);
    study.reference = finish_config(study, std::move(reference), std::string(source) + ": /reference");
  } else {
    study.reference = finish_config(study, default_reference(study.base),
                                    std::string(source) + ": reference (the base, uncompressed)");
  }

  parse_search(root, study, source);
  parse_launcher(root, study, source);
  return study;
}

Study load_study(const std::filesystem::path& path) {
  const json j = read_json_file(path, "study file");
  Study study = parse_study(j, path.string());
  study.path = path;
  return study;
}

// The knobs are written into the base as the file gives it, not into its
// normalized form: what the base leaves out keeps following parse_config's
// defaults. So with "world" in the space and no shard.group or
// placement.ranks_per_node in the base, both follow the world (one group, one
// node); a base that sets them fixes them, and the points where they do not
// divide the world are invalid configs that enumerate_space skips.
std::variant<Config, ConfigViolation> check_config_at(const Study& study, const Point& point) {
  if (point.size() != study.space.size()) {
    throw std::out_of_range("config_at: a point of " + std::to_string(point.size()) + " indices for " +
                            std::to_string(study.space.size()) + " knobs");
  }
  json config = study.base;
  std::string indices;
  for (size_t k = 0; k < point.size(); ++k) {
    const Knob& knob = study.space[k];
    if (point[k] < 0 || static_cast<size_t>(point[k]) >= knob.values.size()) {
      throw std::out_of_range("config_at: index " + std::to_string(point[k]) + " of knob " + knob.path + " with " +
                              std::to_string(knob.values.size()) + " values");
    }
    set_path(config, knob.path, knob.values[point[k]]);
    if (k) indices += ',';
    indices += std::to_string(point[k]);
  }
  return check_config(with_study_settings(study, std::move(config)), study.name + " point [" + indices + "]");
}

bool space_contains(const Study& study, const Config& config) {
  const json normalized = to_json(config);
  Point point;
  for (const Knob& knob : study.space) {
    const json* value = find_path(normalized, knob.path);
    if (!value) return false;
    const auto found = std::find(knob.values.begin(), knob.values.end(), *value);
    if (found == knob.values.end()) return false;
    point.push_back(static_cast<int>(found - knob.values.begin()));
  }
  const std::variant<Config, ConfigViolation> made = check_config_at(study, point);
  if (!std::holds_alternative<Config>(made)) return false;
  Config candidate = std::get<Config>(made);
  candidate.train.steps = config.train.steps;
  return config_id(candidate) == config_id(config) && satisfies_constraints(study, candidate);
}

Config config_at(const Study& study, const Point& point) {
  std::variant<Config, ConfigViolation> config = check_config_at(study, point);
  if (const ConfigViolation* violation = std::get_if<ConfigViolation>(&config)) {
    throw InputError(violation->message());
  }
  return std::get<Config>(std::move(config));
}

bool satisfies_constraints(const Study& study, const Config& config) {
  return !failed_constraint(study, to_json(config));
}

CandidateSpace::CandidateSpace(const Study& study)
    : study_(study), size_(space_size(study)), removed_by_(study.constraints.size(), 0) {}

Point CandidateSpace::point_at(uint64_t index) const {
  Point point(study_.space.size(), 0);
  for (size_t k = point.size(); k-- > 0;) {
    const uint64_t count = study_.space[k].values.size();
    point[k] = static_cast<int>(index % count);
    index /= count;
  }
  return point;
}

uint64_t CandidateSpace::index_of(const Point& point) const {
  uint64_t index = 0;
  for (size_t k = 0; k < point.size(); ++k) index = index * study_.space[k].values.size() + static_cast<uint64_t>(point[k]);
  return index;
}

std::optional<Candidate> CandidateSpace::draw(uint64_t index) {
  const Point point = point_at(index);
  // Only the config's own rules count as invalid points; an error in a
  // constraint (a type error, say) is the study's and goes to the caller.
  std::variant<Config, ConfigViolation> checked = check_config_at(study_, point);
  if (const ConfigViolation* violation = std::get_if<ConfigViolation>(&checked)) {
    ++invalid_by_rule_[violation->pointer];
    if (first_invalid_.empty()) first_invalid_ = violation->message();
    return std::nullopt;
  }
  Config& config = std::get<Config>(checked);
  ++valid_;
  if (std::optional<size_t> failed = failed_constraint(study_, to_json(config))) {
    ++removed_by_[*failed];
    return std::nullopt;
  }
  if (!ids_.insert(config_id(config)).second) return std::nullopt;
  return Candidate{index, point, std::move(config)};
}

void CandidateSpace::fail_empty() const {
  const std::string source = study_source(study_);
  if (valid_ == 0) {
    std::string counts;
    for (const auto& [rule, count] : invalid_by_rule_) {
      counts += (counts.empty() ? "" : ", ") + std::to_string(count) + " by " + rule;
    }
    fail(source, "/space", "every point makes an invalid config (" + counts + "); the first: " + first_invalid_);
  }
  uint64_t left = valid_;
  for (size_t i = 0; i < study_.constraints.size(); ++i) {
    if (removed_by_[i] == left) {
      fail(source, study_.constraints[i].pointer,
           "removes every configuration of the space (\"" + study_.constraints[i].expr.text() + "\" is false for the " +
               std::to_string(left) + " valid configs " + (i ? "that pass the constraints before it)" : "of the space)"));
    }
    left -= removed_by_[i];
  }
  throw std::logic_error("CandidateSpace: no candidate, yet no constraint removed them all");
}

std::vector<Candidate> enumerate_space(const Study& study) {
  CandidateSpace space(study);
  std::vector<Candidate> candidates;
  for (uint64_t index = 0; index < space.size(); ++index) {
    if (std::optional<Candidate> candidate = space.draw(index)) candidates.push_back(std::move(*candidate));
  }
  if (candidates.empty()) space.fail_empty();
  return candidates;
}

uint64_t space_size(const Study& study) {
  uint64_t points = 1;
  for (const Knob& knob : study.space) points *= knob.values.size();
  return points;
}

std::vector<std::string> study_differences(const json& recorded, const json& now) {
  // A value as a message shows it: short, on one line.
  auto shown = [](const json& value) {
    std::string text = value.dump();
    return text.size() > 40 ? text.substr(0, 37) + "..." : text;
  };
  std::vector<std::string> differences;
  std::map<std::string, size_t> appended;  // array pointer -> elements added at its end so far
  for (const json& change : json::diff(recorded, now)) {
    std::string path = change.at("path").get<std::string>();
    const std::string op = change.at("op").get<std::string>();
    // json::diff adds to the end of an array at "<array>/-": named by the index here.
    if (path.ends_with("/-")) {
      const std::string array = path.substr(0, path.size() - 2);
      path = array + "/" + std::to_string(recorded.at(json::json_pointer(array)).size() + appended[array]++);
    }
    const std::string where = path.empty() ? "/" : path;
    if (op == "replace") {
      differences.push_back(where + ": " + shown(recorded.at(json::json_pointer(path))) + " -> " +
                            shown(change.at("value")));
    } else if (op == "add") {
      differences.push_back(where + ": added " + shown(change.at("value")));
    } else {
      differences.push_back(where + ": removed");
    }
  }
  return differences;
}

}  // namespace memfront
