#include "tuner/slurm.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/exit_code.h"
#include "core/json_file.h"
#include "tuner/launcher.h"

namespace memfront {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string quoted_words(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& word : words) {
    if (!text.empty()) text += ' ';
    text += shell_quote(word);
  }
  return text;
}

std::optional<int> parse_int(std::string_view text) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  for (std::string_view line : split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// "123_4" -> (123, 4); anything else (a plain job, "123_[5-7%2]", "123_4.batch") -> nullopt.
std::optional<std::pair<std::string, int>> array_element_id(std::string_view job_id) {
  const size_t underscore = job_id.find('_');
  if (underscore == std::string_view::npos || underscore == 0) return std::nullopt;
  const std::string_view job = job_id.substr(0, underscore);
  if (!std::all_of(job.begin(), job.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  const auto index = parse_int(job_id.substr(underscore + 1));
  if (!index) return std::nullopt;
  return std::pair(std::string(job), *index);
}

std::vector<std::string> string_list(const json& node, const std::string& pointer, std::string_view where) {
  if (!node.is_array()) fail_at(where, pointer, "expected a list of strings");
  std::vector<std::string> list;
  for (size_t i = 0; i < node.size(); ++i) {
    if (!node[i].is_string()) fail_at(where, pointer + "/" + std::to_string(i), "expected a string");
    list.push_back(node[i].get<std::string>());
  }
  return list;
}

// Slurm's local time stamp "2026-12-07T17:00:27"; "Unknown", "None" or
// anything else: nullopt.
std::optional<std::time_t> parse_slurm_time(std::string_view text) {
  std::tm parts{};
  char tail = 0;
  const std::string copy(text);
  if (std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &parts.tm_year, &parts.tm_mon, &parts.tm_mday,
                  &parts.tm_hour, &parts.tm_min, &parts.tm_sec, &tail) != 6) {
    return std::nullopt;
  }
  parts.tm_year -= 1900;
  parts.tm_mon -= 1;
  parts.tm_isdst = -1;  // Slurm prints local time; mktime knows whether DST applied
  const std::time_t time = std::mktime(&parts);
  if (time == static_cast<std::time_t>(-1)) return std::nullopt;
  return time;
}

}  // namespace

json to_json(const SlurmOptions& options) {
  json out = {{"partition", options.partition},     {"account", options.account},
              {"time", options.time},               {"sbatch_args", options.sbatch_args},
              {"srun_args", options.srun_args}};
  out["gpus_per_node"] = options.gpus_per_node ? json(*options.gpus_per_node) : json(nullptr);
  out["max_parallel"] = options.max_parallel ? json(*options.max_parallel) : json(nullptr);
  return out;
}

SlurmOptions slurm_options_from_json(const json& node, std::string_view where, std::string_view pointer) {
  if (!node.is_object()) fail_at(where, pointer, "expected the Slurm options as an object");
  const std::string at = std::string(pointer) + "/";
  SlurmOptions options;
  auto text = [&](const char* key) {
    const json& value = node.contains(key) ? node[key] : json("");
    if (!value.is_string()) fail_at(where, at + key, "expected a string");
    return value.get<std::string>();
  };
  auto count = [&](const char* key) -> std::optional<int> {
    if (!node.contains(key) || node[key].is_null()) return std::nullopt;
    if (!node[key].is_number_integer() || node[key].get<int>() < 1) {
      fail_at(where, at + key, "expected a positive integer or null");
    }
    return node[key].get<int>();
  };
  options.partition = text("partition");
  options.account = text("account");
  options.time = text("time");
  options.gpus_per_node = count("gpus_per_node");
  options.max_parallel = count("max_parallel");
  if (node.contains("sbatch_args")) options.sbatch_args = string_list(node["sbatch_args"], at + "sbatch_args", where);
  if (node.contains("srun_args")) options.srun_args = string_list(node["srun_args"], at + "srun_args", where);
  return options;
}

ArrayShape shape_of(const Config& config, const SlurmOptions& options) {
  ArrayShape shape;
  const Config::Placement& placement = config.placement;
  shape.tasks_per_node = placement.ranks_per_node;
  shape.nodes = config.world / placement.ranks_per_node;
  shape.cpus_per_task = config.train.threads;
  if (options.gpus_per_node) {
    shape.gpus_per_node = *options.gpus_per_node;
  } else if (config.backend == Backend::cuda) {
    shape.gpus_per_node = placement.ranks_per_node;
  }
  if (placement.order == PlacementOrder::explicit_list) {
    shape.distribution = "arbitrary";
    shape.node_of_rank = placement.node_of_rank;
  } else {
    shape.distribution = std::string(to_string(placement.order));
  }
  shape.one_switch = shape.nodes > 1;
  return shape;
}

std::string array_spec(int count, std::optional<int> max_parallel) {
  std::string spec = "0-" + std::to_string(count - 1);
  if (max_parallel) spec += "%" + std::to_string(*max_parallel);
  return spec;
}

std::vector<std::string> srun_options(const ArrayShape& shape, const std::vector<std::string>& srun_args) {
  std::vector<std::string> options;
  if (shape.distribution == "arbitrary") {
    // The host file gives each rank's node; srun takes no per-node count then.
    options = {"--ntasks=" + std::to_string(shape.world()), "--distribution=arbitrary"};
  } else {
    options = {"--nodes=" + std::to_string(shape.nodes), "--ntasks=" + std::to_string(shape.world()),
               "--ntasks-per-node=" + std::to_string(shape.tasks_per_node), "--distribution=" + shape.distribution};
  }
  options.push_back("--cpus-per-task=" + std::to_string(shape.cpus_per_task));
  if (shape.gpus_per_node > 0) options.push_back("--gpus-per-node=" + std::to_string(shape.gpus_per_node));
  // Open MPI (Debian's 4.1 included) starts its ranks under srun through
  // PMIx: without --mpi=pmix each rank would come up as a world of one. A
  // site that wires MPI differently says so with --srun-arg=--mpi=...
  const bool sets_mpi = std::any_of(srun_args.begin(), srun_args.end(),
                                    [](const std::string& arg) { return arg.rfind("--mpi", 0) == 0; });
  if (!sets_mpi) options.push_back("--mpi=pmix");
  options.insert(options.end(), srun_args.begin(), srun_args.end());
  return options;
}

std::string batch_script(const BatchScriptInput& input) {
  std::string sh =
      "#!/bin/bash\n"
      "# memfront sweep: a Slurm job array of trials (memfront sweep --launcher slurm).\n"
      "# Element i runs the trial of case i below under srun, up to the study's\n"
      "# repeats (the first run that does not end ok is the last), each run within\n"
      "# the study's timeout. Each run leaves the trial's record and stderr in the\n"
      "# trials folder; then <id>.end.json records every run's exit status and times\n"
      "# and the nodes Slurm gave. That file comes last and whole (written, then\n"
      "# renamed): its presence says the element finished. Every value taken from a\n"
      "# study, a results file or memfront's command line is one single-quoted word.\n"
      "set -u\n"
      "# Cancelled, preempted or out of time: end without an end file, so that the\n"
      "# sweep sees Slurm's verdict rather than a run that seems to have failed.\n"
      "trap 'exit " + std::to_string(code(ExitCode::terminated)) + "' TERM\n"
      "\n"
      "trials=" + shell_quote(input.trials_dir.string()) + "\n"
      "case ${SLURM_ARRAY_TASK_ID:?runs as an element of a job array} in\n";
  for (size_t i = 0; i < input.elements.size(); ++i) {
    const ArrayElement& element = input.elements[i];
    sh += "  " + std::to_string(i) + ") id=" + shell_quote(element.id) + "; trial=(" +
          quoted_words(element.trial_command) + ") ;;\n";
  }
  sh += "  *) echo \"memfront: array element $SLURM_ARRAY_TASK_ID has no trial\" >&2; exit " +
        std::to_string(code(ExitCode::bad_input)) + " ;;\n"
        "esac\n"
        "srun_options=(" + quoted_words(srun_options(input.shape, input.srun_args)) + ")\n";
  if (input.shape.distribution == "arbitrary") {
    std::string node_list;
    for (int node : input.shape.node_of_rank) {
      if (!node_list.empty()) node_list += ' ';
      node_list += std::to_string(node);
    }
    sh += "# placement.order lists each rank's node: rank r runs on the allocation's node\n"
          "# number node_of_rank[r], through an arbitrary-distribution host file.\n"
          "mapfile -t nodes < <(scontrol show hostnames \"$SLURM_JOB_NODELIST\")\n"
          "for node in " + node_list + "; do printf '%s\\n' \"${nodes[$node]}\"; done >\"$trials/$id.hosts\"\n"
          "export SLURM_HOSTFILE=\"$trials/$id.hosts\"\n";
  }
  // timeout(1) stands for the local launcher's deadline: SIGTERM, then SIGKILL
  // after the same grace, and status 124 when it struck.
  const std::string deadline =
      has_deadline(input.timeout_s)
          ? "timeout --kill-after=" + std::to_string(kTermGraceSeconds) + " " + format_seconds(input.timeout_s) + " "
          : "";
  sh += "\n"
        "runs=()\n"
        "for ((run = 1; run <= " + std::to_string(input.repeats) + "; run++)); do\n"
        "  started=$(date +%s.%N)\n"
        "  " + deadline + "srun \"${srun_options[@]}\" \"${trial[@]}\" --out \"$trials/$id.$run.record.json\" \\\n"
        "    2>\"$trials/$id.$run.stderr\"\n"
        "  status=$?\n"
        "  runs+=(\"{\\\"exit\\\": $status, \\\"started\\\": $started, \\\"ended\\\": $(date +%s.%N)}\")\n"
        "  ((status == 0)) || break\n"
        "done\n"
        "# Node names hold no quote or backslash; dropping any keeps the JSON whole regardless.\n"
        "nodes=${SLURM_JOB_NODELIST//[\\\"\\\\]/}\n"
        "joined=$(IFS=,; echo \"${runs[*]}\")\n"
        "printf '{\"runs\": [%s], \"nodes\": \"%s\", \"job\": \"%s\", \"task\": %d}\\n' \\\n"
        "  \"$joined\" \"$nodes\" \"$SLURM_ARRAY_JOB_ID\" \"$SLURM_ARRAY_TASK_ID\" >\"$trials/$id.end.json.tmp\"\n"
        "mv -f \"$trials/$id.end.json.tmp\" \"$trials/$id.end.json\"\n";
  return sh;
}

std::string default_time_limit(double timeout_s, int repeats) {
  const double seconds = repeats * (timeout_s + kTermGraceSeconds) + 60;
  return std::to_string(static_cast<long long>(std::ceil(seconds / 60)));
}

std::vector<std::string> sbatch_command(const SbatchInput& input) {
  const ArrayShape& shape = input.shape;
  std::vector<std::string> argv = {"sbatch",
                                   "--parsable",
                                   "--array=" + input.array,
                                   "--job-name=" + input.job_name,
                                   "--output=logs/%A_%a.out",
                                   "--nodes=" + std::to_string(shape.nodes),
                                   "--ntasks-per-node=" + std::to_string(shape.tasks_per_node),
                                   "--cpus-per-task=" + std::to_string(shape.cpus_per_task),
                                   "--time=" + input.time};
  if (shape.gpus_per_node > 0) argv.push_back("--gpus-per-node=" + std::to_string(shape.gpus_per_node));
  if (shape.one_switch) argv.push_back("--switches=1");
  if (!input.options.partition.empty()) argv.push_back("--partition=" + input.options.partition);
  if (!input.options.account.empty()) argv.push_back("--account=" + input.options.account);
  argv.insert(argv.end(), input.options.sbatch_args.begin(), input.options.sbatch_args.end());
  argv.push_back(input.script.string());
  return argv;
}

std::optional<std::string> parse_sbatch_job_id(std::string_view output) {
  const std::vector<std::string_view> lines = lines_of(output);
  if (lines.empty()) return std::nullopt;
  // --parsable: "<job id>[;<cluster>]" on the last line (warnings may come first).
  const std::string_view id = lines.back().substr(0, lines.back().find(';'));
  if (id.empty() || !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::string(id);
}

ArrayStates parse_squeue(std::string_view output) {
  ArrayStates states;
  for (std::string_view line : lines_of(output)) {
    const std::vector<std::string_view> fields = split(line, '|');
    if (fields.size() < 5) continue;
    const auto index = parse_int(fields[1]);
    if (!index || fields[0].empty()) continue;  // not an array element ("N/A")
    ElementState& state = states[std::string(fields[0])][*index];
    state.state = std::string(fields[2]);
    state.reason = fields[3] == "None" ? "" : std::string(fields[3]);
    state.nodes = std::string(fields[4]);
  }
  return states;
}

ArrayStates parse_sacct(std::string_view output) {
  ArrayStates states;
  for (std::string_view line : lines_of(output)) {
    const std::vector<std::string_view> fields = split(line, '|');
    if (fields.size() < 4) continue;
    const auto element = array_element_id(fields[0]);
    if (!element) continue;
    ElementState& state = states[element->first][element->second];
    // "CANCELLED by 1000": the word is the state.
    state.state = std::string(fields[1].substr(0, fields[1].find(' ')));
    state.exit_code = std::string(fields[2]);
    state.nodes = fields[3] == "None assigned" ? "" : std::string(fields[3]);
    if (fields.size() > 4) state.ended = parse_slurm_time(fields[4]);
  }
  return states;
}

ArrayStates parse_scontrol_jobs(std::string_view output) {
  ArrayStates states;
  for (std::string_view line : lines_of(output)) {
    // The first word that starts with "<key>=". The fields read here come
    // before the free-text ones (Command, WorkDir, StdOut...).
    const std::vector<std::string_view> words = split(line, ' ');
    auto field = [&](std::string_view key) -> std::optional<std::string_view> {
      for (std::string_view word : words) {
        if (word.size() > key.size() && word.substr(0, key.size()) == key && word[key.size()] == '=') {
          return word.substr(key.size() + 1);
        }
      }
      return std::nullopt;
    };
    const auto job = field("ArrayJobId");
    const auto task = field("ArrayTaskId");
    const auto index = task ? parse_int(*task) : std::nullopt;
    if (!job || !index) continue;  // not an array element, or a pending range such as 5-7%2
    ElementState& state = states[std::string(*job)][*index];
    state.state = std::string(field("JobState").value_or(""));
    const std::string_view reason = field("Reason").value_or("None");
    state.reason = reason == "None" ? "" : std::string(reason);
    const std::string_view nodes = field("NodeList").value_or("(null)");
    state.nodes = nodes == "(null)" ? "" : std::string(nodes);
    state.exit_code = std::string(field("ExitCode").value_or(""));
    state.ended = parse_slurm_time(field("EndTime").value_or(""));
  }
  return states;
}

bool element_is_active(std::string_view state) {
  for (std::string_view active : {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
                                  "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}) {
    if (state == active) return true;
  }
  return false;
}

std::optional<TrialStatus> status_of_ended_element(std::string_view state) {
  // Ended by the trial's own doing: recorded, as a local run would be.
  if (state == "TIMEOUT") return TrialStatus::timeout;
  if (state == "OUT_OF_MEMORY") return TrialStatus::oom;
  if (state == "FAILED" || state == "COMPLETED" || state == "SPECIAL_EXIT") return TrialStatus::failed;
  // CANCELLED, PREEMPTED, NODE_FAIL, BOOT_FAIL, DEADLINE, REVOKED, or no
  // longer known: nothing says what the trial would have done.
  return std::nullopt;
}

std::string one_line(std::string_view text, size_t limit) {
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

std::string joined(const std::set<std::string>& words, char separator) {
  std::string text;
  for (const std::string& word : words) {
    if (!text.empty()) text += separator;
    text += word;
  }
  return text;
}

EndFile read_end_file(const fs::path& path) {
  const json document = read_json_file(path, "end file");
  const std::string where = path.string();
  const json runs = member_as<json>(document, "", "runs", where, "the list of runs");
  if (!runs.is_array()) fail_at(where, "/runs", "expected the list of runs, got " + std::string(runs.type_name()));
  EndFile end;
  for (size_t i = 0; i < runs.size(); ++i) {
    const json& run = runs[i];
    const std::string pointer = "/runs/" + std::to_string(i);
    if (!run.is_object() || !run.contains("exit") || !run["exit"].is_number_integer()) {
      fail_at(where, pointer + "/exit", "expected the run's exit status");
    }
    EndFile::Run parsed;
    parsed.exit_code = run["exit"].get<int>();
    for (auto [key, field] : {std::pair("started", &parsed.started), std::pair("ended", &parsed.ended)}) {
      if (!run.contains(key) || !run[key].is_number()) {
        fail_at(where, pointer + "/" + key, "expected seconds since the epoch");
      }
      *field = run[key].get<double>();
    }
    end.runs.push_back(parsed);
  }
  if (end.runs.empty()) fail_at(where, "/runs", "no run is listed");
  end.nodes = member_as<std::string>(document, "", "nodes", where, "the node list");
  end.job_id = member_as<std::string>(document, "", "job", where, "the array job id");
  end.task = member_as<int>(document, "", "task", where, "the array index");
  return end;
}

}  // namespace memfront
