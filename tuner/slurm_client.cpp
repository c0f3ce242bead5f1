#include "tuner/slurm_client.h"

#include <unistd.h>

#include <stdexcept>

#include "tuner/launcher.h"
#include "tuner/process.h"

namespace memfront {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error("slurm: " + message); }

// Runs one of Slurm's commands, stdin from /dev/null, killed at the limit.
ProcessEnd run_slurm_command(const std::vector<std::string>& argv, double limit_s, const fs::path& cwd = {}) {
  if (!find_program(argv[0])) {
    fail(argv[0] + " is not on PATH: run memfront where Slurm's commands are (a login node), or install them");
  }
  ProcessRequest request;
  request.argv = argv;
  request.cwd = cwd;
  request.timeout_s = limit_s;
  try {
    return run_process(request);
  } catch (const std::runtime_error& e) {
    fail(e.what());
  }
}

// "exit 1", or how a signal ended it: what a message says of a command that failed.
std::string how_it_failed(const ProcessEnd& end) {
  return end.signal == 0 ? "exit " + std::to_string(end.exit_code) : describe_exit(end.exit_code, end.signal);
}

}  // namespace

std::string SlurmClient::submit(const std::vector<std::string>& argv, const fs::path& folder) {
  const ProcessEnd end = run_slurm_command(argv, kSubmitLimitS, folder);
  const std::string script = argv.back();
  if (end.timed_out) {
    fail("sbatch did not answer within " + format_seconds(kSubmitLimitS) + " s (" + script +
         "); see whether squeue lists the array before resuming");
  }
  if (!end.ok()) {
    fail("sbatch rejected " + script + " (" + how_it_failed(end) +
         "): " + one_line(end.err_tail.empty() ? end.out : end.err_tail));
  }
  const auto job_id = parse_sbatch_job_id(end.out);
  if (!job_id) fail("sbatch printed no job id for " + script + ": " + one_line(end.out + " " + end.err_tail));
  return *job_id;
}

std::optional<ArrayStates> SlurmClient::queue() {
  ProcessEnd end;
  try {
    end = run_slurm_command(
        {"squeue", "--noheader", "--array", "--user=" + std::to_string(::geteuid()), "--format=%F|%K|%T|%r|%N"},
        kQueryLimitS);
  } catch (const std::runtime_error& e) {
    last_error_ = e.what();
    return std::nullopt;
  }
  if (end.timed_out) {
    last_error_ = "squeue did not answer within " + format_seconds(kQueryLimitS) + " s: " + one_line(end.err_tail);
    return std::nullopt;
  }
  if (!end.ok()) {
    last_error_ = "squeue failed (" + how_it_failed(end) + "): " + one_line(end.err_tail);
    return std::nullopt;
  }
  return parse_squeue(end.out);
}

ArrayStates SlurmClient::final_states(const std::set<std::string>& job_ids) {
  ArrayStates states;
  if (job_ids.empty()) return states;
  // Accounting, where the cluster keeps it; without slurmdbd sacct only says
  // that accounting is disabled.
  if (find_program("sacct")) {
    const ProcessEnd sacct = run_slurm_command({"sacct", "--noheader", "--parsable2", "--allocations",
                                                "--jobs=" + joined(job_ids, ','),
                                                "--format=JobID,State,ExitCode,NodeList,End"},
                                               kQueryLimitS);
    if (sacct.ok()) states = parse_sacct(sacct.out);
  }
  // The controller's memory of recent jobs (MinJobAge) for what sacct did not say.
  if (!find_program("scontrol")) return states;
  for (const std::string& job : job_ids) {
    if (states.contains(job)) continue;
    const ProcessEnd scontrol = run_slurm_command({"scontrol", "--oneliner", "show", "job", job}, kQueryLimitS);
    if (!scontrol.ok()) continue;  // "Invalid job id": forgotten
    for (auto& [id, elements] : parse_scontrol_jobs(scontrol.out)) states[id].merge(elements);
  }
  return states;
}

}  // namespace memfront
