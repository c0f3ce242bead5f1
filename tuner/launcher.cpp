// LocalLauncher: one trial as a child process session on this machine, run
// by the process module (tuner/process.h): no shell, a session of its own that
// mpirun and every rank it starts share, SIGTERM then SIGKILL at the deadline,
// on an interrupt or when memfront dies.
//
// Problems of the launcher's own set-up (the work folder cannot be written, the
// executable or mpirun cannot be found or run, fork fails) throw
// std::runtime_error instead of becoming a record: they are not the trial's
// result, would repeat for every trial, and a record of them would make a
// resumed sweep skip the trial.
#include "tuner/launcher.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "core/exit_code.h"
#include "core/jsonl.h"
#include "core/local_mpi.h"

namespace memfront {
namespace {

namespace fs = std::filesystem;

// What of stderr goes into an error message.
constexpr int kTailLines = 5;
constexpr size_t kTailChars = 500;
constexpr size_t kStderrReadBytes = 1 << 20;

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error("launcher: " + message); }

// --- stderr ------------------------------------------------------------------

// The end of the stderr file: all of it unless it is huge (a Slurm run's). Reading from the
// start keeps Open MPI's frames (below) paired; past the cap, the first
// partial line is dropped and frames may pair wrongly, which only changes how
// the tail is arranged.
std::string read_stderr_file(const fs::path& path) {
  std::string text = file_tail(path, kStderrReadBytes);
  if (text.size() == kStderrReadBytes) text.erase(0, std::min(text.size(), text.find('\n') + 1));
  return text;
}

// One line for a message: control characters become spaces, runs of spaces one.
std::string clean_line(std::string_view line) {
  std::string cleaned;
  for (char c : line) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    if (c == ' ' && (cleaned.empty() || cleaned.back() == ' ')) continue;
    cleaned += c;
  }
  while (!cleaned.empty() && cleaned.back() == ' ') cleaned.pop_back();
  return cleaned;
}

// What the trial's stderr says. mpirun prints its notices ("mpirun detected
// that one or more processes exited with non-zero status...") as paragraphs
// between lines of dashes, after whatever the ranks printed; they are kept
// apart so that a long notice cannot push the trial's own last words out of
// the tail.
struct StderrSummary {
  std::vector<std::string> own;  // non-blank lines outside the frames
  std::string notice;            // mpirun's last framed notice, as one line
};

bool is_frame_line(const std::string& line) {
  return line.size() >= 10 && line.find_first_not_of('-') == std::string::npos;
}

StderrSummary summarize_stderr(const std::string& text) {
  StderrSummary summary;
  bool in_frame = false;
  std::string notice;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    if (is_frame_line(line)) {
      if (in_frame && !notice.empty()) summary.notice = notice;
      in_frame = !in_frame;
      notice.clear();
      continue;
    }
    const std::string cleaned = clean_line(line);
    // Blank lines, and separators such as "=====" that say nothing, are skipped.
    if (cleaned.find_first_not_of("-=* ") == std::string::npos) continue;
    if (in_frame) {
      notice += (notice.empty() ? "" : " ") + cleaned;
    } else {
      summary.own.push_back(cleaned);
    }
  }
  if (in_frame && !notice.empty()) summary.notice = notice;  // cut short
  return summary;
}

// The trial's last few lines joined with " | ", then mpirun's notice, within
// kTailChars: the notice is shortened first, then the oldest lines go.
std::string stderr_tail(const StderrSummary& summary) {
  std::string notice = summary.notice;
  if (notice.size() > kTailChars / 2) notice = notice.substr(0, kTailChars / 2 - 3) + "...";
  std::string own;
  const size_t first = summary.own.size() > kTailLines ? summary.own.size() - kTailLines : 0;
  for (size_t i = first; i < summary.own.size(); ++i) {
    if (!own.empty()) own += " | ";
    own += summary.own[i];
  }
  const size_t room = kTailChars - (notice.empty() ? 0 : notice.size() + 3);
  if (own.size() > room) own = "..." + own.substr(own.size() - (room - 3));
  std::string tail = own;
  if (!notice.empty()) tail += (tail.empty() ? "" : " | ") + notice;
  return tail.empty() ? "(empty)" : tail;
}

// The line that says why the input was rejected: the trial's last line, not
// mpirun's notice that a process exited non-zero.
std::string last_message_line(const StderrSummary& summary) {
  return summary.own.empty() ? summary.notice : summary.own.back();
}

// --- outcome -----------------------------------------------------------------

// The record the trial left, if it is one for this config.
struct RecordRead {
  std::optional<TrialRecord> record;
  std::string problem;  // why there is none
};

RecordRead read_trial_record(const fs::path& path, const std::string& id) {
  RecordRead read;
  std::error_code ignored;
  if (!fs::exists(path, ignored)) {
    read.problem = "no record file " + path.string();
    return read;
  }
  try {
    TrialRecord record = read_record_file(path);
    if (record.id != id) {
      read.problem = path.string() + ": the record's id is " + record.id + ", expected " + id;
    } else {
      read.record = std::move(record);
    }
  } catch (const std::exception& e) {
    read.problem = clean_line(e.what());
  }
  return read;
}

}  // namespace

std::string format_seconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", seconds);
  return text;
}

LaunchOutcome LocalLauncher::run(const LaunchRequest& request) {
  const Config& config = request.config;
  const std::string id = config_id(config);

  std::error_code error;
  fs::create_directories(request.work_dir, error);
  if (error) fail("cannot create " + request.work_dir.string() + ": " + error.message());
  const fs::path config_path = request.work_dir / (id + ".config.json");
  const fs::path record_path = request.work_dir / (id + ".record.json");
  const fs::path stderr_path = request.work_dir / (id + ".stderr");
  const fs::path trace_path = request.work_dir / (id + ".trace.json");
  try {
    replace_file_atomically(config_path, to_json(config).dump(2) + "\n");
  } catch (const std::runtime_error& e) {
    fail(e.what());
  }
  // A record or stderr left by an earlier run of this config must not pass
  // for this one's (a run interrupted before its start writes neither).
  for (const fs::path& old : {record_path, stderr_path}) {
    fs::remove(old, error);
    if (error) fail("cannot remove the old " + old.string() + ": " + error.message());
  }
  // Nor an earlier trace pass for this run's.
  if (request.trace) {
    fs::remove(trace_path, error);
    if (error) fail("cannot remove the old " + trace_path.string() + ": " + error.message());
  }

  // The trial's command line.
  const auto trial_exe = find_program(request.trial_exe.string());
  if (!trial_exe) fail("no executable memfront-trial at '" + request.trial_exe.string() + "'");
  ProcessRequest process;
  if (config.world > 1) {
    if (!find_program(request.mpirun)) {
      fail("cannot find '" + request.mpirun + "' (needed for world " + std::to_string(config.world) + ")");
    }
    process.argv = mpirun_command(request.mpirun, request.mpirun_args, config.world);
    // mpirun discovers the topology too: without the hwloc plugins a machine's
    // ranks never need (core/local_mpi.h), unless the environment chose.
    const auto& [variable, plugins] = kLocalHwlocPlugins;
    if (!std::getenv(variable)) process.environment[variable] = plugins;
  }
  const std::vector<std::string> flags = trial_flags(request, trace_path);
  process.argv.insert(process.argv.end(), {trial_exe->string(), "--config", config_path.string(), "--out",
                                           record_path.string()});
  process.argv.insert(process.argv.end(), flags.begin(), flags.end());
  if (has_deadline(request.timeout_s)) process.timeout_s = request.timeout_s;
  process.interrupt = interrupt_;  // a sweep interrupted between two trials starts no new one
  // stderr comes through a pipe, of which only the last kStderrReadBytes are
  // kept (a trial's flood of messages once filled 36 MB), and is written to
  // <id>.stderr once the trial has ended.
  process.stderr_tail_limit = kStderrReadBytes;

  if (sweep_lock_) process.on_start = [this](const ProcessIdentity& trial) { sweep_lock_->running(trial); };

  ProcessEnd end;
  try {
    end = run_process(process);
  } catch (const std::runtime_error& e) {
    if (sweep_lock_) sweep_lock_->ended();
    fail(e.what());
  }
  if (sweep_lock_) sweep_lock_->ended();
  try {
    replace_file_atomically(stderr_path, end.err_tail);
  } catch (const std::runtime_error& e) {
    fail(e.what());
  }
  return outcome_of_run(config, end, shell_command(process.argv), request.timeout_s, record_path, stderr_path);
}

std::vector<std::string> mpirun_command(const std::string& mpirun, const std::vector<std::string>& mpirun_args,
                                        int ranks) {
  std::vector<std::string> argv = {mpirun, "-np", std::to_string(ranks)};
  // Open MPI refuses to run as root without it; added unless mpirun_args have it already.
  const bool has_root_flag = std::find(mpirun_args.begin(), mpirun_args.end(), "--allow-run-as-root") != mpirun_args.end();
  if (::geteuid() == 0 && !has_root_flag) argv.push_back("--allow-run-as-root");
  // Transports for one machine (core/local_mpi.h), unless the study or the
  // environment chose.
  const auto sets = [&](const char* parameter) {
    for (size_t i = 0; i + 1 < mpirun_args.size(); ++i) {
      if ((mpirun_args[i] == "--mca" || mpirun_args[i] == "-mca") && mpirun_args[i + 1] == parameter) return true;
    }
    return std::getenv(("OMPI_MCA_" + std::string(parameter)).c_str()) != nullptr;
  };
  for (const auto& [parameter, value] : kLocalMpiTransports) {
    if (!sets(parameter)) argv.insert(argv.end(), {"--mca", parameter, value});
  }
  // Open MPI binds each rank to the next core from the first for up to two
  // ranks: trials run side by side would share cores. Each rank claims cores
  // no other trial holds instead (the timing protocol, core/timing.h).
  if (std::find(mpirun_args.begin(), mpirun_args.end(), "--bind-to") == mpirun_args.end()) {
    argv.insert(argv.end(), {"--bind-to", "none"});
  }
  argv.insert(argv.end(), mpirun_args.begin(), mpirun_args.end());
  return argv;
}

std::vector<std::string> calibrate_command(const fs::path& calibrate_exe, const CalibrateRequest& request) {
  std::vector<std::string> argv = mpirun_command(kDefaultMpirun, {"--oversubscribe"}, kCalibrateRanks);
  argv.insert(argv.end(), {calibrate_exe.string(), "--out", request.out.string()});
  if (!request.configs.empty()) argv.insert(argv.end(), {"--configs", request.configs.string()});
  if (request.quick) argv.push_back("--quick");
  if (request.allow_loaded) argv.push_back("--allow-loaded");
  return argv;
}

LaunchOutcome outcome_of_run(const Config& config, const ProcessEnd& end, const std::string& command, double timeout_s,
                             const fs::path& record_path, const fs::path& stderr_path) {
  const std::string id = config_id(config);
  const std::string stderr_text = read_stderr_file(stderr_path);
  const StderrSummary stderr_summary = summarize_stderr(stderr_text);
  const std::string tail = stderr_tail(stderr_summary);
  const RecordRead left = read_trial_record(record_path, id);
  const bool record_failed = left.record && left.record->status != TrialStatus::ok;
  // Whatever the trial said about its failure is kept in the launcher's message.
  const std::string trial_said =
      record_failed && !left.record->error.empty() ? "; record: " + left.record->error : "";

  // The trial's record when there is one (metrics of a failed run included),
  // with the launcher's account of how it ended.
  TrialRecord record = left.record ? *left.record : TrialRecord{};
  record.id = id;
  record.config = config;
  // A launcher sends SIGKILL only after a timeout or interrupt; any other
  // SIGKILL came from outside: the kernel's out-of-memory killer when the
  // kernel counted one meanwhile, else someone's kill (never guessed to be an
  // out-of-memory kill). mpirun reports a rank so killed as "exited on signal 9".
  const bool killed_from_outside =
      end.signal == SIGKILL ||
      (config.world > 1 && end.exit_code != 0 && stderr_text.find("exited on signal 9") != std::string::npos);

  if (end.interrupted) {
    record.status = TrialStatus::failed;
    record.error = "interrupted";
  } else if (end.timed_out) {
    record.status = TrialStatus::timeout;
    record.error = "timed out after " + format_seconds(timeout_s) + " s" + trial_said + "; stderr: " + tail;
  } else if (end.signal == 0 && end.exit_code == 0) {
    // The trial's record as it wrote it, if there is one for this config.
    if (!left.record) {
      record.status = TrialStatus::failed;
      record.error = "exit 0 but the record is unreadable: " + left.problem;
    }
  } else if (end.signal == 0 && end.exit_code == code(ExitCode::trial_failed) && record_failed) {
    // The trial's own account of a failed run (oom, a rank that timed out, ...).
  } else if (end.signal == 0 && end.exit_code == code(ExitCode::bad_input)) {
    record.status = TrialStatus::invalid;
    const std::string line = last_message_line(stderr_summary);
    record.error = line.empty() ? "rejected its input (exit code " + std::to_string(code(ExitCode::bad_input)) + ") without saying why" : line;
  } else if (killed_from_outside) {
    const bool oom_killed = end.oom_kills.value_or(0) > 0;
    record.status = oom_killed ? TrialStatus::oom : TrialStatus::killed;
    const std::string by = oom_killed         ? " by the kernel's out-of-memory killer (it counted " +
                                                    std::to_string(*end.oom_kills) + " kills meanwhile)"
                           : end.oom_kills    ? " from outside (the kernel counted no out-of-memory kill meanwhile)"
                                              : " from outside (whether by the out-of-memory killer, the kernel "
                                                "does not say here)";
    record.error = (end.signal == SIGKILL ? "killed by SIGKILL" : "a rank was killed by SIGKILL") + by + trial_said +
                   "; stderr: " + tail;
  } else {
    // The record's status (e.g. oom from a rank that ended the job) is kept
    // when it says more than "failed".
    record.status = record_failed ? left.record->status : TrialStatus::failed;
    const std::string how = describe_exit(end.exit_code, end.signal);
    // Exit 3 promises a record that says what failed: say what was found instead.
    std::string promised;
    if (end.signal == 0 && end.exit_code == code(ExitCode::trial_failed)) {
      promised = left.record ? "; but the record says ok" : "; no readable record: " + left.problem;
    }
    record.error = how + promised + trial_said + "; stderr: " + tail;
  }
  if (record.status == TrialStatus::ok) record.error.clear();

  if (!record.provenance.is_object()) record.provenance = nlohmann::json::object();
  record.provenance["launcher"] = {{"command", command},
                                   {"exit_code", end.exit_code},
                                   {"signal", end.signal},
                                   {"wall_s", end.wall_s}};

  LaunchOutcome outcome;
  outcome.record = std::move(record);
  outcome.end = end;
  outcome.command = command;
  outcome.record_dir = record_path.parent_path();
  return outcome;
}

bool has_deadline(double timeout_s) { return timeout_s > 0 && timeout_s < 1e9; }

std::vector<std::string> trial_flags(const LaunchRequest& request, const fs::path& trace_path) {
  std::vector<std::string> flags = {"--quiet"};
  if (request.trace) flags.insert(flags.end(), {"--trace", trace_path.string()});
  const bool caller_sets_timeout = std::any_of(request.trial_args.begin(), request.trial_args.end(),
      [](const std::string& a) { return a == "--timeout" || a.rfind("--timeout=", 0) == 0; });
  if (has_deadline(request.timeout_s) && !caller_sets_timeout) {
    flags.insert(flags.end(), {"--timeout", format_seconds(std::min(kDefaultCommTimeoutS, request.timeout_s / 2))});
  }
  flags.insert(flags.end(), request.trial_args.begin(), request.trial_args.end());
  return flags;
}

namespace {

// A kernels program the tuner runs: the environment variable, else beside the
// running executable's build tree or in its folder, else the configured path.
fs::path find_kernels_program(const char* environment, const char* name, const char* build_path) {
  if (const char* env = std::getenv(environment); env && *env) return env;
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    const fs::path dir = self.parent_path();
    for (const fs::path& candidate : {dir / ".." / "kernels" / name, dir / name}) {
      if (find_program(candidate.string())) return candidate.lexically_normal();
    }
  }
  return build_path;
}

}  // namespace

fs::path find_trial_executable() {
  return find_kernels_program("MEMFRONT_TRIAL", "memfront-trial", MEMFRONT_TRIAL_BUILD_PATH);
}

fs::path find_calibrate_executable() {
  return find_kernels_program("MEMFRONT_CALIBRATE", "memfront-calibrate", MEMFRONT_CALIBRATE_BUILD_PATH);
}

std::string shell_command(const std::vector<std::string>& argv) {
  std::string command;
  for (const auto& arg : argv) {
    const bool plain = !arg.empty() && std::all_of(arg.begin(), arg.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("-_./=:,+@%", c) != nullptr;
    });
    if (!command.empty()) command += ' ';
    command += plain ? arg : shell_quote(arg);
  }
  return command;
}

std::string shell_quote(std::string_view text) {
  std::string out = "'";
  for (char ch : text) {
    if (ch == '\'') {
      out += "'\\''";
    } else {
      out += ch;
    }
  }
  return out + "'";
}

}  // namespace memfront
