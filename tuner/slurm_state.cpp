// The Slurm folder of a results file: its paths, the arrays submitted from it
// (state.jsonl) and the lock of the one process that merges into it.
#include "tuner/slurm_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <variant>

#include "core/error.h"
#include "core/json_file.h"
#include "core/jsonl.h"

namespace memfront {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error("slurm: " + message); }

json to_json(const SlurmState::Array& array) {
  json trials = json::array();
  for (const SlurmState::Trial& trial : array.trials) {
    trials.push_back({{"id", trial.id},
                      {"config", to_json(trial.config)},
                      {"reference", trial.reference_id},
                      {"prediction", trial.prediction ? to_json(*trial.prediction) : json(nullptr)},
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
    std::optional<Prediction> prediction;
    const json written = member_as<json>(trial, pointer, "prediction", where, "the prediction");
    if (!written.is_null()) prediction = prediction_from_json(written, where, pointer + "/prediction");
    const json written_config = member_as<json>(trial, pointer, "config", where, "the trial's config");
    if (!written_config.is_object()) fail_at(where, pointer + "/config", "expected the trial's config as an object");
    std::variant<Config, ConfigViolation> config = check_config(written_config, where);
    if (const ConfigViolation* violation = std::get_if<ConfigViolation>(&config)) {
      fail_at(where, violation->pointer_under(pointer + "/config"), violation->expected);
    }
    array.trials.push_back({member_as<std::string>(trial, pointer, "id", where, "the trial id"),
                            std::move(std::get<Config>(config)),
                            member_as<std::string>(trial, pointer, "reference", where, "the reference's trial id"),
                            std::move(prediction),
                            member_as<std::string>(trial, pointer, "command", where, "the trial's command")});
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

}  // namespace memfront
