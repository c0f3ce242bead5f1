#include "tuner/sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <ostream>
#include <set>

#include "core/error.h"
#include "core/pareto.h"
#include "tuner/metrics.h"
#include "tuner/search.h"

namespace memfront {

namespace {

using Clock = std::chrono::steady_clock;

std::string duration_text(double seconds) {
  char text[32];
  const int s = static_cast<int>(std::lround(seconds));
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%dh%02dm", s / 3600, s / 60 % 60);
  } else if (s >= 60) {
    std::snprintf(text, sizeof text, "%dm%02ds", s / 60, s % 60);
  } else {
    std::snprintf(text, sizeof text, "%ds", s);
  }
  return text;
}

// The first line `program --version` prints ("" when it cannot run), for the
// versions of tools the tuner does not link, such as mpirun. The program name
// comes from a study file, so it is quoted for the shell.
std::string version_of(const std::string& program) {
  FILE* pipe = popen((shell_quote(program) + " --version 2>/dev/null").c_str(), "r");
  if (!pipe) return "";
  char line[256] = {};
  const bool got = std::fgets(line, sizeof line, pipe) != nullptr;
  pclose(pipe);
  std::string text = got ? line : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// The replay key of a config: everything but the step count, which halving varies.
std::string replay_key(nlohmann::json config) {
  config["train"].erase("steps");
  return config.dump();
}

Config with_steps(Config config, int steps) {
  config.train.steps = steps;
  return config;
}

// What the cost model says, as values an outcome constraint can name.
std::optional<ExprValue> predicted_value(const Prediction& p, std::string_view name) {
  if (name == "peak_mem") return ExprValue(static_cast<double>(p.peak_total));
  if (name.substr(0, 5) == "peak_") {
    if (auto category = parse_mem_category(name.substr(5))) {
      return ExprValue(static_cast<double>(p.peak[static_cast<int>(*category)]));
    }
  }
  if (name == "step_time") return ExprValue(p.step_time_s);
  if (name == "comm_bytes") return ExprValue(static_cast<double>(p.bytes_intra_node + p.bytes_inter_node));
  if (name == "inter_node_bytes") return ExprValue(static_cast<double>(p.bytes_inter_node));
  if (name == "intra_node_bytes") return ExprValue(static_cast<double>(p.bytes_intra_node));
  return std::nullopt;
}

// The first outcome constraint the prediction breaks; constraints over
// metrics the model does not predict (loss, say) are not judged.
const NamedExpr* predicted_violation(const Study& study, const Prediction& prediction) {
  for (const NamedExpr& constraint : study.outcome_constraints) {
    bool predictable = true;
    for (const std::string& name : constraint.expr.names()) {
      if (!predicted_value(prediction, name)) predictable = false;
    }
    if (!predictable) continue;
    auto lookup = [&](std::string_view name) { return predicted_value(prediction, name); };
    if (!constraint.expr.test(lookup)) return &constraint;
  }
  return nullptr;
}

// Keeps the results file and the ids it already holds.
class Recorder {
 public:
  Recorder(const Study& study, const SweepOptions& options) {
    if (options.results.empty()) return;
    const auto& path = options.results;
    if (std::filesystem::exists(path)) {
      if (!options.resume) {
        throw InputError(path.string() + ": results file exists; use --resume to continue it, or remove it");
      }
      ResultsFile existing = read_results(path);
      if (existing.header.study != study.name) {
        throw InputError(path.string() + ": holds study '" + existing.header.study + "', not '" + study.name + "'");
      }
      for (TrialRecord& record : existing.trials) {
        const std::string id = record.id;
        known_[id] = std::move(record);
      }
      writer_.emplace(ResultsWriter::open_append(path));
    } else {
      if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
      ResultsHeader header;
      header.study = study.name;
      header.machine = detect_machine();
      header.machine.mpi = version_of(study.launcher.mpirun);
      header.memfront_version = MEMFRONT_VERSION;
      header.created = utc_now();
      header.study_spec = options.study_spec;
      writer_.emplace(ResultsWriter::create(path, header));
    }
  }

  const TrialRecord* find(const std::string& id) const {
    auto it = known_.find(id);
    return it == known_.end() ? nullptr : &it->second;
  }

  const TrialRecord& add(TrialRecord record) {
    if (writer_) writer_->append(record);
    const std::string id = record.id;
    return known_[id] = std::move(record);
  }

  std::vector<TrialRecord> all() const {
    std::vector<TrialRecord> records;
    for (const auto& [id, record] : known_) records.push_back(record);
    return records;
  }

 private:
  std::optional<ResultsWriter> writer_;
  std::map<std::string, TrialRecord> known_;
};

class Progress {
 public:
  Progress(const SweepOptions& options, std::ostream& log, std::optional<int> expected)
      : bar_(options.progress_bar), log_(log), expected_(expected), start_(Clock::now()) {}

  void trial(const TrialRecord& record, const char* how, int done, int failed, int pruned, size_t front,
             const Study& study) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    if (bar_) {
      const int width = 24;
      const int filled = expected_ ? std::min(width, done * width / std::max(1, *expected_)) : 0;
      std::string bar(filled, '#');
      bar.resize(width, '.');
      std::string eta;
      if (expected_ && done > 0 && done < *expected_) {
        eta = "  ETA " + duration_text(elapsed / done * (*expected_ - done));
      }
      const std::string total = expected_ ? "/" + std::to_string(*expected_) : "";
      char line[256];
      std::snprintf(line, sizeof line, "\r[%s] %d%s trials  %d failed  %d pruned  front %zu  %s%s   ", bar.c_str(),
                    done, total.c_str(), failed, pruned, front, duration_text(elapsed).c_str(), eta.c_str());
      log_ << line << std::flush;
      return;
    }
    std::string line = "[" + std::to_string(done) + (expected_ ? "/" + std::to_string(*expected_) : "") + "] " +
                       record.id + " " + std::string(to_string(record.status)) + " (" + how + ")";
    for (const Objective& objective : study.objectives) {
      if (auto value = metric_value(record, objective.metric)) {
        line += "  " + objective.metric + " " + format_metric(objective.metric, *value);
      }
    }
    if (!record.error.empty()) line += "  " + record.error;
    log_ << line << "\n" << std::flush;
  }

  void finish() {
    if (bar_) log_ << "\n";
  }

 private:
  bool bar_;
  std::ostream& log_;
  std::optional<int> expected_;
  Clock::time_point start_;
};

// A file's path as the results file names it: relative to the results file's
// folder, or as it is when nothing is recorded.
std::string path_from_results(const std::filesystem::path& file, const std::filesystem::path& results) {
  if (results.empty()) return file.string();
  const std::filesystem::path folder = std::filesystem::absolute(results).parent_path().lexically_normal();
  return std::filesystem::absolute(file).lexically_normal().lexically_relative(folder).string();
}

}  // namespace

ReplayLauncher::ReplayLauncher(const std::vector<TrialRecord>& recorded) {
  for (const TrialRecord& record : recorded) by_id_[replay_key(record.config)] = &record;
}

LaunchOutcome ReplayLauncher::run(const LaunchRequest& request) {
  ++lookups_;
  LaunchOutcome outcome;
  const nlohmann::json config = to_json(request.config);
  outcome.record.id = config_id(request.config);
  outcome.record.config = config;
  auto found = by_id_.find(replay_key(config));
  if (found == by_id_.end()) {
    outcome.record.status = TrialStatus::failed;
    outcome.record.error = "not in the recorded sweep";
    return outcome;
  }
  const TrialRecord& recorded = *found->second;
  outcome.record.status = recorded.status;
  outcome.record.error = recorded.error;
  outcome.record.metrics = recorded.metrics;
  outcome.record.provenance = {{"replayed_from", recorded.id}};
  const int recorded_steps = recorded.config["train"]["steps"].get<int>();
  if (outcome.record.metrics && request.config.train.steps < recorded_steps) {
    // A shorter run of the same config is the recorded run's beginning.
    TrialMetrics& m = *outcome.record.metrics;
    const size_t keep = static_cast<size_t>(request.config.train.warmup + request.config.train.steps);
    if (m.loss_curve.size() > keep) m.loss_curve.resize(keep);
    if (!m.loss_curve.empty()) m.final_loss = m.loss_curve.back();
  }
  return outcome;
}

SweepSummary run_sweep(const Study& study, const SweepOptions& options, Launcher& launcher, std::ostream& log) {
  const auto start = Clock::now();
  SweepSummary summary;
  Recorder recorder(study, options);
  const std::vector<Candidate> candidates = enumerate_space(study);
  std::unique_ptr<SearchStrategy> strategy = make_strategy(study, candidates, study.search.budget_trials);

  const std::filesystem::path work_dir =
      options.results.empty() ? std::filesystem::temp_directory_path() / ("memfront-" + study.name)
                              : std::filesystem::path(options.results.string() + ".trials");
  std::filesystem::create_directories(work_dir);

  // Trials to expect, the reference included (halving's total depends on its rounds).
  std::optional<int> expected;
  if (study.search.strategy != "halving") {
    expected = static_cast<int>(candidates.size());
    if (study.search.budget_trials) expected = std::min(*expected, *study.search.budget_trials);
    *expected += 1;
  }
  Progress progress(options, log, expected);
  int done = 0;

  auto out_of_time = [&] {
    if (!study.search.budget_seconds) return false;
    return std::chrono::duration<double>(Clock::now() - start).count() > *study.search.budget_seconds;
  };
  auto interrupted = [&] { return options.interrupt && options.interrupt->load(); };

  // Runs (or finds) one config; returns nullptr when interrupted. The record's
  // loss_delta is its final loss minus `reference_loss` (the reference's at the
  // same steps; the reference's own is 0).
  auto evaluate = [&](const Config& config, bool is_reference, std::optional<double> reference_loss,
                      const char** how) -> const TrialRecord* {
    const std::string id = config_id(config);
    if (const TrialRecord* known = recorder.find(id)) {
      ++summary.reused;
      *how = "recorded";
      return known;
    }
    const Prediction prediction = predict(config, options.calibration);
    if (options.prune) {
      if (const NamedExpr* broken = predicted_violation(study, prediction)) {
        TrialRecord pruned;
        pruned.id = id;
        pruned.config = to_json(config);
        pruned.status = TrialStatus::pruned;
        pruned.error = "predicted to break " + broken->pointer + " (" + broken->expr.text() + ")";
        pruned.prediction = to_json(prediction);
        pruned.provenance = {{"memfront_version", MEMFRONT_VERSION}, {"pruned_at", utc_now()}};
        ++summary.pruned;
        *how = "pruned by the cost model";
        return &recorder.add(std::move(pruned));
      }
    }
    LaunchRequest request;
    request.config = config;
    request.work_dir = work_dir;
    request.timeout_s = study.launcher.timeout_s;
    request.trial_exe = options.trial_exe;
    request.mpirun = study.launcher.mpirun;
    request.mpirun_args = study.launcher.mpirun_args;
    request.trace = study.launcher.trace;
    // Repeats: run it several times and keep the run of median step time.
    std::vector<LaunchOutcome> runs;
    for (int r = 0; r < study.repeats; ++r) {
      LaunchOutcome outcome = launcher.run(request);
      if (outcome.interrupted || interrupted()) return nullptr;
      ++summary.launched;
      runs.push_back(std::move(outcome));
      if (runs.back().record.status != TrialStatus::ok) break;
    }
    std::sort(runs.begin(), runs.end(), [](const LaunchOutcome& a, const LaunchOutcome& b) {
      const double ta = a.record.metrics ? a.record.metrics->step_time_s.median : 0;
      const double tb = b.record.metrics ? b.record.metrics->step_time_s.median : 0;
      return ta < tb;
    });
    TrialRecord record = std::move(runs[runs.size() / 2].record);
    if (study.repeats > 1) {
      nlohmann::json times = nlohmann::json::array();
      for (const LaunchOutcome& run : runs) {
        times.push_back(run.record.metrics ? run.record.metrics->step_time_s.median : 0.0);
      }
      record.provenance["repeat_step_time_medians_s"] = times;
    }
    record.prediction = to_json(prediction);
    // The trial names its trace relative to its record in the work folder;
    // the results file names it relative to itself.
    if (!record.trace.empty()) record.trace = path_from_results(work_dir / record.trace, options.results);
    if (record.status != TrialStatus::ok) ++summary.failed;
    if (record.metrics && record.status == TrialStatus::ok) {
      if (is_reference) {
        record.metrics->loss_delta = 0.0;
      } else if (reference_loss) {
        record.metrics->loss_delta = record.metrics->final_loss - *reference_loss;
      }
    }
    *how = "ran";
    return &recorder.add(std::move(record));
  };

  // The front the progress shows grows one record at a time: keep the
  // objective points of the comparable records (full length, feasible) rather
  // than copying every record after every trial.
  std::vector<ObjectivePoint> front_points;
  std::set<std::string> in_front_points;  // the reference may also be a point of the space
  auto front_size_with = [&](const TrialRecord& record, int steps) {
    if (steps == study.steps && in_front_points.insert(record.id).second && meets_outcome_constraints(record, study)) {
      if (auto point = objective_point(record, study.objectives)) front_points.push_back(*point);
    }
    return pareto_front(front_points).size();
  };

  // The reference at a step count: run once, then found.
  std::map<int, std::optional<double>> reference_loss;
  auto reference_for = [&](int steps) -> bool {
    if (reference_loss.contains(steps)) return true;
    const char* how = "";
    const TrialRecord* reference = evaluate(with_steps(study.reference, steps), true, std::nullopt, &how);
    if (!reference) return false;
    ++done;
    progress.trial(*reference, (std::string(how) + ", reference").c_str(), done, summary.failed, summary.pruned,
                   front_size_with(*reference, steps), study);
    reference_loss[steps] = reference->status == TrialStatus::ok && reference->metrics
                                ? std::optional(reference->metrics->final_loss)
                                : std::nullopt;
    return true;
  };

  while (!summary.interrupted && !out_of_time()) {
    const std::vector<Proposal> batch = strategy->next();
    if (batch.empty()) break;
    for (const Proposal& proposal : batch) {
      if (out_of_time()) break;
      if (!reference_for(proposal.steps)) {
        summary.interrupted = true;
        break;
      }
      ++summary.proposed;
      const char* how = "";
      const TrialRecord* found =
          evaluate(with_steps(candidates[proposal.candidate].config, proposal.steps), false,
                   reference_loss[proposal.steps], &how);
      if (!found) {
        summary.interrupted = true;
        break;
      }
      const TrialRecord& record = *found;
      strategy->tell(proposal, record);
      ++done;
      progress.trial(record, how, done, summary.failed, summary.pruned, front_size_with(record, proposal.steps),
                     study);
    }
  }
  progress.finish();

  summary.records = recorder.all();
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

std::vector<TrialRecord> full_length(const std::vector<TrialRecord>& records, int steps) {
  std::vector<TrialRecord> kept;
  for (const TrialRecord& record : records) {
    const nlohmann::json& train = record.config.contains("train") ? record.config["train"] : nlohmann::json();
    if (train.is_object() && train.value("steps", -1) == steps) kept.push_back(record);
  }
  return kept;
}

bool passes_filters(const TrialRecord& record, const std::vector<NamedExpr>& filters) {
  const NameLookup lookup = record_lookup(record);
  for (const NamedExpr& filter : filters) {
    try {
      if (!filter.expr.test(lookup)) return false;
    } catch (const InputError&) {
      return false;  // the record lacks a metric the filter names
    }
  }
  return true;
}

std::vector<size_t> front_of(const std::vector<TrialRecord>& records, const std::vector<Objective>& objectives,
                             const std::vector<NamedExpr>& filters) {
  std::vector<ObjectivePoint> points;
  std::vector<size_t> members;
  for (size_t i = 0; i < records.size(); ++i) {
    auto point = objective_point(records[i], objectives);
    if (!point || !passes_filters(records[i], filters)) continue;
    points.push_back(*point);
    members.push_back(i);
  }
  std::vector<size_t> front;
  for (size_t j : pareto_front(points)) front.push_back(members[j]);
  std::sort(front.begin(), front.end(), [&](size_t a, size_t b) {
    return *objective_point(records[a], objectives) < *objective_point(records[b], objectives);
  });
  return front;
}

namespace {

// Flattens a config JSON into path -> value text.
void flatten(const nlohmann::json& node, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) flatten(value, prefix.empty() ? key : prefix + "." + key, out);
    return;
  }
  out[prefix] = node.is_string() ? node.get<std::string>() : node.dump();
}

}  // namespace

std::string format_front(const std::vector<TrialRecord>& records, const std::vector<size_t>& front,
                         const std::vector<Objective>& objectives) {
  // The knobs worth showing are those that differ between the records.
  std::vector<std::map<std::string, std::string>> flat(records.size());
  for (size_t i = 0; i < records.size(); ++i) flatten(records[i].config, "", flat[i]);
  std::set<std::string> varying;
  for (size_t i = 1; i < records.size(); ++i) {
    for (const auto& [path, value] : flat[i]) {
      if (flat[0].count(path) == 0 || flat[0].at(path) != value) varying.insert(path);
    }
  }
  std::string out = "id                ";
  char cell[64];
  for (const Objective& objective : objectives) {
    std::snprintf(cell, sizeof cell, "  %14s", (objective.metric + (objective.goal == Goal::maximize ? "(max)" : "")).c_str());
    out += cell;
  }
  out += "  knobs\n";
  for (size_t i : front) {
    out += records[i].id;
    for (const Objective& objective : objectives) {
      const auto value = metric_value(records[i], objective.metric);
      std::snprintf(cell, sizeof cell, "  %14s", value ? format_metric(objective.metric, *value).c_str() : "-");
      out += cell;
    }
    out += " ";
    for (const std::string& path : varying) out += " " + path + "=" + flat[i][path];
    out += "\n";
  }
  return out;
}

}  // namespace memfront
