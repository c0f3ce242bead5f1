#pragma once
// The exit statuses memfront's programs give and read, with one name each.
// memfront-trial and memfront-calibrate end with them, the launchers read
// them back, memfront ends with them, and the Slurm batch script uses the
// shell's conventions for a deadline (timeout(1)) and a signal (128 + N).
#include <optional>
#include <string_view>

namespace memfront {

enum class ExitCode : int {
  ok = 0,
  failure = 1,           // a run-time failure; the message on stderr says which
  bad_input = 2,         // an InputError: one line on stderr names the input and what was expected
  trial_failed = 3,      // memfront-trial ran, and its record says what failed (oom, a rank timed out, ...)
  injected_crash = 70,   // memfront-trial --crash: a rank ended abruptly on purpose (EX_SOFTWARE)
  timed_out = 124,       // timeout(1): the deadline struck
  cannot_run = 127,      // the program could not be executed (the shell's "command not found")
  interrupted = 130,     // 128 + SIGINT: stopped by Ctrl-C; what finished is recorded
  terminated = 143,      // 128 + SIGTERM: ended by a SIGTERM (Slurm cancelled or preempted the element)
};

// A shell's status for a process that a signal ended: this plus the signal.
inline constexpr int kSignalExitBase = 128;

constexpr int code(ExitCode exit_code) { return static_cast<int>(exit_code); }

struct ExitCodeName {
  ExitCode exit_code;
  std::string_view name;
};

inline constexpr ExitCodeName kExitCodeNames[] = {
    {ExitCode::ok, "ok"},
    {ExitCode::failure, "failure"},
    {ExitCode::bad_input, "bad input"},
    {ExitCode::trial_failed, "trial failed"},
    {ExitCode::injected_crash, "injected crash"},
    {ExitCode::timed_out, "timed out"},
    {ExitCode::cannot_run, "cannot run"},
    {ExitCode::interrupted, "interrupted"},
    {ExitCode::terminated, "terminated"},
};

constexpr std::string_view to_string(ExitCode exit_code) {
  for (const ExitCodeName& entry : kExitCodeNames) {
    if (entry.exit_code == exit_code) return entry.name;
  }
  return "?";
}

// The named exit code with this number, if there is one.
constexpr std::optional<ExitCode> exit_code_named(int number) {
  for (const ExitCodeName& entry : kExitCodeNames) {
    if (code(entry.exit_code) == number) return entry.exit_code;
  }
  return std::nullopt;
}

}  // namespace memfront
