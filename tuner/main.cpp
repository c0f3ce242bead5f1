// memfront: the tuner's command line.
//   memfront sweep study.json [--results F] [--resume [--revise]] [--no-prune] [--replay recorded.jsonl] ...
//                  [--launcher slurm [--partition P] [--account A] [--time T] [--gpus-per-node G]
//                   [--max-parallel P] [--sbatch-arg=ARG ...] [--srun-arg=ARG ...] [--no-wait]]
//   memfront collect results.jsonl
//   memfront pareto results.jsonl [--objectives a,b] [--where EXPR] [--json]
//   memfront export results.jsonl --pick knee|best:<metric>|id:<id> --format memfront|deepspeed|fsdp2|sbatch
//   memfront predict config.json [--world N] [--ranks-per-node R] [--json]
//   memfront calibrate [--out F] [--quick] [--study S] [--allow-loaded]
//   memfront calibrate --validate RESULTS [--calibration F]
//   memfront status results.jsonl
//   memfront metrics
// Exit status (core/exit_code.h): ok; failure, a run-time failure; bad_input
// (one line on stderr); interrupted (what finished is recorded; --resume continues).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <numeric>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>

#include "core/error.h"
#include "core/exit_code.h"
#include "core/json_file.h"
#include "core/jsonl.h"
#include "core/pareto.h"
#include "core/timing.h"
#include "tuner/calibrate.h"
#include "tuner/cost_model.h"
#include "tuner/export.h"
#include "tuner/launcher.h"
#include "tuner/metrics.h"
#include "tuner/process.h"
#include "tuner/search.h"
#include "tuner/slurm_collect.h"
#include "tuner/slurm_launcher.h"
#include "tuner/study.h"
#include "tuner/sweep.h"
#include "tuner/sweep_lock.h"

namespace {

using namespace memfront;

std::atomic<bool> interrupted{false};
void on_interrupt(int) { interrupted.store(true); }

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

// A results file as pareto, export and status read it: a line at a time,
// so that a file of gigabytes takes no more memory than the little kept of
// each trial (where its line is, its objective point); the trials shown are
// read again from their lines. First its outline: the study it goes on with.
struct ResultsOutline {
  std::string path;
  ResultsFile file;             // header, revisions, torn tail; no trials
  std::string spec_where;       // where its study is: "header /study_spec" or "revision 2 /study_spec"
  std::optional<Study> study;   // none for a file that keeps no study
};

// The study of the file's header, or of its last revision, checked as a
// study file is: nothing in a results file is used unchecked (steps of
// 1e300, objectives given as a string).
ResultsOutline outline_of(const std::string& path) {
  ResultsOutline outline{path, read_results_outline(path), "", std::nullopt};
  if (outline.file.truncated_tail) std::cerr << "memfront: warning: " << *outline.file.truncated_tail << "\n";
  outline.spec_where = outline.file.revisions.empty()
                           ? "header /study_spec"
                           : "revision " + std::to_string(outline.file.study_revision()) + " /study_spec";
  if (!outline.file.study_spec().is_null()) {
    outline.study = parse_study(outline.file.study_spec(), path + ": " + outline.spec_where);
  }
  return outline;
}

// Objectives from --objectives ("a,b,-c": a leading '-' maximizes), else the
// study's in the results file, else peak_mem and step_time. Every name must
// be a metric: a misspelt one would give an empty front.
std::vector<Objective> objectives_for(const std::string& flag, const ResultsOutline& outline) {
  std::vector<Objective> objectives;
  for (const std::string& name : split_commas(flag)) {
    const bool maximize = name[0] == '-';
    objectives.push_back({maximize ? name.substr(1) : name, maximize ? Goal::maximize : Goal::minimize});
  }
  const std::string where = flag.empty() ? outline.path + ": " + outline.spec_where + ": /objectives" : "--objectives";
  if (objectives.empty() && outline.study) objectives = outline.study->objectives;
  if (objectives.empty()) objectives = {{"peak_mem", Goal::minimize}, {"step_time", Goal::minimize}};
  for (const Objective& objective : objectives) resolve_metric_or_throw(objective.metric, where);
  return objectives;
}

// --where filters, their names resolved now: an unknown one is an error here,
// not a filter that quietly matches nothing.
std::vector<RecordExpr> filters_for(const std::vector<std::string>& wheres) {
  std::vector<RecordExpr> filters;
  for (const std::string& where : wheres) filters.emplace_back(Expr::parse(where, "--where"), "--where", "--where");
  return filters;
}

// Where a trial's line is, to read it again.
struct TrialLine {
  uint64_t offset = 0;
  int number = 0;
};

// Configs enough to tell which knobs vary between all the trials seen (what
// format_front shows): the first, and for each knob that varies one config
// whose value differs from the first's.
void keep_knob_witness(std::vector<Config>& witnesses, const Config& config) {
  if (witnesses.empty()) {
    witnesses.push_back(config);
    return;
  }
  for (const ConfigKnob& knob : knob_table()) {
    const KnobValue first = knob.read(witnesses.front());
    if (knob.read(config) == first) continue;
    if (std::none_of(witnesses.begin() + 1, witnesses.end(), [&](const Config& c) { return knob.read(c) != first; })) {
      witnesses.push_back(config);
      return;  // it stands for every knob it differs in
    }
  }
}

// One pass over the trials of a results file.
struct TrialPass {
  bool comparable_only = true;  // only the trials of the study's full steps, when the file says what those are
  std::function<void(const TrialRecord&, const TrialLine&)> on_trial;
};

void pass_over_trials(const ResultsOutline& outline, const TrialPass& pass) {
  const std::optional<int> steps =
      pass.comparable_only && outline.study && outline.file.study_spec().contains("steps")
          ? std::optional<int>(outline.study->steps)
          : std::nullopt;  // halving also records short runs: they are not comparable
  read_results(outline.path, [&](TrialRecord&& record, const JsonlLine& line) {
    if (!steps || record.config.train.steps == *steps) pass.on_trial(record, {line.begin, line.number});
  });
}

// The objective points of the trials that count and pass the filters, and
// where their lines are.
struct ScoredTrials {
  std::vector<ObjectivePoint> points;
  std::vector<TrialLine> lines;
  size_t considered = 0;                  // the trials that count, whatever their status
  std::vector<Config> knob_witnesses;     // of the trials that count (keep_knob_witness)
  std::map<std::string, int> status_counts;
  std::vector<TrialRecord> ids_and_statuses;  // with keep_statuses: each trial's id and status only
};

ScoredTrials score_trials(const ResultsOutline& outline, const std::vector<Objective>& objectives,
                          const std::vector<RecordExpr>& filters, bool comparable_only, bool keep_statuses = false) {
  const ObjectiveScorer score(objectives);
  ScoredTrials scored;
  pass_over_trials(outline, {comparable_only, [&](const TrialRecord& record, const TrialLine& line) {
                               ++scored.considered;
                               ++scored.status_counts[std::string(to_string(record.status))];
                               keep_knob_witness(scored.knob_witnesses, record.config);
                               if (keep_statuses) {
                                 TrialRecord slim;
                                 slim.id = record.id;
                                 slim.status = record.status;
                                 scored.ids_and_statuses.push_back(std::move(slim));
                               }
                               std::optional<ObjectivePoint> point = score(record);
                               if (!point || !passes_filters(record, filters)) return;
                               scored.points.push_back(std::move(*point));
                               scored.lines.push_back(line);
                             }});
  return scored;
}

// The Pareto front of the scored trials, ordered by the first objective:
// indices into scored.points (as front_of orders its records).
std::vector<size_t> front_of_scored(const ScoredTrials& scored) {
  std::vector<size_t> front = pareto_front(scored.points);
  std::sort(front.begin(), front.end(), [&](size_t a, size_t b) { return scored.points[a] < scored.points[b]; });
  return front;
}

// The front's records, read again, then the knob witnesses (configs only):
// for format_front, which shows the rows of the first `front size` records
// and the knobs that vary between all of them.
std::vector<TrialRecord> front_records(const ResultsOutline& outline, const ScoredTrials& scored,
                                       const std::vector<size_t>& front, bool with_witnesses) {
  std::vector<TrialRecord> records;
  for (size_t i : front) records.push_back(read_record_at(outline.path, scored.lines[i].offset, scored.lines[i].number));
  if (with_witnesses) {
    for (const Config& config : scored.knob_witnesses) {
      TrialRecord witness;
      witness.config = config;
      witness.status = TrialStatus::invalid;  // a config only: never a row
      records.push_back(std::move(witness));
    }
  }
  return records;
}

std::vector<size_t> first_indices(size_t count) {
  std::vector<size_t> indices(count);
  std::iota(indices.begin(), indices.end(), 0);
  return indices;
}

ResultsFile read_with_warning(const std::string& path) {
  ResultsFile file = read_results(path);
  if (file.truncated_tail) std::cerr << "memfront: warning: " << *file.truncated_tail << "\n";
  return file;
}

// What `memfront sweep` was told.
struct SweepFlags {
  std::string study_path, results, replay, strategy, calibration_path;
  bool resume = false, revise = false, no_prune = false;
  int remeasure = kDefaultRemeasure;
  int confirm = kDefaultConfirm;
  std::optional<int> budget;
  std::optional<uint64_t> seed;
  std::string launcher;  // local or slurm; empty: slurm where the results file has a Slurm folder
  SlurmOptions slurm;    // the Slurm flags given; the others come from the sweep's earlier submissions
  std::vector<std::string> slurm_flags_given;
  bool no_wait = false;
};

// The Slurm options of a sweep: those given now, the rest as the sweep's
// last array was submitted with (so that --resume needs none of them again).
SlurmOptions slurm_options_for(const SweepFlags& flags, const SlurmState& state) {
  SlurmOptions options = state.arrays().empty() ? SlurmOptions{} : state.arrays().back().options;
  auto given = [&](const char* flag) {
    return std::ranges::find(flags.slurm_flags_given, flag) != flags.slurm_flags_given.end();
  };
  if (given("--partition")) options.partition = flags.slurm.partition;
  if (given("--account")) options.account = flags.slurm.account;
  if (given("--time")) options.time = flags.slurm.time;
  if (given("--gpus-per-node")) options.gpus_per_node = flags.slurm.gpus_per_node;
  if (given("--max-parallel")) options.max_parallel = flags.slurm.max_parallel;
  if (given("--sbatch-arg")) options.sbatch_args = flags.slurm.sbatch_args;
  if (given("--srun-arg")) options.srun_args = flags.slurm.srun_args;
  return options;
}

int run_sweep_command(const SweepFlags& flags) {
  const nlohmann::json spec = read_json_file(flags.study_path, "study file");
  Study study = parse_study(spec, flags.study_path);
  study.path = flags.study_path;
  if (flags.budget) study.search.budget_trials = *flags.budget;
  if (flags.seed) study.search.seed = *flags.seed;
  if (!flags.strategy.empty()) study.search.strategy = flags.strategy;

  SweepOptions options;
  options.study_spec = spec;
  options.resume = flags.resume;
  options.revise = flags.revise;
  options.prune = !flags.no_prune;
  options.remeasure = flags.remeasure;
  options.confirm = flags.confirm;
  options.calibration = load_calibration(
      flags.calibration_path.empty() ? default_calibration_path() : std::filesystem::path(flags.calibration_path));
  options.progress_bar = isatty(STDERR_FILENO) && flags.replay.empty();
  options.interrupt = &interrupted;
  // A kill or a closed terminal stops a sweep as Ctrl-C does: the trial is
  // stopped, what finished is kept. (A SIGKILL leaves the trial to its
  // watchdog, tuner/process.h.)
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, on_interrupt);

  if (!flags.replay.empty()) {
    // Strategies against a recorded exhaustive sweep: nothing is launched.
    ResultsFile recorded = read_with_warning(flags.replay);
    ReplayLauncher launcher(recorded.trials);
    options.results = flags.results;  // replays record only when asked
    options.remeasure = 0;             // and measure nothing
    options.confirm = 0;
    SweepSummary summary = run_sweep(study, options, launcher, std::cout);
    // Hypervolume reached against the recorded sweep's front.
    const ObjectiveScorer score(study.objectives);
    std::vector<ObjectivePoint> all_points, reached;
    for (const TrialRecord& r : recorded.trials) {
      if (auto p = score(r); p && meets_outcome_constraints(r, study)) all_points.push_back(*p);
    }
    for (const TrialRecord& r : full_length(summary.records, study.steps)) {
      if (auto p = score(r); p && meets_outcome_constraints(r, study)) reached.push_back(*p);
    }
    ObjectivePoint reference(study.objectives.size(), -1e300);
    for (const auto& p : all_points) {
      for (size_t k = 0; k < p.size(); ++k) reference[k] = std::max(reference[k], p[k]);
    }
    for (double& r : reference) r += std::abs(r) * 0.1 + 1e-12;
    const double total = hypervolume(all_points, reference);
    const double got = hypervolume(reached, reference);
    std::printf("replayed %d trials (%d lookups) of %zu recorded: hypervolume %.1f%% of the recorded front's\n",
                summary.proposed, launcher.lookups(), recorded.trials.size(), total > 0 ? 100 * got / total : 0.0);
    return 0;
  }

  options.results = flags.results.empty() ? std::filesystem::path("results") / (study.name + ".jsonl")
                                          : std::filesystem::path(flags.results);
  options.trial_exe = find_trial_executable();

  // A results file whose trials went to Slurm goes on there: its jobs may
  // still be running, and only the Slurm runner knows to wait for them.
  const std::filesystem::path slurm_folder = SlurmState::folder_of(options.results);
  const bool submitted_to_slurm = std::filesystem::exists(slurm_folder / "state.jsonl");
  const std::string launcher_kind = !flags.launcher.empty() ? flags.launcher : submitted_to_slurm ? "slurm" : "local";
  if (launcher_kind == "local" && submitted_to_slurm) {
    throw InputError(options.results.string() + ": its trials were submitted to Slurm (" + slurm_folder.string() +
                     "); continue it with --launcher slurm, or merge what finished with memfront collect");
  }
  if (launcher_kind == "local" && !flags.slurm_flags_given.empty()) {
    throw InputError(flags.slurm_flags_given.front() + ": a Slurm option; add --launcher slurm");
  }
  if (launcher_kind == "slurm" && !std::filesystem::exists(options.results) && std::filesystem::exists(slurm_folder)) {
    throw InputError(slurm_folder.string() + " is left from a sweep whose results file is gone; remove it first");
  }
  std::cerr << "memfront: study " << study.name << ": " << space_size(study) << " configurations in the space, "
            << study.search.strategy << " search, results in " << options.results.string() << "\n";
  SweepSummary summary;
  if (launcher_kind == "slurm") {
    SlurmState earlier(options.results);
    earlier.load();
    SlurmRunner::Settings settings;
    settings.results = options.results;
    settings.job_name = "memfront-" + study.name;
    settings.options = slurm_options_for(flags, earlier);
    settings.wait = !flags.no_wait;
    SlurmRunner runner(settings, &interrupted, std::cerr);
    summary = run_sweep(study, options, runner, std::cerr);
  } else {
    SweepLock lock(options.results, std::cerr);
    LocalLauncher launcher(&interrupted, &lock);
    summary = run_sweep(study, options, launcher, std::cerr);
  }
  // The front of the full-length trials that meet the outcome constraints.
  const std::vector<TrialRecord> comparable = full_length(summary.records, study.steps);
  const std::vector<size_t> front = front_of(comparable, study.objectives, study.outcome_constraints);
  // A sweep that only submitted has no front to show yet.
  if (summary.left_running == 0 || !comparable.empty()) {
    std::cout << "\nPareto front of " << study.name << " (" << front.size() << " of " << comparable.size()
              << " full-length trials; " << summary.launched << " run, " << summary.reused << " already recorded, "
              << summary.failed << " failed, " << summary.pruned << " pruned, "
              << (summary.confirmation_runs > 0 ? std::to_string(summary.confirmation_runs) + " to confirm the front, "
                                                : std::string())
              << static_cast<int>(summary.seconds) << " s):\n"
              << format_front(comparable, front, study.objectives,
                              summary.confirmed_step_s.empty() ? nullptr : &summary.confirmed_step_s);
  }
  const std::string results_text = shell_command({options.results.string()});
  if (summary.interrupted) {
    std::cerr << "memfront: interrupted; what finished is in " << options.results.string()
              << "; run again with --resume to continue\n";
    if (summary.left_running > 0) {
      std::cerr << "memfront: " << summary.left_running << " trials go on in Slurm (scancel their jobs to stop "
                << "them); memfront collect " << results_text << " merges them as they finish\n";
    }
    return code(ExitCode::interrupted);
  }
  if (summary.left_running > 0) {
    std::cerr << "memfront: " << summary.left_running << " trials are in Slurm's queue; memfront status "
              << results_text << " shows them, memfront collect " << results_text
              << " merges what has finished, and sweep --resume continues the study (and waits)\n";
  }
  if (summary.lost > 0) {
    std::cerr << "memfront: " << summary.lost << " trials ended without a result (cancelled, preempted, or lost "
              << "with their node) and are not recorded; run again with --resume to run them\n";
    return code(ExitCode::failure);
  }
  return 0;
}

// The record an export --pick names, read again from its line: among every
// trial for id:<id>, else among the trials that count and pass the filters.
TrialRecord pick_record(const ResultsOutline& outline, const std::string& pick,
                        const std::vector<Objective>& objectives, const std::vector<RecordExpr>& filters) {
  if (pick.rfind("id:", 0) == 0) {
    const std::string id = pick.substr(3);
    std::optional<TrialLine> found;
    pass_over_trials(outline, {false, [&](const TrialRecord& r, const TrialLine& line) {
                                 if (!found && r.id == id) found = line;
                               }});
    if (!found) throw InputError("--pick: no trial with id " + id);
    return read_record_at(outline.path, found->offset, found->number);
  }
  if (pick == "knee") {
    const ScoredTrials scored = score_trials(outline, objectives, filters, true);
    const std::vector<size_t> front = front_of_scored(scored);
    if (front.empty()) throw InputError("--pick: no ok trial passes the filters");
    std::vector<ObjectivePoint> points;
    for (size_t i : front) points.push_back(scored.points[i]);
    const TrialLine& knee = scored.lines[front[knee_point(points)]];
    return read_record_at(outline.path, knee.offset, knee.number);
  }
  if (pick.rfind("best:", 0) == 0) {
    const std::string metric_name = pick.substr(5);
    const MetricRef metric = resolve_metric_or_throw(metric_name, "--pick");
    // The direction of an objective of that name, else the metric's own (paths: down).
    bool maximize = metric.info && metric.info->direction == MetricDirection::maximize;
    for (const Objective& objective : objectives) {
      if (objective.metric == metric_name) maximize = objective.goal == Goal::maximize;
    }
    const ObjectiveScorer score(objectives);
    bool any_passes = false;  // an ok trial with every objective that passes the filters
    std::optional<TrialLine> best;
    std::optional<double> best_value;
    pass_over_trials(outline, {true, [&](const TrialRecord& r, const TrialLine& line) {
                                 if (r.status != TrialStatus::ok || !passes_filters(r, filters)) return;
                                 any_passes = any_passes || score(r).has_value();
                                 const std::optional<double> value = metric(r);
                                 if (!value) return;
                                 if (!best || (maximize ? *value > *best_value : *value < *best_value)) {
                                   best = line;
                                   best_value = value;
                                 }
                               }});
    if (!any_passes) throw InputError("--pick: no ok trial passes the filters");
    if (!best) throw InputError("--pick: no ok trial has metric '" + metric_name + "'");
    return read_record_at(outline.path, best->offset, best->number);
  }
  throw InputError("--pick: expected knee, best:<metric> or id:<id>, got '" + pick + "'");
}

void print_prediction(const Config& config, const Prediction& p, const Calibration& calibration) {
  std::printf("prediction for world %d (%d per node), shard.strategy %s%s\n", config.world,
              config.placement.ranks_per_node, std::string(to_string(config.shard.strategy)).c_str(),
              calibration.measured ? "" : "  [uncalibrated: run memfront calibrate]");
  std::printf("per-rank peak memory (largest rank)\n");
  for (MemCategory c : kAllMemCategories) {
    std::printf("  %-12s %12s\n", std::string(to_string(c)).c_str(), format_bytes(p.peak[static_cast<int>(c)]).c_str());
  }
  std::printf("  %-12s %12s\n", "total", format_bytes(p.peak_total).c_str());
  std::printf("bytes per step, all ranks: %s intra-node, %s inter-node\n", format_bytes(p.bytes_intra_node).c_str(),
              format_bytes(p.bytes_inter_node).c_str());
  std::printf("step time %.2f ms (compute %.2f ms, communication %.2f ms), %.3g FLOP per step\n", p.step_time_s * 1e3,
              p.compute_s * 1e3, p.comm_s * 1e3, p.flops_per_step);
}

}  // namespace

static int run_command_line(int argc, char** argv) {
  CLI::App app{"memfront: tune the memory trade-offs of distributed training"};
  app.set_version_flag("--version", "memfront " MEMFRONT_VERSION);
  app.require_subcommand(1);

  auto* sweep = app.add_subcommand("sweep", "run a study's trials and record them");
  SweepFlags flags;
  sweep->add_option("study", flags.study_path, "study file (JSON)")->required();
  sweep->add_option("--results", flags.results, "results file (default results/<study>.jsonl)");
  CLI::Option* resume_flag =
      sweep->add_flag("--resume", flags.resume, "continue an existing results file, skipping recorded trials");
  sweep->add_flag("--revise", flags.revise,
                  "with --resume: continue a results file whose study file changed, as a new revision of the study "
                  "(recorded in the file; pareto and status then use it)")
      ->needs(resume_flag);
  sweep->add_flag("--no-prune", flags.no_prune, "run configurations the cost model predicts to break a constraint");
  sweep->add_option("--remeasure", flags.remeasure,
                    "times a trial whose step time was contended (the machine was busy) is run again")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sweep->add_option("--confirm", flags.confirm,
                    "runs of every front point once the search is done, interleaved (the confirmation round; 0: none)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sweep->add_option("--replay", flags.replay, "answer trials from a recorded sweep instead of running them");
  sweep->add_option("--budget", flags.budget, "most trials (overrides the study)")->check(CLI::PositiveNumber);
  sweep->add_option("--seed", flags.seed, "search seed (overrides the study)");
  sweep->add_option("--strategy", flags.strategy, "grid, random, halving or nsga2 (overrides the study)")
      ->check(CLI::IsMember({"grid", "random", "halving", "nsga2"}));
  sweep->add_option("--calibration", flags.calibration_path, "calibration file (default: memfront calibrate's)");
  sweep->add_option("--launcher", flags.launcher,
                    "local, or slurm: each round as a job array (default: slurm when the results file was "
                    "submitted to Slurm, else local)")
      ->check(CLI::IsMember({"local", "slurm"}));
  std::vector<CLI::Option*> slurm_flags = {
      sweep->add_option("--partition", flags.slurm.partition, "Slurm partition"),
      sweep->add_option("--account", flags.slurm.account, "Slurm account"),
      sweep->add_option("--time", flags.slurm.time,
                        "time limit of each array element, as sbatch takes it (default: the study's timeout "
                        "for every repeat, plus a minute)"),
      sweep->add_option("--gpus-per-node", flags.slurm.gpus_per_node,
                        "GPUs per node (default: one per rank for backend cuda)")
          ->check(CLI::PositiveNumber),
      sweep->add_option("--max-parallel", flags.slurm.max_parallel, "elements of an array that run at once")
          ->check(CLI::PositiveNumber),
      // One value per occurrence, so that the study file after them stays the study.
      sweep->add_option("--sbatch-arg", flags.slurm.sbatch_args,
                        "one more sbatch option, e.g. --sbatch-arg=--qos=high (repeatable)")
          ->allow_extra_args(false),
      sweep->add_option("--srun-arg", flags.slurm.srun_args,
                        "one more srun option, e.g. --srun-arg=--mpi=pmi2 (repeatable; default --mpi=pmix)")
          ->allow_extra_args(false)};
  sweep->add_flag("--no-wait", flags.no_wait,
                  "submit to Slurm and return; memfront status, collect and sweep --resume take it from there");

  auto* pareto = app.add_subcommand("pareto", "print the Pareto front of a results file");
  std::string results_path, objectives_flag;
  std::vector<std::string> wheres;
  bool as_json = false;
  pareto->add_option("results", results_path, "results file (JSONL)")->required();
  pareto->add_option("--objectives", objectives_flag, "comma-separated metrics; -name maximizes (default: the study's)");
  pareto->add_option("--where", wheres, "keep trials where EXPR holds, e.g. 'peak_mem<=16GiB'");
  pareto->add_flag("--json", as_json, "print the front as JSON records");

  auto* exporter = app.add_subcommand("export", "export a trial's configuration");
  std::string pick = "knee", format = "memfront", out_path;
  exporter->add_option("results", results_path, "results file (JSONL)")->required();
  exporter->add_option("--pick", pick, "knee, best:<metric> or id:<id> (default knee)");
  exporter->add_option("--format", format, export_format_list());
  exporter->add_option("--where", wheres, "consider only trials where EXPR holds");
  exporter->add_option("--objectives", objectives_flag, "objectives for knee/front (default: the study's)");
  exporter->add_option("--out", out_path, "write here instead of standard output");

  auto* predictor = app.add_subcommand("predict", "predict memory, bytes and time of a config");
  std::string config_path, calibration_path;
  std::optional<int> world, ranks_per_node;
  predictor->add_option("config", config_path, "trial config (JSON)")->required();
  predictor->add_option("--world", world, "ranks (overrides the config)")->check(CLI::PositiveNumber);
  predictor->add_option("--ranks-per-node", ranks_per_node, "ranks per node")->check(CLI::PositiveNumber);
  predictor->add_option("--calibration", calibration_path, "calibration file");
  predictor->add_flag("--json", as_json, "print the prediction as JSON");

  auto* calibrate = app.add_subcommand("calibrate", "time this machine's step calls for the cost model, or check it");
  CalibrateFlags calibrate_flags;
  std::string validate_path;
  calibrate->add_option("--out", calibrate_flags.out, "calibration file (default: the one predict and sweep read)");
  calibrate->add_option("--study", calibrate_flags.study, "time the calls of this study's configurations");
  calibrate->add_flag("--quick", calibrate_flags.quick, "fewer repetitions");
  calibrate->add_flag("--allow-loaded", calibrate_flags.allow_loaded,
                      "keep figures measured on a busy machine (marked loaded)");
  calibrate->add_option("--validate", validate_path,
                        "instead, hold the cost model against the trials of this results file");
  calibrate->add_option("--calibration", calibration_path, "with --validate: predict every trial again from this");

  auto* status = app.add_subcommand("status", "summarize a results file, and the Slurm jobs of its sweep");
  status->add_option("results", results_path, "results file (JSONL)")->required();

  auto* metrics = app.add_subcommand("metrics", "list the metrics that objectives, constraints and --where can name");

  auto* collect = app.add_subcommand("collect", "merge the finished trials of a Slurm sweep into its results file");
  collect->add_option("results", results_path, "results file (JSONL)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : code(ExitCode::bad_input);
  }

  try {
    if (sweep->parsed()) {
      for (const CLI::Option* option : slurm_flags) {
        if (option->count() > 0) flags.slurm_flags_given.push_back(option->get_name());
      }
      if (flags.no_wait) flags.slurm_flags_given.push_back("--no-wait");
      if (!flags.replay.empty() && (!flags.launcher.empty() || !flags.slurm_flags_given.empty())) {
        throw InputError("--replay runs nothing: it takes no launcher options");
      }
      return run_sweep_command(flags);
    }
    if (pareto->parsed()) {
      const ResultsOutline outline = outline_of(results_path);
      const std::vector<Objective> objectives = objectives_for(objectives_flag, outline);
      const ScoredTrials scored = score_trials(outline, objectives, filters_for(wheres), true);
      const std::vector<size_t> front = front_of_scored(scored);
      const std::vector<TrialRecord> records = front_records(outline, scored, front, !as_json);
      if (as_json) {
        nlohmann::json array = nlohmann::json::array();
        for (const TrialRecord& record : records) array.push_back(to_json(record));
        std::cout << array.dump(2) << "\n";
      } else {
        std::cout << "Pareto front of " << outline.file.header.study << ": " << front.size() << " of "
                  << scored.considered << " trials\n"
                  << format_front(records, first_indices(front.size()), objectives);
      }
      return 0;
    }
    if (exporter->parsed()) {
      const ExportFormat export_format = export_format_named(format, "--format");
      const ResultsOutline outline = outline_of(results_path);
      const std::vector<Objective> objectives = objectives_for(objectives_flag, outline);
      const TrialRecord record = pick_record(outline, pick, objectives, filters_for(wheres));
      const std::string text = export_trial(record, export_format, {results_path, outline.file.header});
      if (out_path.empty()) {
        std::cout << text;
      } else {
        replace_file_atomically(out_path, text);
        std::cerr << "memfront: exported trial " << record.id << " as " << format << " to " << out_path << "\n";
      }
      return 0;
    }
    if (predictor->parsed()) {
      Config config = load_config(config_path);
      if (world) {
        config.world = *world;
        if (config.shard.strategy != ShardStrategy::hybrid) config.shard.group = *world;
        if (!ranks_per_node) config.placement.ranks_per_node = *world;
        config.placement.order = config.placement.order == PlacementOrder::explicit_list ? PlacementOrder::block
                                                                                         : config.placement.order;
      }
      if (ranks_per_node) config.placement.ranks_per_node = *ranks_per_node;
      config = parse_config(to_json(config), config_path);  // validate the overridden config as a whole
      const Calibration calibration =
          load_calibration(calibration_path.empty() ? default_calibration_path() : std::filesystem::path(calibration_path));
      const Prediction prediction = predict(config, calibration);
      // The ranks of one machine: all of them where nodes are emulated here.
      if (const int cores = online_cores(); oversubscribes(config.world, config.train.threads, cores)) {
        std::cerr << "memfront: warning: run by the local launcher (which emulates every node here), " << config.world
                  << " ranks x " << config.train.threads << " threads would share this machine's " << cores
                  << " cores: the measured step time would be contended (the prediction assumes a core per thread)\n";
      }
      if (as_json) {
        std::cout << to_json(prediction).dump(2) << "\n";
      } else {
        print_prediction(config, prediction, calibration);
      }
      return 0;
    }
    if (calibrate->parsed()) {
      if (!validate_path.empty()) return run_validate(validate_path, calibration_path, std::cout, std::cerr);
      std::signal(SIGINT, on_interrupt);
      return run_calibrate(calibrate_flags, &interrupted, std::cout, std::cerr);
    }
    if (status->parsed()) {
      const ResultsOutline outline = outline_of(results_path);
      const std::vector<Objective> objectives = objectives_for("", outline);
      // Slurm's part needs each trial's id and status, and only a Slurm sweep has one.
      const bool slurm = std::filesystem::exists(SlurmState::folder_of(results_path));
      const ScoredTrials scored = score_trials(outline, objectives, {}, false, slurm);
      std::cout << outline.file.header.study << ": " << scored.considered << " trials recorded (";
      bool first = true;
      for (const auto& [name, count] : scored.status_counts) {
        std::cout << (first ? "" : ", ") << count << " " << name;
        first = false;
      }
      std::cout << "); Pareto front of " << pareto_front(scored.points).size() << " points\n";
      std::cout << slurm_status(results_path, scored.ids_and_statuses);
      return 0;
    }
    if (metrics->parsed()) {
      std::cout << metrics_markdown();
      return 0;
    }
    if (collect->parsed()) {
      const CollectSummary collected = collect_slurm_results(results_path, std::cerr);
      std::cout << "collected " << collected.merged << " trials (" << collected.failed << " failed); "
                << collected.in_queue << " queued or running; " << collected.lost
                << " ended without a result (memfront sweep --resume runs them)";
      if (collected.waiting_for_reference > 0) {
        std::cout << "; " << collected.waiting_for_reference << " finished but wait for their reference's record";
      }
      std::cout << "\n";
      return 0;
    }
  } catch (const InputError& e) {
    std::cerr << "memfront: " << e.what() << "\n";
    return code(ExitCode::bad_input);
  } catch (const std::exception& e) {
    std::cerr << "memfront: " << e.what() << "\n";
    return code(ExitCode::failure);
  }
  return 0;
}

// What a command printed is checked as a written file is: an export or a
// front sent to a full disk is a failure, not a silent success.
int main(int argc, char** argv) {
  const int status = run_command_line(argc, argv);
  errno = 0;
  std::cout.flush();
  if (std::fflush(stdout) != 0 || std::ferror(stdout) || !std::cout) {
    std::cerr << "memfront: standard output: cannot write: " << (errno != 0 ? std::strerror(errno) : "write error")
              << "\n";
    return status == 0 ? code(ExitCode::failure) : status;
  }
  return status;
}
