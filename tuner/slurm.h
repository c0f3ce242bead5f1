#pragma once
// Slurm vocabulary for sweeps that run as job arrays: what a trial asks of an
// allocation (its shape), the batch script of an array and sbatch's command
// line, and readers of what sbatch, squeue, sacct and scontrol print. Nothing
// here runs a program; tuner/slurm_launcher.h does, with these.
//
// Every value that comes from a study, a results file or the command line
// reaches Slurm either as one argv word of sbatch (no shell sees it) or as a
// single-quoted word of the batch script (shell_quote: nothing in it is
// expanded). The script names no value in a comment.
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/results.h"
#include "core/time_limits.h"

namespace memfront {

// How the sweep's arrays are submitted (memfront sweep --launcher slurm).
struct SlurmOptions {
  std::string partition;                 // empty: the cluster's default
  std::string account;                   // empty: the user's default
  std::string time;                      // per array element, as sbatch takes it; empty: from the study's timeout
  std::optional<int> gpus_per_node;      // default: one per rank for backend cuda, none for cpu
  std::optional<int> max_parallel;       // elements of one array running at once (sbatch --array=...%P)
  std::vector<std::string> sbatch_args;  // more sbatch options, one word each
  std::vector<std::string> srun_args;    // more srun options; --mpi=pmix unless one of them sets --mpi
};

nlohmann::json to_json(const SlurmOptions& options);
// InputError "<where>: <json pointer>: <what was expected>".
SlurmOptions slurm_options_from_json(const nlohmann::json& json, std::string_view where,
                                     std::string_view pointer = "");

// What a trial asks of its allocation; trials of one shape share an array.
struct ArrayShape {
  int nodes = 1;                  // world / placement.ranks_per_node
  int tasks_per_node = 1;         // placement.ranks_per_node
  int cpus_per_task = 1;          // train.threads
  int gpus_per_node = 0;
  std::string distribution;       // srun's: block, cyclic, or arbitrary for an explicit rank->node list
  std::vector<int> node_of_rank;  // arbitrary: the allocation's node number of each rank
  // A trial over several nodes measures its inter-node traffic: every node
  // under one leaf switch (sbatch --switches=1) keeps that the same for all.
  bool one_switch = false;

  int world() const { return nodes * tasks_per_node; }
  auto operator<=>(const ArrayShape&) const = default;
};

ArrayShape shape_of(const Config& config, const SlurmOptions& options);

// sbatch's --array value for `count` elements: "0-7", or "0-7%2" with a limit.
std::string array_spec(int count, std::optional<int> max_parallel);

// One element of an array: the trial it runs and memfront-trial's command
// line for it (program, --config, flags), to which each run adds --out.
struct ArrayElement {
  std::string id;
  std::vector<std::string> trial_command;
};

struct BatchScriptInput {
  ArrayShape shape;
  std::vector<ArrayElement> elements;  // element i of the array runs elements[i]
  std::filesystem::path trials_dir;    // where each run leaves <id>.<run>.record.json and .stderr, then <id>.end.json
  int repeats = 1;
  double timeout_s = kDefaultTrialTimeoutS;  // per run, as the local launcher's
  std::vector<std::string> srun_args;
};

// The batch script of an array. Element i runs its trial `repeats` times
// (stopping at the first run that does not end ok) under
// `timeout ... srun ...` and then writes <id>.end.json: the exit status and
// times of each run and the nodes Slurm gave. That file is written last and
// atomically: its presence says the element finished.
std::string batch_script(const BatchScriptInput& input);

// srun's options inside the element (--mpi=pmix unless srun_args set --mpi).
std::vector<std::string> srun_options(const ArrayShape& shape, const std::vector<std::string>& srun_args);

struct SbatchInput {
  std::string job_name;                // memfront-<study>
  std::string array;                   // array_spec
  ArrayShape shape;
  std::string time;                    // sbatch --time
  SlurmOptions options;
  std::filesystem::path script;        // relative to the folder sbatch runs in
};

// sbatch's argv. The element's output goes to logs/%A_%a.out relative to the
// folder sbatch runs in, so that no path of the user's (which may hold a '%')
// passes through sbatch's file-name patterns.
std::vector<std::string> sbatch_command(const SbatchInput& input);

// The default --time of an element: every repeat at the study's timeout plus
// the grace before SIGKILL, and a minute for start-up, in whole minutes.
std::string default_time_limit(double timeout_s, int repeats);

// The job id `sbatch --parsable` printed ("123" or "123;cluster"), or nullopt.
std::optional<std::string> parse_sbatch_job_id(std::string_view output);

// What Slurm says of one array element.
struct ElementState {
  std::string state;   // Slurm's word: PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT, ...
  std::string reason;  // why it is pending, or empty
  std::string nodes;   // its node list, or empty
  std::string exit_code;  // "0:0" (exit:signal) when known
  std::optional<std::time_t> ended;  // when it ended (sacct's End, scontrol's EndTime), when known
};

// Elements by array job id and index. Lines of a job that is not an array
// element, and sacct's or scontrol's aggregated pending ranges, are skipped.
using ArrayStates = std::map<std::string, std::map<int, ElementState>>;

// squeue -h -r -o '%F|%K|%T|%r|%N'
ArrayStates parse_squeue(std::string_view output);
// sacct -n -P -X -o JobID,State,ExitCode,NodeList,End
ArrayStates parse_sacct(std::string_view output);
// scontrol -o show job <id> (one line per job)
ArrayStates parse_scontrol_jobs(std::string_view output);

// Whether Slurm's state is that of an element not yet ended (PENDING,
// RUNNING, COMPLETING, SUSPENDED, REQUEUED, ...).
bool element_is_active(std::string_view state);

// What becomes of a trial whose element Slurm ended without its end file:
// the record's status, or nullopt when the trial is to run again (cancelled,
// preempted, node failure, or an element Slurm no longer knows of).
std::optional<TrialStatus> status_of_ended_element(std::string_view state);

// Text for a one-line message: whitespace runs become one space, at most
// `limit` characters (the end cut to "...").
std::string one_line(std::string_view text, size_t limit = 500);

// The words with `separator` between them ("1,2,3").
std::string joined(const std::set<std::string>& words, char separator);

// The element's end file (<id>.end.json), as the batch script writes it.
struct EndFile {
  struct Run {
    int exit_code = 0;  // timeout(1) and srun: 124 timed out; 128 + N a task was killed by signal N
    double started = 0, ended = 0;  // seconds since the epoch
  };
  std::vector<Run> runs;
  std::string nodes;   // SLURM_JOB_NODELIST
  std::string job_id;  // SLURM_ARRAY_JOB_ID
  int task = 0;        // SLURM_ARRAY_TASK_ID
};
// InputError "<path>: <what is wrong>" when it is not one.
EndFile read_end_file(const std::filesystem::path& path);

}  // namespace memfront
