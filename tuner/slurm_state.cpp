// The Slurm folder of a results file: its paths, the arrays submitted from it
// (state.jsonl) and the lock of the one process that merges into it.
#include "tuner/slurm_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/error.h"

namespace memfront {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error("slurm: " + message); }

json to_json(const SlurmState::Array& array) {
  json trials = json::array();
  for (const SlurmState::Trial& trial : array.trials) {
    trials.push_back({{"id", trial.id},
                      {"config", trial.config},
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
  try {
    array.number = line.at("array").get<int>();
    array.job_id = line.at("job_id").get<std::string>();
    array.submitted = line.at("submitted").get<std::string>();
    array.options = slurm_options_from_json(line.at("options"), where + ": /options");
    array.repeats = line.at("repeats").get<int>();
    array.timeout_s = line.at("timeout_s").get<double>();
    const json& trials = line.at("trials");
    for (size_t i = 0; i < trials.size(); ++i) {
      const json& trial = trials.at(i);
      std::optional<Prediction> prediction;
      if (const json& written = trial.at("prediction"); !written.is_null()) {
        prediction = prediction_from_json(written, where, "/trials/" + std::to_string(i) + "/prediction");
      }
      array.trials.push_back({trial.at("id").get<std::string>(), trial.at("config"),
                              trial.at("reference").get<std::string>(), std::move(prediction),
                              trial.at("command").get<std::string>()});
      if (!array.trials.back().config.is_object()) throw InputError(where + ": a trial's config is not an object");
    }
  } catch (const json::exception& e) {
    throw InputError(where + ": not an array of this sweep: " + e.what());
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
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  size_t start = 0;
  for (int line_number = 1; start < text.size(); ++line_number) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const std::string where = path.string() + ":" + std::to_string(line_number);
    json parsed = json::parse(line, nullptr, false);
    if (parsed.is_discarded()) {
      if (end == std::string::npos) return;  // cut short while being written: that array never was
      throw InputError(where + ": not valid JSON");
    }
    arrays_.push_back(array_from_json(parsed, where));
    if (end == std::string::npos) return;
    start = end + 1;
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
  const fs::path path = folder_ / "state.jsonl";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot open " + path.string() + ": " + std::strerror(errno));
  // A line cut short by a driver that died while writing it goes first, so
  // that it cannot become a malformed line in the middle.
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size > 0) {
    std::string text(static_cast<size_t>(size), '\0');
    if (::pread(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()) && text.back() != '\n') {
      const size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
      if (::ftruncate(fd, static_cast<off_t>(keep)) != 0) fail("cannot repair " + path.string());
    }
  }
  const std::string line = to_json(array).dump() + "\n";
  ::lseek(fd, 0, SEEK_END);
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(fd, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      fail("cannot write " + path.string() + ": " + std::strerror(errno));
    }
    written += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) fail("cannot sync " + path.string());
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
