#include "tuner/slurm_launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/error.h"
#include "core/json_file.h"
#include "core/jsonl.h"
#include "tuner/launcher.h"

extern char** environ;

namespace memfront {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// sbatch may wait for a busy controller; the queries answer quickly or not at all.
constexpr auto kSubmitLimit = std::chrono::seconds(120);
constexpr auto kQueryLimit = std::chrono::seconds(60);
// How often the driver looks for end files, and for elements that left the
// queue: soon after a submission, then less and less often, so that a long
// sweep does not keep slurmctld busy.
constexpr auto kPollInterval = std::chrono::milliseconds(500);
constexpr auto kFirstQueueInterval = std::chrono::milliseconds(2000);
constexpr auto kMaxQueueInterval = std::chrono::milliseconds(30000);
// An element Slurm calls COMPLETED may have its end file still on the way
// through a shared file system's attribute cache.
constexpr auto kEndFileGrace = std::chrono::seconds(30);
// squeue failing for this long stops the driver (the jobs go on).
constexpr auto kQueueFailureLimit = std::chrono::minutes(5);
// Slurm's default MaxArraySize is 1001 (indices 0..1000): larger rounds are split.
constexpr size_t kMaxArrayElements = 1000;
// timeout(1)'s status when the deadline struck; srun's is 128 + N for a task killed by signal N.
constexpr int kTimedOutStatus = 124;

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error("slurm: " + message); }

// Text for a one-line message: whitespace runs become one space, at most `limit` characters.
std::string one_line(std::string_view text, size_t limit = 500) {
  std::string line;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!line.empty() && line.back() != ' ') line += ' ';
    } else {
      line += c;
    }
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  if (line.size() > limit) line = line.substr(0, limit - 3) + "...";
  return line;
}

// --- Slurm's commands --------------------------------------------------------

struct ProgramOutput {
  int exit_code = -1;  // 128 + N when signal N ended it
  bool timed_out = false;
  std::string out, err;
};

// Runs argv without a shell (argv[0] looked up on PATH), stdin from
// /dev/null, in a process group of its own so that a Ctrl-C meant for the
// sweep cannot cut a submission in half, and kills it at the limit.
ProgramOutput run_program(const std::vector<std::string>& argv, std::chrono::seconds limit, const fs::path& cwd = {}) {
  const auto program = find_program(argv[0]);
  if (!program) {
    fail(argv[0] + " is not on PATH: run memfront where Slurm's commands are (a login node), or install them");
  }
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) fail("pipe2: " + std::string(std::strerror(errno)));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    fail("pipe2: " + std::string(std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t none, defaults;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGPIPE}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attributes, &defaults);

  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, program->c_str(), &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (spawned != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    fail("cannot run " + program->string() + ": " + std::strerror(spawned));
  }

  ProgramOutput output;
  const auto deadline = Clock::now() + limit;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&output.out, &output.err};
  int open_pipes = 2;
  while (open_pipes > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      output.timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    if (::poll(fds, 2, static_cast<int>(std::min<long long>(left, 1000))) < 0) {
      if (errno == EINTR) continue;  // revents are not to be trusted then
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char chunk[4096];
      const ssize_t got = ::read(fds[i].fd, chunk, sizeof chunk);
      if (got > 0) {
        sinks[i]->append(chunk, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (const pollfd& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  output.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return output;
}

std::string joined(const std::set<std::string>& words, char separator) {
  std::string text;
  for (const std::string& word : words) {
    if (!text.empty()) text += separator;
    text += word;
  }
  return text;
}

// What Slurm said of an element, if anything.
const ElementState* find_state(const ArrayStates& states, const SlurmState::Element& element) {
  auto job = states.find(element.array->job_id);
  if (job == states.end()) return nullptr;
  auto found = job->second.find(element.index);
  return found == job->second.end() ? nullptr : &found->second;
}

// How an element that will run again ended, for messages.
std::string ended_without_result(const std::string& state) {
  if (state.empty()) {
    return "left the queue without a result, and Slurm keeps no record of it (cancelled before it started, "
           "or forgotten since)";
  }
  return "ended " + state + " without a result";
}

// --- files -------------------------------------------------------------------

// The last few lines of an element's log, as one line.
std::string log_tail(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff start = std::max<std::streamoff>(0, size - 4096);
  in.seekg(start);
  std::string text(static_cast<size_t>(size - start), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  std::vector<std::string> lines;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(one_line(line));
  }
  std::string tail;
  for (size_t i = lines.size() > 3 ? lines.size() - 3 : 0; i < lines.size(); ++i) {
    tail += (tail.empty() ? "" : " | ") + lines[i];
  }
  return one_line(tail, 300);
}

json to_json(const SlurmState::Array& array) {
  json trials = json::array();
  for (const SlurmState::Trial& trial : array.trials) {
    trials.push_back({{"id", trial.id},
                      {"config", trial.config},
                      {"reference", trial.reference_id},
                      {"prediction", trial.prediction},
                      {"command", trial.command}});
  }
  return {{"array", array.number},       {"job_id", array.job_id},   {"submitted", array.submitted},
          {"options", to_json(array.options)}, {"repeats", array.repeats}, {"timeout_s", array.timeout_s},
          {"trials", trials}};
}

SlurmState::Array array_from_json(const json& line, const std::string& where) {
  SlurmState::Array array;
  array.number = member_as<int>(line, "", "array", where, "the array's number");
  array.job_id = member_as<std::string>(line, "", "job_id", where, "the Slurm job id");
  array.submitted = member_as<std::string>(line, "", "submitted", where, "the submission time");
  array.options = slurm_options_from_json(member_as<json>(line, "", "options", where, "the Slurm options"), where,
                                          "/options");
  array.repeats = member_as<int>(line, "", "repeats", where, "the number of repeats");
  array.timeout_s = member_as<double>(line, "", "timeout_s", where, "seconds");
  const json trials = member_as<json>(line, "", "trials", where, "the list of trials");
  if (!trials.is_array()) fail_at(where, "/trials", "expected the list of trials, got " + std::string(trials.type_name()));
  for (size_t i = 0; i < trials.size(); ++i) {
    const std::string pointer = "/trials/" + std::to_string(i);
    const json& trial = trials[i];
    array.trials.push_back({member_as<std::string>(trial, pointer, "id", where, "the trial id"),
                            member_as<json>(trial, pointer, "config", where, "the trial's config"),
                            member_as<std::string>(trial, pointer, "reference", where, "the reference's trial id"),
                            member_as<json>(trial, pointer, "prediction", where, "the prediction"),
                            member_as<std::string>(trial, pointer, "command", where, "the trial's command")});
    if (!array.trials.back().config.is_object()) {
      fail_at(where, pointer + "/config", "expected the trial's config as an object");
    }
  }
  return array;
}

}  // namespace

// --- SlurmState --------------------------------------------------------------

SlurmState::SlurmState(const fs::path& results) : folder_(folder_of(results)) {}

fs::path SlurmState::folder_of(const fs::path& results) {
  return fs::absolute(results).lexically_normal().string() + ".slurm";
}

fs::path SlurmState::config_path(const std::string& id) const { return trials_dir() / (id + ".config.json"); }
fs::path SlurmState::record_path(const std::string& id, int run) const {
  return trials_dir() / (id + "." + std::to_string(run) + ".record.json");
}
fs::path SlurmState::stderr_path(const std::string& id, int run) const {
  return trials_dir() / (id + "." + std::to_string(run) + ".stderr");
}
fs::path SlurmState::end_path(const std::string& id) const { return trials_dir() / (id + ".end.json"); }
fs::path SlurmState::log_path(const Element& element) const {
  return folder_ / "logs" / (element.name() + ".out");
}

void SlurmState::load() {
  arrays_.clear();
  const fs::path path = folder_ / "state.jsonl";
  if (!fs::exists(path)) return;
  const std::string text = read_text_file(path, "Slurm state");
  // A torn last line is an array whose submission the driver never finished
  // recording: that array never was.
  for (const JsonlLine& line : split_jsonl(text).lines) {
    if (is_blank_line(line.text)) continue;
    const std::string where = path.string() + ":" + std::to_string(line.number);
    arrays_.push_back(array_from_json(parse_json_text(line.text, path.string(), line.number), where));
  }
}

std::map<std::string, SlurmState::Element> SlurmState::latest_elements() const {
  std::map<std::string, Element> latest;
  for (const Array& array : arrays_) {
    for (size_t i = 0; i < array.trials.size(); ++i) latest[array.trials[i].id] = {&array, static_cast<int>(i)};
  }
  return latest;
}

const SlurmState::Array& SlurmState::append(Array array) {
  fs::create_directories(folder_);
  // A line torn by a driver that died while writing it is cut off first, so
  // that it cannot become a malformed line in the middle.
  JsonlAppender::open(folder_ / "state.jsonl", true).append(to_json(array).dump());
  arrays_.push_back(std::move(array));
  return arrays_.back();
}

// --- MergeLock ---------------------------------------------------------------

MergeLock::MergeLock(const SlurmState& state) {
  fs::create_directories(state.folder());
  const fs::path path = state.folder() / "lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot open " + path.string() + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {};
    [[maybe_unused]] ssize_t got = ::pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    throw std::runtime_error(state.folder().string() + ": process " + one_line(holder) +
                             " (a memfront sweep or collect) is merging into this results file; wait for it, or "
                             "stop it");
  }
  // The pid is only for another process's message; the lock holds without it.
  const std::string pid = std::to_string(::getpid());
  [[maybe_unused]] const bool noted =
      ::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) == static_cast<ssize_t>(pid.size());
}

MergeLock::~MergeLock() {
  if (fd_ >= 0) ::close(fd_);
}

// --- SlurmClient -------------------------------------------------------------

std::string SlurmClient::submit(const std::vector<std::string>& argv, const fs::path& folder) {
  const ProgramOutput output = run_program(argv, kSubmitLimit, folder);
  const std::string script = argv.back();
  if (output.timed_out) {
    fail("sbatch did not answer within " + std::to_string(kSubmitLimit.count()) + " s (" + script +
         "); see whether squeue lists the array before resuming");
  }
  if (output.exit_code != 0) {
    fail("sbatch rejected " + script + " (exit " + std::to_string(output.exit_code) +
         "): " + one_line(output.err.empty() ? output.out : output.err));
  }
  const auto job_id = parse_sbatch_job_id(output.out);
  if (!job_id) fail("sbatch printed no job id for " + script + ": " + one_line(output.out + " " + output.err));
  return *job_id;
}

std::optional<ArrayStates> SlurmClient::queue() {
  ProgramOutput output;
  try {
    output = run_program(
        {"squeue", "--noheader", "--array", "--user=" + std::to_string(::geteuid()), "--format=%F|%K|%T|%r|%N"},
        kQueryLimit);
  } catch (const std::runtime_error& e) {
    last_error_ = e.what();
    return std::nullopt;
  }
  if (output.timed_out || output.exit_code != 0) {
    last_error_ = "squeue " + std::string(output.timed_out ? "did not answer within a minute" : "failed") + ": " +
                  one_line(output.err);
    return std::nullopt;
  }
  return parse_squeue(output.out);
}

ArrayStates SlurmClient::final_states(const std::set<std::string>& job_ids) {
  ArrayStates states;
  if (job_ids.empty()) return states;
  // Accounting, where the cluster keeps it; without slurmdbd sacct only says
  // that accounting is disabled.
  if (find_program("sacct")) {
    const ProgramOutput sacct = run_program({"sacct", "--noheader", "--parsable2", "--allocations",
                                             "--jobs=" + joined(job_ids, ','),
                                             "--format=JobID,State,ExitCode,NodeList"},
                                            kQueryLimit);
    if (!sacct.timed_out && sacct.exit_code == 0) states = parse_sacct(sacct.out);
  }
  // The controller's memory of recent jobs (MinJobAge) for what sacct did not say.
  if (!find_program("scontrol")) return states;
  for (const std::string& job : job_ids) {
    if (states.contains(job)) continue;
    const ProgramOutput scontrol = run_program({"scontrol", "--oneliner", "show", "job", job}, kQueryLimit);
    if (scontrol.timed_out || scontrol.exit_code != 0) continue;  // "Invalid job id": forgotten
    for (auto& [id, elements] : parse_scontrol_jobs(scontrol.out)) states[id].merge(elements);
  }
  return states;
}

// --- records -----------------------------------------------------------------

std::vector<LaunchOutcome> outcomes_of_finished(const SlurmState& state, const SlurmState::Element& element) {
  const SlurmState::Trial& trial = element.trial();
  json slurm = {{"job_id", element.array->job_id}, {"array_task", element.index}};
  EndFile end;
  try {
    end = read_end_file(state.end_path(trial.id));
  } catch (const InputError& e) {
    LaunchOutcome outcome;
    outcome.record.id = trial.id;
    outcome.record.config = trial.config;
    outcome.record.status = TrialStatus::failed;
    outcome.record.error = "the array element's end file is unreadable: " + one_line(e.what());
    outcome.record.provenance = {{"slurm", slurm}};
    outcome.record_dir = state.trials_dir();
    return {outcome};
  }
  // The end file says which element wrote it (an earlier submission of the
  // same trial may have finished after all).
  slurm = {{"job_id", end.job_id}, {"array_task", end.task}, {"nodes", end.nodes}};
  const Config config = parse_config(trial.config, state.config_path(trial.id).string());
  std::vector<LaunchOutcome> outcomes;
  for (size_t r = 0; r < end.runs.size(); ++r) {
    const EndFile::Run& run = end.runs[r];
    const int number = static_cast<int>(r) + 1;
    RunEnd run_end;
    run_end.timed_out = run.exit_code == kTimedOutStatus;
    if (run.exit_code > 128) {
      run_end.signal = run.exit_code - 128;
    } else {
      run_end.exit_code = run.exit_code;
    }
    run_end.wall_s = std::max(0.0, run.ended - run.started);
    run_end.command = trial.command + " --out " + shell_command({state.record_path(trial.id, number).string()});
    LaunchOutcome outcome = outcome_of_run(config, run_end, element.array->timeout_s,
                                           state.record_path(trial.id, number), state.stderr_path(trial.id, number));
    outcome.record.provenance["slurm"] = slurm;
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

LaunchOutcome outcome_of_ended(const SlurmState& state, const SlurmState::Element& element, const ElementState& slurm,
                               TrialStatus status) {
  const SlurmState::Trial& trial = element.trial();
  LaunchOutcome outcome;
  outcome.record.id = trial.id;
  outcome.record.config = trial.config;
  outcome.record.status = status;
  const std::string tail = log_tail(state.log_path(element));
  if (slurm.state == "COMPLETED") {
    outcome.record.error = "array element " + element.name() + " completed but its end file " +
                           state.end_path(trial.id).string() +
                           " never appeared here: do the compute nodes share this file system?";
  } else {
    outcome.record.error = "Slurm ended array element " + element.name() + " as " + slurm.state +
                           (slurm.exit_code.empty() ? "" : " (exit " + slurm.exit_code + ")") +
                           " before the trial finished";
  }
  if (!tail.empty()) outcome.record.error += "; log: " + tail;
  outcome.record.provenance = {
      {"slurm", {{"job_id", element.array->job_id}, {"array_task", element.index}, {"nodes", slurm.nodes},
                 {"state", slurm.state}}},
      {"launcher", {{"command", trial.command}}}};
  outcome.command = trial.command;
  outcome.record_dir = state.trials_dir();
  return outcome;
}

// --- SlurmRunner -------------------------------------------------------------

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
  if (!earlier.empty()) {
    const std::optional<ArrayStates> queue = client_.queue();
    if (!queue) {
      fail("cannot tell whether trials submitted earlier are still queued, so none is submitted again: " +
           client_.last_error());
    }
    std::vector<std::pair<Pending*, SlurmState::Element>> gone;
    std::set<std::string> gone_jobs;
    for (const auto& [trial, element] : earlier) {
      const std::string& id = element.trial().id;
      if (const ElementState* queued = find_state(*queue, element)) {
        log_ << "memfront: trial " << id << ": job " << element.name() << " from an earlier run is "
             << queued->state << "; waiting for it\n";
        awaited_[id] = {trial, element, std::nullopt};
      } else {
        gone.emplace_back(trial, element);
        gone_jobs.insert(element.array->job_id);
      }
    }
    const ArrayStates finals = client_.final_states(gone_jobs);
    for (const auto& [trial, element] : gone) {
      const std::string& id = element.trial().id;
      const ElementState* slurm = find_state(finals, element);
      const std::string said = slurm ? slurm->state : "";
      if (fs::exists(state_.end_path(id)) || element_is_active(said)) {
        awaited_[id] = {trial, element, std::nullopt};
      } else if (const auto status = status_of_ended_element(said)) {
        trial->done({outcome_of_ended(state_, element, *slurm, *status)});
      } else {
        log_ << "memfront: trial " << id << ": job " << element.name() << " " << ended_without_result(said)
             << "; submitting it again\n";
        to_submit.push_back(trial);
      }
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
    array.trials.push_back({id, to_json(request.config), request.reference_id, request.prediction,
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
      fail(client_.last_error() + " for 5 minutes; the jobs go on: memfront status / collect " +
           settings_.results.string() + " later");
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
    if (fs::exists(state_.end_path(id))) continue;  // merged at the next look
    const ElementState* slurm = find_state(finals, awaited.element);
    const std::string said = slurm ? slurm->state : "";
    if (element_is_active(said)) continue;  // squeue and the accounting disagree for a moment
    if (said == "COMPLETED" && now - *awaited.left_queue < kEndFileGrace) continue;
    awaited_.erase(id);
    if (const auto status = status_of_ended_element(said)) {
      awaited.trial->done({outcome_of_ended(state_, awaited.element, *slurm, *status)});
    } else {
      log_ << "memfront: trial " << id << ": job " << awaited.element.name() << " " << ended_without_result(said)
           << "; not recorded: memfront sweep --resume runs it again\n";
      ++end.lost;
    }
  }
}

// --- collect and status ------------------------------------------------------

CollectSummary collect_slurm_results(const fs::path& results, std::ostream& log) {
  SlurmState state(results);
  if (!fs::exists(state.folder())) {
    throw InputError(results.string() + ": no Slurm sweep to collect (" + state.folder().string() + " does not exist)");
  }
  MergeLock lock(state);
  state.load();
  const ResultsFile file = read_results(results);
  std::map<std::string, TrialRecord> recorded;
  for (const TrialRecord& record : file.trials) recorded.emplace(record.id, record);
  ResultsWriter writer = ResultsWriter::open_append(results);

  // The references first, so that the others find their loss.
  std::vector<SlurmState::Element> elements;
  for (const auto& [id, element] : state.latest_elements()) {
    if (!recorded.contains(id)) elements.push_back(element);
  }
  std::stable_partition(elements.begin(), elements.end(), [](const SlurmState::Element& element) {
    return element.trial().id == element.trial().reference_id;
  });

  SlurmClient client;
  std::optional<ArrayStates> queue;
  ArrayStates finals;
  std::set<std::string> gone_jobs;
  const bool any_unfinished = std::any_of(elements.begin(), elements.end(), [&](const SlurmState::Element& element) {
    return !fs::exists(state.end_path(element.trial().id));
  });
  if (any_unfinished) {
    queue = client.queue();
    if (!queue) throw std::runtime_error("slurm: " + client.last_error());
    for (const SlurmState::Element& element : elements) {
      if (!find_state(*queue, element)) gone_jobs.insert(element.array->job_id);
    }
    finals = client.final_states(gone_jobs);
  }

  CollectSummary summary;
  for (const SlurmState::Element& element : elements) {
    const SlurmState::Trial& trial = element.trial();
    std::vector<LaunchOutcome> runs;
    if (fs::exists(state.end_path(trial.id))) {
      runs = outcomes_of_finished(state, element);
    } else if (queue && find_state(*queue, element)) {
      ++summary.in_queue;
      continue;
    } else {
      const ElementState* slurm = find_state(finals, element);
      const std::string said = slurm ? slurm->state : "";
      if (element_is_active(said)) {
        ++summary.in_queue;
        continue;
      }
      const auto status = status_of_ended_element(said);
      if (!status) {
        ++summary.lost;
        continue;
      }
      runs = {outcome_of_ended(state, element, *slurm, *status)};
    }
    const bool is_reference = trial.id == trial.reference_id;
    std::optional<double> reference_loss;
    if (!is_reference) {
      auto reference = recorded.find(trial.reference_id);
      if (reference == recorded.end()) {
        ++summary.waiting_for_reference;
        continue;
      }
      if (reference->second.status == TrialStatus::ok && reference->second.metrics) {
        reference_loss = reference->second.metrics->final_loss;
      }
    }
    TrialRecord record = record_of_runs(std::move(runs), element.array->repeats, trial.prediction, is_reference,
                                        reference_loss, results);
    writer.append(record);
    ++summary.merged;
    if (record.status != TrialStatus::ok) ++summary.failed;
    log << "memfront: merged " << record.id << " " << to_string(record.status) << " (job " << element.name() << ")"
        << (record.error.empty() ? "" : "  " + record.error) << "\n";
    recorded.emplace(record.id, std::move(record));
  }
  return summary;
}

std::string slurm_status(const fs::path& results, const std::vector<TrialRecord>& recorded) {
  SlurmState state(results);
  if (!fs::exists(state.folder())) return "";
  state.load();
  std::map<std::string, const TrialRecord*> by_id;
  for (const TrialRecord& record : recorded) by_id.emplace(record.id, &record);

  SlurmClient client;
  const std::optional<ArrayStates> queue = client.queue();
  std::set<std::string> gone_jobs;
  const auto latest = state.latest_elements();
  for (const auto& [id, element] : latest) {
    if (!by_id.contains(id) && !fs::exists(state.end_path(id)) && queue && !find_state(*queue, element)) {
      gone_jobs.insert(element.array->job_id);
    }
  }
  const ArrayStates finals = client.final_states(gone_jobs);

  std::map<std::string, int> counts = {{"queued", 0}, {"running", 0}, {"done", 0}, {"failed", 0}, {"cancelled", 0}};
  std::string details;
  for (const auto& [id, element] : latest) {
    std::string phase, detail;
    if (auto found = by_id.find(id); found != by_id.end()) {
      ++counts[found->second->status == TrialStatus::ok ? "done" : "failed"];
      continue;
    }
    if (fs::exists(state.end_path(id))) {
      bool ok = false;
      try {
        ok = read_end_file(state.end_path(id)).runs.back().exit_code == 0;
      } catch (const InputError&) {
      }
      phase = ok ? "done" : "failed";
      detail = "finished, not merged yet: memfront collect merges it";
    } else if (!queue) {
      phase = "unknown";
      detail = client.last_error();
    } else if (const ElementState* queued = find_state(*queue, element)) {
      phase = queued->state == "PENDING" ? "queued" : "running";
      detail = phase == "queued" ? (queued->reason.empty() ? "" : "(" + queued->reason + ")") : "on " + queued->nodes;
    } else {
      const ElementState* slurm = find_state(finals, element);
      const std::string said = slurm ? slurm->state : "";
      if (element_is_active(said)) {
        phase = said == "PENDING" ? "queued" : "running";
      } else if (status_of_ended_element(said)) {
        phase = "failed";
        detail = "Slurm: " + said + "; memfront collect records it";
      } else {
        phase = "cancelled";
        detail = ended_without_result(said) + "; memfront sweep --resume runs it again";
      }
    }
    ++counts[phase];
    details += "  " + id + "  " + phase + "  job " + element.name() + (detail.empty() ? "" : "  " + detail) + "\n";
  }
  std::set<std::string> jobs;
  for (const SlurmState::Array& array : state.arrays()) jobs.insert(array.job_id);
  std::string text = "slurm: " + std::to_string(latest.size()) + " trials in " + std::to_string(state.arrays().size()) +
                     " arrays (jobs " + joined(jobs, ',') + "):";
  bool first = true;
  for (const char* phase : {"done", "failed", "running", "queued", "cancelled", "unknown"}) {
    if (counts[phase] == 0 && std::string(phase) == "unknown") continue;
    text += std::string(first ? " " : ", ") + std::to_string(counts[phase]) + " " + phase;
    first = false;
  }
  return text + "\n" + details;
}

}  // namespace memfront
