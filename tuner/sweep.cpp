#include "tuner/sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <map>
#include <ostream>
#include <set>
#include <stdexcept>
#include <utility>

#include "core/error.h"
#include "core/pareto.h"
#include "tuner/metrics.h"
#include "tuner/process.h"
#include "tuner/progress.h"
#include "tuner/search.h"

namespace memfront {

namespace {

using Clock = std::chrono::steady_clock;

// A program that does not answer --version within this long has no version to record.
constexpr double kVersionProbeTimeoutS = 10;

// The first line `program --version` prints ("" when it cannot run), for the
// versions of tools the tuner does not link, such as mpirun. The program name
// comes from a study file: it runs as one argv word, never through a shell.
std::string version_of(const std::string& program) {
  ProcessRequest request;
  request.argv = {program, "--version"};
  request.timeout_s = kVersionProbeTimeoutS;
  ProcessEnd end;
  try {
    end = run_process(request);
  } catch (const std::runtime_error&) {
    return "";
  }
  if (end.timed_out) return "";
  std::string text = end.out.substr(0, end.out.find('\n'));
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return text;
}

Config with_steps(Config config, int steps) {
  config.train.steps = steps;
  return config;
}

// The replay key of a config: everything but the step count, which halving
// varies (0 steps, which no config has, stands for any).
std::string replay_key(const Config& config) { return to_json(with_steps(config, 0)).dump(); }

// The first outcome constraint the prediction breaks. A constraint is judged
// only when the cost model predicts every metric it names (the registry's
// predicted counterparts, core/metric_registry.h): not over loss, say.
const RecordExpr* predicted_violation(const Study& study, const Prediction& prediction) {
  for (const RecordExpr& constraint : study.outcome_constraints) {
    std::vector<std::pair<std::string, double>> predicted;
    for (const std::string& name : constraint.expr.names()) {
      const MetricInfo* metric = find_metric(name);
      const std::optional<double> value = metric && metric->predicted ? metric->predicted(prediction) : std::nullopt;
      if (!value) break;
      predicted.emplace_back(name, *value);
    }
    if (predicted.size() < constraint.expr.names().size()) continue;
    auto lookup = [&](std::string_view name) -> std::optional<ExprValue> {
      for (const auto& [known, value] : predicted) {
        if (known == name) return ExprValue(value);
      }
      return std::nullopt;
    };
    if (!constraint.expr.test(lookup)) return &constraint;
  }
  return nullptr;
}

// Keeps the results file and the ids it already holds.
class Recorder {
 public:
  Recorder(const Study& study, const SweepOptions& options, std::ostream& log) {
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
      // Records of another version of the study would mix into its front
      // unawares: a changed study goes on only as a revision the file records.
      std::optional<StudyRevision> revision;
      if (!existing.study_spec().is_null() && !options.study_spec.is_null()) {
        const std::vector<std::string> changes = study_differences(existing.study_spec(), options.study_spec);
        std::string listed;
        for (const std::string& change : changes) listed += (listed.empty() ? "" : "; ") + change;
        if (!changes.empty() && !options.revise) {
          throw InputError(path.string() + ": holds another version of study '" + study.name +
                           "' (the study file changed: " + listed + "); continue it with the study it was made by, "
                           "continue it as a new revision with --resume --revise, or give the changed study a new "
                           "--results file");
        }
        if (!changes.empty()) {
          revision = StudyRevision{existing.study_revision() + 1, utc_now(), options.study_spec, changes};
          revision_text_ = "revision " + std::to_string(revision->number) + " (" + listed + ")";
        }
      }
      for (TrialRecord& record : existing.trials) {
        const std::string id = record.id;
        known_[id] = std::move(record);
      }
      writer_.emplace(ResultsWriter::open_append(path));
      if (const auto& repair = writer_->repair()) log << "memfront: warning: " << *repair << "\n";
      if (revision) {
        writer_->append(*revision);
        log << "memfront: " << path.string() << ": study '" << study.name << "' goes on as " << revision_text_ << "\n";
      }
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
  std::string revision_text_;  // the revision this sweep recorded, if it did
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
  outcome.record.id = config_id(request.config);
  outcome.record.config = request.config;
  auto found = by_id_.find(replay_key(request.config));
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
  if (outcome.record.metrics && request.config.train.steps < recorded.config.train.steps) {
    // A shorter run of the same config is the recorded run's beginning.
    TrialMetrics& m = *outcome.record.metrics;
    const size_t keep = static_cast<size_t>(request.config.train.warmup + request.config.train.steps);
    if (m.loss_curve.size() > keep) m.loss_curve.resize(keep);
    if (!m.loss_curve.empty()) m.final_loss = m.loss_curve.back();
  }
  return outcome;
}

bool SequentialRunner::start(const LaunchRequest& request, int repeats, Done done) {
  Trial trial;
  trial.request = request;
  trial.repeats = repeats;
  trial.done = std::move(done);
  if (repeats > 1) {
    round_.push_back(std::move(trial));  // run with the round's others, interleaved (finish_round)
    return true;
  }
  if (!measure_once(trial)) return false;
  trial.end();
  return true;
}

TrialRunner::RoundEnd SequentialRunner::finish_round() {
  // Repeats interleaved: each pass runs every trial of the round that needs
  // another run once, so a change in the machine's load touches every
  // configuration alike instead of all the repeats of one.
  for (bool ran = true; ran;) {
    ran = false;
    for (Trial& trial : round_) {
      if (trial.complete()) continue;
      ran = true;
      if (!measure_once(trial)) {
        round_.clear();  // nothing is recorded for the round's unfinished trials: a resume runs them
        return {.interrupted = true};
      }
    }
  }
  for (Trial& trial : round_) trial.end();
  round_.clear();
  return {};
}

bool SequentialRunner::measure_once(Trial& trial) {
  LaunchOutcome outcome = launcher_.run(trial.request);
  if (outcome.end.interrupted || (interrupt_ && interrupt_->load())) return false;
  if (const TimingQuality* timing = contended_timing(outcome.record);
      timing && static_cast<int>(trial.set_aside.size()) < remeasure_) {
    trial.set_aside.push_back(
        {{"step_time_median_s", outcome.record.metrics->step_time_s.median}, {"reason", timing->reason}});
    // Run alone, it is measured again at once; in an interleaved round, in the next pass.
    return trial.repeats > 1 || measure_once(trial);
  }
  trial.runs.push_back(std::move(outcome));
  return true;
}

bool SequentialRunner::Trial::complete() const {
  return static_cast<int>(runs.size()) >= repeats || (!runs.empty() && runs.back().record.status != TrialStatus::ok);
}

void SequentialRunner::Trial::end() {
  if (!set_aside.empty()) {
    for (LaunchOutcome& run : runs) run.record.provenance["remeasured"] = set_aside;
  }
  done(std::move(runs));
}

TrialRecord record_of_runs(std::vector<LaunchOutcome> runs, int repeats, const std::optional<Prediction>& prediction,
                           bool is_reference, std::optional<double> reference_loss,
                           const std::filesystem::path& results) {
  std::sort(runs.begin(), runs.end(), [](const LaunchOutcome& a, const LaunchOutcome& b) {
    const double ta = a.record.metrics ? a.record.metrics->step_time_s.median : 0;
    const double tb = b.record.metrics ? b.record.metrics->step_time_s.median : 0;
    return ta < tb;
  });
  nlohmann::json times = nlohmann::json::array();
  for (const LaunchOutcome& run : runs) {
    times.push_back(run.record.metrics ? run.record.metrics->step_time_s.median : 0.0);
  }
  LaunchOutcome& median = runs[runs.size() / 2];
  TrialRecord record = std::move(median.record);
  if (repeats > 1) record.provenance["repeat_step_time_medians_s"] = times;
  record.prediction = prediction;
  // The trial names its trace relative to its record; the results file names
  // it relative to itself.
  if (!record.trace.empty()) record.trace = path_from_results(median.record_dir / record.trace, results);
  if (record.metrics && record.status == TrialStatus::ok) {
    if (is_reference) {
      record.metrics->loss_delta = 0.0;
    } else if (reference_loss) {
      record.metrics->loss_delta = record.metrics->final_loss - *reference_loss;
    }
  }
  return record;
}

namespace {

// One sweep: asks the strategy for rounds, finds, prunes or runs each
// configuration of a round (the reference at the round's steps first), and
// records each as it ends.
class Sweep {
 public:
  Sweep(const Study& study, const SweepOptions& options, TrialRunner& runner, std::ostream& log)
      : study_(study),
        options_(options),
        runner_(runner),
        strategy_(make_strategy(study, study.search.budget_trials)),
        first_round_(strategy_->next()),
        recorder_(study, options, log),
        progress_(SweepProgress::options(options.progress_bar, expected_trials()), log) {
    // Made by the launcher when a trial runs there: a replay makes none.
    work_dir_ = options.results.empty() ? std::filesystem::temp_directory_path() / ("memfront-" + study.name)
                                        : std::filesystem::path(options.results.string() + ".trials");
  }

  SweepSummary run() {
    for (std::vector<Proposal> batch = std::move(first_round_); !batch.empty(); batch = strategy_->next()) {
      run_round(batch);
      if (summary_.interrupted || summary_.left_running > 0 || summary_.lost > 0 || out_of_time()) break;
    }
    if (options_.confirm > 0 && !summary_.interrupted && summary_.left_running == 0 && summary_.lost == 0) {
      confirm_front();
    }
    progress_.finish();
    summary_.records = recorder_.all();
    summary_.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    return summary_;
  }

 private:
  // The confirmation round (SweepOptions::confirm). Its runs go to a folder of
  // their own, so that the recorded trials' files stay as they were.
  void confirm_front() {
    const std::vector<TrialRecord> comparable = full_length(recorder_.all(), study_.steps);
    const std::vector<size_t> front = front_of(comparable, study_.objectives, study_.outcome_constraints);
    for (size_t index : front) {
      const TrialRecord& record = comparable[index];
      if (record.status != TrialStatus::ok || !record.metrics || record.metrics->step_time_s.count == 0) continue;
      summary_.confirmed_step_s[record.id] = {record.metrics->step_time_s.median};
      LaunchRequest request = request_for(record.config, record.prediction.value_or(Prediction{}));
      request.work_dir = work_dir_ / "confirmation";
      const std::string id = record.id;
      auto done = [this, id](std::vector<LaunchOutcome> runs) {
        summary_.confirmation_runs += static_cast<int>(runs.size());
        for (const LaunchOutcome& run : runs) {
          if (run.record.status == TrialStatus::ok && run.record.metrics && run.record.metrics->step_time_s.count) {
            summary_.confirmed_step_s[id].push_back(run.record.metrics->step_time_s.median);
          }
        }
      };
      if (!runner_.start(request, options_.confirm, done)) {
        summary_.interrupted = true;
        return;
      }
    }
    const TrialRunner::RoundEnd end = runner_.finish_round();
    summary_.interrupted = summary_.interrupted || end.interrupted;
  }

  LaunchRequest request_for(const Config& config, const Prediction& prediction) const {
    LaunchRequest request;
    request.config = config;
    request.work_dir = work_dir_;
    request.timeout_s = study_.launcher.timeout_s;
    request.trial_exe = options_.trial_exe;
    request.mpirun = study_.launcher.mpirun;
    request.mpirun_args = study_.launcher.mpirun_args;
    request.trial_args = study_.launcher.trial_args;
    request.trace = study_.launcher.trace;
    request.prediction = prediction;
    request.reference_id = config_id(with_steps(study_.reference, config.train.steps));
    return request;
  }

  // One configuration a round needs: a proposal, or the reference at a step count.
  struct Item {
    Config config;
    std::string id;
    bool is_reference = false;
    std::optional<size_t> proposal;  // index into the round's batch
    Prediction prediction;
  };

  // Trials to expect, where the strategy knows: the reference once, not
  // again when it is a point of a space the strategy runs whole.
  std::optional<int> expected_trials() const {
    const std::optional<uint64_t> planned = strategy_->planned();
    if (!planned || *planned >= static_cast<uint64_t>(std::numeric_limits<int>::max())) return std::nullopt;
    const bool runs_reference_anyway =
        !study_.search.budget_trials && space_contains(study_, with_steps(study_.reference, study_.steps));
    return static_cast<int>(*planned) + (runs_reference_anyway ? 0 : 1);
  }

  bool out_of_time() const {
    if (!study_.search.budget_seconds) return false;
    return std::chrono::duration<double>(Clock::now() - start_).count() > *study_.search.budget_seconds;
  }

  void run_round(const std::vector<Proposal>& batch) {
    told_.assign(batch.size(), nullptr);
    for (size_t i = 0; i < batch.size() && !summary_.interrupted; ++i) {
      if (out_of_time()) break;
      const int steps = batch[i].steps;
      // The reference at these steps comes first, once.
      if (!reference_started_.contains(steps)) {
        reference_started_.insert(steps);
        Item reference;
        reference.config = with_steps(study_.reference, steps);
        reference.is_reference = true;
        evaluate(std::move(reference));
        if (summary_.interrupted) break;
      }
      ++summary_.proposed;
      Item trial;
      trial.config = with_steps(batch[i].candidate.config, steps);
      trial.proposal = i;
      evaluate(std::move(trial));
    }
    const TrialRunner::RoundEnd end = runner_.finish_round();
    summary_.interrupted = summary_.interrupted || end.interrupted;
    summary_.left_running += end.left_running;
    summary_.lost += end.lost;
    // Trials that ended while their reference did not are kept back with it.
    for (const auto& [steps, held] : held_) summary_.lost += static_cast<int>(held.size());
    held_.clear();
    // The strategy hears of the round in the order it proposed it.
    for (size_t i = 0; i < batch.size(); ++i) {
      if (told_[i]) strategy_->tell(batch[i], *told_[i]);
    }
  }

  // Finds the item's record, prunes it, or starts it.
  void evaluate(Item item) {
    item.id = config_id(item.config);
    if (const TrialRecord* known = recorder_.find(item.id)) {
      // Settled in this sweep already (the reference is often also a point
      // of the space): the same trial, not one more.
      if (settled_here_.contains(item.id)) {
        tell(item, *known);
        return;
      }
      ++summary_.reused;
      settle(item, *known, SweepProgress::How::recorded);
      return;
    }
    // A configuration already started in this round (the reference is often
    // also a point of the space) waits for that run.
    if (auto running = started_.find(item.id); running != started_.end()) {
      running->second.push_back(std::move(item));
      return;
    }
    item.prediction = predict(item.config, options_.calibration);
    if (options_.prune) {
      if (const RecordExpr* broken = predicted_violation(study_, item.prediction)) {
        TrialRecord pruned;
        pruned.id = item.id;
        pruned.config = item.config;
        pruned.status = TrialStatus::pruned;
        pruned.error = "predicted to break " + broken->pointer + " (" + broken->expr.text() + ")";
        pruned.prediction = item.prediction;
        pruned.provenance = {{"memfront_version", MEMFRONT_VERSION}, {"pruned_at", utc_now()}};
        ++summary_.pruned;
        settle(item, recorder_.add(std::move(pruned)), SweepProgress::How::pruned);
        return;
      }
    }
    const LaunchRequest request = request_for(item.config, item.prediction);
    const std::string id = item.id;
    started_[id].push_back(std::move(item));
    progress_.started(id);
    auto done = [this, id](std::vector<LaunchOutcome> runs) { ended(id, std::move(runs)); };
    if (!runner_.start(request, study_.repeats, done)) {
      started_.erase(id);
      summary_.interrupted = true;
    }
  }

  // A started configuration has ended: its record, unless its reference has
  // not ended yet (a batching runner), which it then waits for.
  void ended(const std::string& id, std::vector<LaunchOutcome> runs) {
    std::vector<Item> items = std::move(started_.at(id));
    started_.erase(id);
    summary_.launched += static_cast<int>(runs.size());
    const bool is_reference = std::ranges::any_of(items, [](const Item& item) { return item.is_reference; });
    const int steps = items.front().config.train.steps;
    if (!is_reference && !reference_loss_.contains(steps)) {
      held_[steps].push_back({std::move(items), std::move(runs)});
      return;
    }
    finish(std::move(items), std::move(runs));
  }

  void finish(std::vector<Item> items, std::vector<LaunchOutcome> runs) {
    const bool is_reference = std::ranges::any_of(items, [](const Item& item) { return item.is_reference; });
    const int steps = items.front().config.train.steps;
    std::optional<double> reference_loss;
    if (auto known = reference_loss_.find(steps); known != reference_loss_.end()) reference_loss = known->second;
    TrialRecord record = record_of_runs(std::move(runs), study_.repeats, items.front().prediction, is_reference,
                                        reference_loss, options_.results);
    if (record.status != TrialStatus::ok) ++summary_.failed;
    const TrialRecord& recorded = recorder_.add(std::move(record));
    // A replay looked the record up: nothing ran.
    settle(items.front(), recorded,
           recorded.provenance.contains("replayed_from") ? SweepProgress::How::looked_up : SweepProgress::How::ran);
    // The items that waited for the same run are the same trial.
    for (size_t i = 1; i < items.size(); ++i) tell(items[i], recorded);
  }

  // An item has its record: counted and shown, then told.
  void settle(const Item& item, const TrialRecord& record, SweepProgress::How how) {
    ++done_;
    settled_here_.insert(item.id);
    progress_.settled(record, how, item.is_reference, done_, summary_.failed, summary_.pruned,
                      front_size_with(record, item.config.train.steps), study_);
    tell(item, record);
  }

  // The record is kept for the strategy, and when the item is a reference,
  // the trials that waited for its loss are finished.
  void tell(const Item& item, const TrialRecord& record) {
    const int steps = item.config.train.steps;
    if (item.proposal) told_[*item.proposal] = &record;
    if (!item.is_reference) return;
    reference_loss_[steps] = record.status == TrialStatus::ok && record.metrics
                                 ? std::optional(record.metrics->final_loss)
                                 : std::nullopt;
    auto waiting = held_.extract(steps);
    if (waiting.empty()) return;
    for (Ended& trial : waiting.mapped()) finish(std::move(trial.items), std::move(trial.runs));
  }

  // The front the progress shows grows one record at a time: keep the
  // objective points of the comparable records (full length, feasible) rather
  // than copying every record after every trial.
  size_t front_size_with(const TrialRecord& record, int steps) {
    if (steps == study_.steps && in_front_points_.insert(record.id).second &&
        meets_outcome_constraints(record, study_)) {
      if (auto point = objective_point(record, study_.objectives)) front_points_.push_back(*point);
    }
    return pareto_front(front_points_).size();
  }

  struct Ended {
    std::vector<Item> items;
    std::vector<LaunchOutcome> runs;
  };

  const Study& study_;
  const SweepOptions& options_;
  TrialRunner& runner_;
  const Clock::time_point start_ = Clock::now();
  SweepSummary summary_;
  // The strategy and its first round first: a study error found while they
  // draw from the space (a constraint that divides by zero) must not leave a
  // results file behind.
  std::unique_ptr<SearchStrategy> strategy_;
  std::vector<Proposal> first_round_;  // handed to run()
  Recorder recorder_;
  SweepProgress progress_;
  std::filesystem::path work_dir_;
  int done_ = 0;
  std::set<std::string> settled_here_;  // ids counted and shown in this sweep
  std::set<int> reference_started_;                   // step counts whose reference was found, pruned or started
  std::map<int, std::optional<double>> reference_loss_;  // steps -> the reference's final loss once it has its record
  std::map<std::string, std::vector<Item>> started_;  // id -> the items waiting for its runs (the first started it)
  std::map<int, std::vector<Ended>> held_;            // steps -> trials that ended before their reference
  std::vector<const TrialRecord*> told_;              // the round's records, by proposal
  std::vector<ObjectivePoint> front_points_;
  std::set<std::string> in_front_points_;             // the reference may also be a point of the space
};

}  // namespace

SweepSummary run_sweep(const Study& study, const SweepOptions& options, Launcher& launcher, std::ostream& log) {
  SequentialRunner runner(launcher, options.interrupt, options.remeasure);
  return run_sweep(study, options, runner, log);
}

SweepSummary run_sweep(const Study& study, const SweepOptions& options, TrialRunner& runner, std::ostream& log) {
  return Sweep(study, options, runner, log).run();
}

std::vector<TrialRecord> full_length(const std::vector<TrialRecord>& records, int steps) {
  std::vector<TrialRecord> kept;
  for (const TrialRecord& record : records) {
    if (record.config.train.steps == steps) kept.push_back(record);
  }
  return kept;
}

bool passes_filters(const TrialRecord& record, const std::vector<RecordExpr>& filters) {
  return std::ranges::all_of(filters, [&](const RecordExpr& filter) { return filter.holds(record).value_or(false); });
}

std::vector<size_t> front_of(const std::vector<TrialRecord>& records, const std::vector<Objective>& objectives,
                             const std::vector<RecordExpr>& filters) {
  const ObjectiveScorer score(objectives);
  std::vector<ObjectivePoint> points;
  std::vector<size_t> members;
  for (size_t i = 0; i < records.size(); ++i) {
    auto point = score(records[i]);
    if (!point || !passes_filters(records[i], filters)) continue;
    points.push_back(*point);
    members.push_back(i);
  }
  std::vector<size_t> on_front = pareto_front(points);  // indices into points
  std::sort(on_front.begin(), on_front.end(), [&](size_t a, size_t b) { return points[a] < points[b]; });
  std::vector<size_t> front;
  for (size_t j : on_front) front.push_back(members[j]);
  return front;
}

std::vector<Objective> recorded_objectives(const ResultsHeader& header) {
  std::vector<Objective> objectives;
  const nlohmann::json& spec = header.study_spec;
  if (!spec.is_object() || !spec.contains("objectives") || !spec["objectives"].is_array()) return objectives;
  for (const nlohmann::json& objective : spec["objectives"]) {
    if (!objective.is_object() || !objective.contains("metric") || !objective["metric"].is_string()) continue;
    objectives.push_back({objective["metric"].get<std::string>(),
                          objective.value("goal", std::string("min")) == "max" ? Goal::maximize : Goal::minimize});
  }
  return objectives;
}

std::string format_front(const std::vector<TrialRecord>& records, const std::vector<size_t>& front,
                         const std::vector<Objective>& objectives,
                         const std::map<std::string, std::vector<double>>* confirmed) {
  // The knobs worth showing are those that differ between the records, by path.
  std::vector<const ConfigKnob*> varying;
  for (const ConfigKnob& knob : knob_table()) {
    const bool varies = std::ranges::any_of(records, [&](const TrialRecord& record) {
      return knob.read(record.config) != knob.read(records.front().config);
    });
    if (varies) varying.push_back(&knob);
  }
  std::ranges::sort(varying, {}, &ConfigKnob::path);
  std::string out = "id                ";
  char cell[64];
  for (const Objective& objective : objectives) {
    std::snprintf(cell, sizeof cell, "  %14s", (objective.metric + (objective.goal == Goal::maximize ? "(max)" : "")).c_str());
    out += cell;
  }
  if (confirmed) out += "  step time over its runs    ";
  out += "  knobs\n";
  for (size_t i : front) {
    out += records[i].id;
    for (const Objective& objective : objectives) {
      const auto value = metric_value(records[i], objective.metric);
      std::snprintf(cell, sizeof cell, "  %14s", value ? format_metric(objective.metric, *value).c_str() : "-");
      out += cell;
    }
    if (confirmed) {
      auto runs = confirmed->find(records[i].id);
      if (runs == confirmed->end()) {
        std::snprintf(cell, sizeof cell, "  %-26s", "-");
      } else {
        const Spread spread = spread_of(runs->second);
        std::snprintf(cell, sizeof cell, "  %-26s",
                      (format_metric("step_time", spread.median) + " [" + format_metric("step_time", spread.min) +
                       ", " + format_metric("step_time", spread.max) + "] x" + std::to_string(spread.count))
                          .c_str());
      }
      out += cell;
    }
    out += " ";
    for (const ConfigKnob* knob : varying) {
      out += ' ';
      out += knob->path;
      out += '=';
      out += knob_text(knob->read(records[i].config));
    }
    if (contended_timing(records[i])) out += "  [contended]";
    out += "\n";
  }
  if (std::ranges::any_of(front, [&](size_t i) { return contended_timing(records[i]) != nullptr; })) {
    out += "[contended]: the machine was busy while this trial was timed; its step time measured the load, not "
           "the configuration (metrics.timing.reason). Run it again on a quiet machine.\n";
  }
  return out;
}

}  // namespace memfront
