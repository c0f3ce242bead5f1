// SlurmRunner: a sweep's rounds as job arrays, submitted and waited for.
#include "tuner/slurm_launcher.h"

#include <algorithm>
#include <fstream>
#include <ostream>
#include <set>
#include <stdexcept>
#include <thread>

#include "core/jsonl.h"
#include "tuner/launcher.h"
#include "tuner/slurm_classify.h"
#include "tuner/slurm_records.h"

namespace memfront {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// How often the driver looks for end files, and for elements that left the
// queue: soon after a submission, then less and less often, so that a long
// sweep does not keep slurmctld busy.
constexpr auto kPollInterval = std::chrono::milliseconds(500);
constexpr auto kFirstQueueInterval = std::chrono::milliseconds(2000);
constexpr auto kMaxQueueInterval = std::chrono::milliseconds(30000);
// squeue failing for this long stops the driver (the jobs go on).
constexpr auto kQueueFailureLimit = std::chrono::minutes(5);
// Slurm's default MaxArraySize is 1001 (indices 0..1000): larger rounds are split.
constexpr size_t kMaxArrayElements = 1000;

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error("slurm: " + message); }

}  // namespace

SlurmRunner::SlurmRunner(Settings settings, const std::atomic<bool>* interrupt, std::ostream& log)
    : settings_(std::move(settings)), interrupt_(interrupt), log_(log), state_(settings_.results), lock_(state_) {
  state_.load();
}

bool SlurmRunner::start(const LaunchRequest& request, int repeats, Done done) {
  if (interrupt_ && interrupt_->load()) return false;
  round_.push_back({request, repeats, std::move(done)});
  return true;
}

TrialRunner::RoundEnd SlurmRunner::finish_round() {
  RoundEnd end;
  // A sweep interrupted while it gathered the round submits none of it.
  if (interrupt_ && interrupt_->load()) {
    round_.clear();
    end.interrupted = true;
    return end;
  }
  submit(take_over_earlier_submissions());
  if (settings_.wait) {
    wait(end);
  } else {
    merge_finished();
    end.left_running = static_cast<int>(awaited_.size());
  }
  awaited_.clear();
  round_.clear();
  return end;
}

std::vector<SlurmRunner::Pending*> SlurmRunner::take_over_earlier_submissions() {
  const auto latest = state_.latest_elements();
  std::vector<Pending*> to_submit;
  std::vector<std::pair<Pending*, SlurmState::Element>> earlier;
  for (Pending& trial : round_) {
    const std::string id = config_id(trial.request.config);
    auto found = latest.find(id);
    if (found == latest.end()) {
      to_submit.push_back(&trial);
    } else if (fs::exists(state_.end_path(id))) {
      awaited_[id] = {&trial, found->second, std::nullopt};
    } else {
      earlier.emplace_back(&trial, found->second);
    }
  }
  if (earlier.empty()) return to_submit;
  const std::optional<ArrayStates> queue = client_.queue();
  if (!queue) {
    fail("cannot tell whether trials submitted earlier are still queued, so none is submitted again: " +
         client_.last_error());
  }
  std::set<std::string> gone_jobs;
  for (const auto& [trial, element] : earlier) {
    if (!find_state(*queue, element)) gone_jobs.insert(element.array->job_id);
  }
  const ArrayStates finals = client_.final_states(gone_jobs);
  for (const auto& [trial, element] : earlier) {
    const std::string& id = element.trial().id;
    const ElementVerdict verdict = classify(sight(state_, element, queue, finals));
    switch (verdict.fate) {
      case ElementFate::in_queue:
        log_ << "memfront: trial " << id << ": job " << element.name() << " from an earlier run is "
             << verdict.slurm_state << "; waiting for it\n";
        awaited_[id] = {trial, element, std::nullopt};
        break;
      case ElementFate::finished:
      case ElementFate::awaiting_end_file:
        awaited_[id] = {trial, element, std::nullopt};
        break;
      case ElementFate::recorded:
        trial->done({outcome_of_ended(state_, element, *find_state(finals, element), *verdict.status)});
        break;
      case ElementFate::lost:
        log_ << "memfront: trial " << id << ": job " << element.name() << " " << ended_without_result(verdict.slurm_state)
             << "; submitting it again\n";
        to_submit.push_back(trial);
        break;
      case ElementFate::unknown:  // squeue answered above
        throw std::logic_error("slurm: element " + element.name() + " classified without squeue's answer");
    }
  }
  return to_submit;
}

void SlurmRunner::wait(RoundEnd& end) {
  auto interval = kFirstQueueInterval;
  auto next_check = Clock::now() + interval;
  while (!awaited_.empty()) {
    if (merge_finished()) interval = kFirstQueueInterval;
    if (awaited_.empty()) break;
    if (interrupt_ && interrupt_->load()) {
      end.interrupted = true;
      end.left_running = static_cast<int>(awaited_.size());
      break;
    }
    if (Clock::now() >= next_check) {
      check_queue(end);
      next_check = Clock::now() + interval;
      interval = std::min<std::chrono::milliseconds>(interval * 3 / 2, kMaxQueueInterval);
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void SlurmRunner::submit(const std::vector<Pending*>& trials) {
  std::map<ArrayShape, std::vector<Pending*>> by_shape;
  for (Pending* trial : trials) by_shape[shape_of(trial->request.config, settings_.options)].push_back(trial);
  for (const auto& [shape, same_shape] : by_shape) {
    for (size_t first = 0; first < same_shape.size(); first += kMaxArrayElements) {
      const size_t last = std::min(same_shape.size(), first + kMaxArrayElements);
      submit_array(shape, std::vector<Pending*>(same_shape.begin() + static_cast<std::ptrdiff_t>(first),
                                                same_shape.begin() + static_cast<std::ptrdiff_t>(last)));
    }
  }
}

void SlurmRunner::submit_array(const ArrayShape& shape, const std::vector<Pending*>& trials) {
  for (const char* sub : {"trials", "arrays", "logs"}) fs::create_directories(state_.folder() / sub);
  SlurmState::Array array;
  array.number = static_cast<int>(state_.arrays().size()) + 1;
  array.options = settings_.options;
  array.repeats = trials.front()->repeats;
  array.timeout_s = trials.front()->request.timeout_s;

  BatchScriptInput script;
  script.shape = shape;
  script.trials_dir = state_.trials_dir();
  script.repeats = array.repeats;
  script.timeout_s = array.timeout_s;
  script.srun_args = settings_.options.srun_args;
  const std::vector<std::string> srun = srun_options(shape, settings_.options.srun_args);
  for (const Pending* trial : trials) {
    const LaunchRequest& request = trial->request;
    const std::string id = config_id(request.config);
    // What an earlier, unfinished submission of this trial left (the record
    // memfront-trial writes at its start) must not pass for this run's.
    std::error_code ignored;
    for (int run = 1; run <= array.repeats; ++run) {
      fs::remove(state_.record_path(id, run), ignored);
      fs::remove(state_.stderr_path(id, run), ignored);
    }
    fs::remove(state_.end_path(id), ignored);
    replace_file_atomically(state_.config_path(id), to_json(request.config).dump(2) + "\n");
    // The compute nodes see the same file system, not this process's PATH or working folder.
    const auto trial_exe = find_program(request.trial_exe.string());
    if (!trial_exe) fail("no executable memfront-trial at '" + request.trial_exe.string() + "'");
    std::vector<std::string> command = {fs::absolute(*trial_exe).lexically_normal().string(), "--config",
                                        state_.config_path(id).string()};
    const std::vector<std::string> flags = trial_flags(request, state_.trials_dir() / (id + ".trace.json"));
    command.insert(command.end(), flags.begin(), flags.end());
    script.elements.push_back({id, command});
    std::vector<std::string> srun_line = {"srun"};
    srun_line.insert(srun_line.end(), srun.begin(), srun.end());
    srun_line.insert(srun_line.end(), command.begin(), command.end());
    array.trials.push_back({id, request.config, request.reference_id, request.prediction,
                            shell_command(srun_line)});
  }
  const fs::path script_path = fs::path("arrays") / (std::to_string(array.number) + ".sbatch");
  replace_file_atomically(state_.folder() / script_path, batch_script(script));

  SbatchInput sbatch;
  sbatch.job_name = settings_.job_name;
  sbatch.array = array_spec(static_cast<int>(trials.size()), settings_.options.max_parallel);
  sbatch.shape = shape;
  sbatch.time = settings_.options.time.empty() ? default_time_limit(array.timeout_s, array.repeats)
                                               : settings_.options.time;
  sbatch.options = settings_.options;
  sbatch.script = script_path;
  array.job_id = client_.submit(sbatch_command(sbatch), state_.folder());
  array.submitted = utc_now();
  const SlurmState::Array& stored = state_.append(std::move(array));
  for (size_t i = 0; i < trials.size(); ++i) {
    awaited_[stored.trials[i].id] = {trials[i], {&stored, static_cast<int>(i)}, std::nullopt};
  }
  log_ << "memfront: submitted job " << stored.job_id << ": " << trials.size() << " trials as array " << sbatch.array
       << ", each on " << shape.nodes << " node(s) x " << shape.tasks_per_node << " task(s); "
       << (state_.folder() / script_path).string() << "\n";
}

bool SlurmRunner::merge_finished() {
  bool merged = false;
  for (auto it = awaited_.begin(); it != awaited_.end();) {
    if (!fs::exists(state_.end_path(it->first))) {
      ++it;
      continue;
    }
    Pending* trial = it->second.trial;
    const SlurmState::Element element = it->second.element;
    it = awaited_.erase(it);
    trial->done(outcomes_of_finished(state_, element));
    merged = true;
  }
  return merged;
}

void SlurmRunner::check_queue(RoundEnd& end) {
  const auto now = Clock::now();
  const std::optional<ArrayStates> queue = client_.queue();
  if (!queue) {
    if (!queue_failing_since_) {
      queue_failing_since_ = now;
      log_ << "memfront: warning: " << client_.last_error() << "; trying again\n";
    } else if (now - *queue_failing_since_ > kQueueFailureLimit) {
      fail(client_.last_error() + " for " + std::to_string(kQueueFailureLimit.count()) +
           " minutes; the jobs go on: memfront status / collect " + settings_.results.string() + " later");
    }
    return;
  }
  queue_failing_since_.reset();
  std::vector<std::string> gone;
  std::set<std::string> gone_jobs;
  for (auto& [id, awaited] : awaited_) {
    if (find_state(*queue, awaited.element)) continue;
    if (!awaited.left_queue) awaited.left_queue = now;
    gone.push_back(id);
    gone_jobs.insert(awaited.element.array->job_id);
  }
  if (gone.empty()) return;
  const ArrayStates finals = client_.final_states(gone_jobs);
  for (const std::string& id : gone) {
    const Awaited awaited = awaited_.at(id);
    ElementSighting sighting = sight(state_, awaited.element, queue, finals);
    // It ended no later than this sweep saw it leave the queue.
    const auto seen_gone = std::chrono::duration_cast<std::chrono::seconds>(now - *awaited.left_queue);
    sighting.ended_ago = std::max(sighting.ended_ago.value_or(seen_gone), seen_gone);
    const ElementVerdict verdict = classify(sighting);
    switch (verdict.fate) {
      case ElementFate::finished:  // merged at the next look
      case ElementFate::in_queue:
      case ElementFate::awaiting_end_file:
        break;
      case ElementFate::recorded:
        awaited_.erase(id);
        awaited.trial->done({outcome_of_ended(state_, awaited.element, *sighting.accounting, *verdict.status)});
        break;
      case ElementFate::lost:
        awaited_.erase(id);
        log_ << "memfront: trial " << id << ": job " << awaited.element.name() << " "
             << ended_without_result(verdict.slurm_state) << "; not recorded: memfront sweep --resume runs it again\n";
        ++end.lost;
        break;
      case ElementFate::unknown:  // squeue answered above
        throw std::logic_error("slurm: element " + awaited.element.name() + " classified without squeue's answer");
    }
  }
}

}  // namespace memfront
