// The Slurm launcher's pieces without a cluster: allocation shapes, sbatch's
// command line, the batch script (quoted against hostile values, checked by
// bash -n and run against a stand-in srun), what sbatch, squeue, sacct and
// scontrol print, the state folder, end files turned into records, and the
// one-line errors when sbatch is missing or rejects the array.
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/run_command.h"

#include "core/config.h"
#include "core/error.h"
#include "core/results.h"
#include "tuner/launcher.h"
#include "tuner/slurm.h"
#include "tuner/slurm_classify.h"
#include "tuner/slurm_launcher.h"
#include "tuner/slurm_records.h"

using namespace memfront;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Every kind of character a shell would act on, and a newline.
const std::string kHostile = "a'b\"c $(touch PWNED) `touch PWNED`; touch PWNED\n& | > < * ? ~ # \\ %j";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(testing::TempDir()) / ("slurm-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_executable(const fs::path& path, const std::string& text) {
  write(path, text);
  fs::permissions(path, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
}

Config config_of(const std::string& text) { return parse_config_text(text, "test"); }

Config tiny_config() {
  return config_of(R"({"model": {"vocab": 64, "seq": 16, "width": 32, "heads": 2, "layers": 2},
                       "batch": {"micro": 2}, "train": {"steps": 2, "warmup": 0}})");
}

// No PWNED file anywhere under `dir`: nothing hostile was executed.
void expect_nothing_executed(const fs::path& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    EXPECT_NE(entry.path().filename(), "PWNED") << "a hostile value was executed: " << entry.path();
  }
}

}  // namespace

TEST(SlurmShape, NodesTasksAndDistributionComeFromThePlacement) {
  const Config cyclic = config_of(
      R"({"world": 4, "placement": {"ranks_per_node": 2, "order": "cyclic"}, "train": {"threads": 3}})");
  const ArrayShape shape = shape_of(cyclic, {});
  EXPECT_EQ(shape.nodes, 2);
  EXPECT_EQ(shape.tasks_per_node, 2);
  EXPECT_EQ(shape.world(), 4);
  EXPECT_EQ(shape.cpus_per_task, 3);
  EXPECT_EQ(shape.distribution, "cyclic");
  EXPECT_TRUE(shape.one_switch) << "a trial over two nodes asks for one leaf switch";
  EXPECT_EQ(shape.gpus_per_node, 0);

  const ArrayShape one_node = shape_of(config_of(R"({"world": 2})"), {});
  EXPECT_EQ(one_node.nodes, 1);
  EXPECT_EQ(one_node.distribution, "block");
  EXPECT_FALSE(one_node.one_switch);

  const Config listed = config_of(R"({"world": 4, "placement": {"ranks_per_node": 2, "order": [1, 0, 0, 1]}})");
  const ArrayShape arbitrary = shape_of(listed, {});
  EXPECT_EQ(arbitrary.distribution, "arbitrary");
  EXPECT_EQ(arbitrary.node_of_rank, (std::vector<int>{1, 0, 0, 1}));

  const Config gpu = config_of(R"({"world": 4, "backend": "cuda", "placement": {"ranks_per_node": 4}})");
  EXPECT_EQ(shape_of(gpu, {}).gpus_per_node, 4) << "one GPU per rank by default";
  SlurmOptions options;
  options.gpus_per_node = 8;
  EXPECT_EQ(shape_of(gpu, options).gpus_per_node, 8);
}

TEST(SlurmShape, ArraySpecAndDefaultTimeLimit) {
  EXPECT_EQ(array_spec(1, std::nullopt), "0-0");
  EXPECT_EQ(array_spec(8, 2), "0-7%2");
  // 2 repeats of (60 s + 3 s grace) + 60 s of start-up: 186 s, 4 minutes.
  EXPECT_EQ(default_time_limit(60, 2), "4");
  EXPECT_EQ(default_time_limit(1, 1), "2");
}

TEST(SlurmCommand, SrunUsesPmixUnlessToldOtherwise) {
  const ArrayShape shape = shape_of(config_of(R"({"world": 2})"), {});
  const std::vector<std::string> options = srun_options(shape, {});
  EXPECT_EQ(options, (std::vector<std::string>{"--nodes=1", "--ntasks=2", "--ntasks-per-node=2",
                                               "--distribution=block", "--cpus-per-task=1", "--mpi=pmix"}));
  const std::vector<std::string> pmi2 = srun_options(shape, {"--mpi=pmi2", "--exclusive"});
  EXPECT_EQ(std::count(pmi2.begin(), pmi2.end(), "--mpi=pmix"), 0);
  EXPECT_EQ(pmi2.back(), "--exclusive");
}

TEST(SlurmCommand, EveryValueIsOneArgvWordAndTheScriptComesLast) {
  SbatchInput input;
  input.job_name = "memfront-study";
  input.array = array_spec(4, 2);
  input.shape = shape_of(config_of(R"({"world": 4, "placement": {"ranks_per_node": 2}})"), {});
  input.time = "10";
  input.options.partition = kHostile;
  input.options.account = kHostile;
  input.options.sbatch_args = {"--qos=" + kHostile, kHostile};
  input.script = "arrays/1.sbatch";
  const std::vector<std::string> argv = sbatch_command(input);
  const std::vector<std::string> expected = {"sbatch", "--parsable", "--array=0-3%2", "--job-name=memfront-study",
                                             "--output=logs/%A_%a.out", "--nodes=2", "--ntasks-per-node=2",
                                             "--cpus-per-task=1", "--time=10", "--switches=1",
                                             "--partition=" + kHostile, "--account=" + kHostile,
                                             "--qos=" + kHostile, kHostile, "arrays/1.sbatch"};
  EXPECT_EQ(argv, expected);
}

// The batch script with hostile values everywhere a study, results path or
// command line can put one: bash -n accepts it, and run against a stand-in
// srun every value arrives as the same single word and nothing is executed.
TEST(SlurmScript, HostileValuesAreQuotedWordsThatReachSrunIntact) {
  const fs::path dir = fresh_dir("script");
  const fs::path trials = dir / ("trials " + kHostile);
  fs::create_directories(trials);
  const fs::path bin = dir / "bin";
  fs::create_directories(bin);
  // srun: writes each argument NUL-terminated, so that newlines survive.
  write_executable(bin / "srun", "#!/bin/bash\nprintf '%s\\0' \"$@\" >\"$SRUN_ARGS\"\n");

  BatchScriptInput input;
  input.shape = shape_of(config_of(R"({"world": 2})"), {});
  input.trials_dir = trials;
  input.repeats = 2;
  input.timeout_s = 30;
  input.srun_args = {"--comment=" + kHostile};
  input.elements = {{"0123456789abcdef", {"/opt/memfront-trial", "--config", kHostile, "--quiet"}},
                    {"fedcba9876543210", {"/opt/memfront-trial", "--config", "second.json"}}};
  const std::string text = batch_script(input);
  const fs::path script = dir / "array.sbatch";
  write(script, text);
  CommandRun syntax = run_command("bash -n '" + script.string() + "'");
  EXPECT_EQ(syntax.exit_code, 0) << syntax.output << "\n" << text;

  const fs::path args_file = dir / "srun.args";
  CommandRun element = run_command("cd '" + dir.string() + "' && PATH='" + bin.string() + "':\"$PATH\" SRUN_ARGS='" +
                        args_file.string() +
                        "' SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_JOB_ID=77 SLURM_JOB_NODELIST='node\"1\\' bash '" +
                        script.string() + "'");
  EXPECT_EQ(element.exit_code, 0) << element.output;

  std::vector<std::string> words;
  std::stringstream args(read(args_file));
  for (std::string word; std::getline(args, word, '\0');) words.push_back(word);
  const std::vector<std::string> expected = {
      "--nodes=1", "--ntasks=2", "--ntasks-per-node=2", "--distribution=block", "--cpus-per-task=1",
      "--mpi=pmix", "--comment=" + kHostile, "/opt/memfront-trial", "--config", kHostile, "--quiet", "--out",
      (trials / "0123456789abcdef.2.record.json").string()};
  EXPECT_EQ(words, expected) << "the last of two repeats, each with its own record";

  // The end file: both runs, and the node list without the quote and backslash.
  const EndFile end = read_end_file(trials / "0123456789abcdef.end.json");
  ASSERT_EQ(end.runs.size(), 2u);
  EXPECT_EQ(end.runs[0].exit_code, 0);
  EXPECT_LE(end.runs[0].started, end.runs[0].ended);
  EXPECT_EQ(end.nodes, "node1");
  EXPECT_EQ(end.job_id, "77");
  EXPECT_EQ(end.task, 0);
  EXPECT_TRUE(fs::exists(trials / "0123456789abcdef.1.stderr"));
  expect_nothing_executed(dir);

  // An index the array does not have says so and writes nothing.
  CommandRun stray = run_command("cd '" + dir.string() + "' && SLURM_ARRAY_TASK_ID=5 bash '" + script.string() + "'");
  EXPECT_EQ(stray.exit_code, 2);
  EXPECT_TRUE(contains(stray.output, "array element 5 has no trial")) << stray.output;
}

TEST(SlurmScript, AFailedRunEndsTheRepeatsAndAnExplicitPlacementWritesAHostFile) {
  const fs::path dir = fresh_dir("script-fail");
  const fs::path bin = dir / "bin";
  fs::create_directories(bin);
  write_executable(bin / "srun", "#!/bin/bash\nexit 3\n");
  write_executable(bin / "scontrol", "#!/bin/bash\nprintf 'n0\\nn1\\n'\n");
  BatchScriptInput input;
  input.shape = shape_of(config_of(R"({"world": 4, "placement": {"ranks_per_node": 2, "order": [1, 0, 0, 1]}})"), {});
  input.trials_dir = dir;
  input.repeats = 3;
  input.elements = {{"0123456789abcdef", {"/opt/memfront-trial"}}};
  const fs::path script = dir / "array.sbatch";
  write(script, batch_script(input));
  CommandRun element = run_command("PATH='" + bin.string() + "':\"$PATH\" SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_JOB_ID=5 "
                        "SLURM_JOB_NODELIST='n[0-1]' bash '" + script.string() + "'");
  EXPECT_EQ(element.exit_code, 0) << element.output;
  const EndFile end = read_end_file(dir / "0123456789abcdef.end.json");
  ASSERT_EQ(end.runs.size(), 1u) << "no repeat after a run that did not end ok";
  EXPECT_EQ(end.runs[0].exit_code, 3);
  EXPECT_EQ(read(dir / "0123456789abcdef.hosts"), "n1\nn0\nn0\nn1\n");
}

TEST(SlurmParse, SbatchJobId) {
  EXPECT_EQ(parse_sbatch_job_id("123\n"), "123");
  EXPECT_EQ(parse_sbatch_job_id("4567;cluster\n"), "4567");
  EXPECT_EQ(parse_sbatch_job_id("sbatch: warning: something\n89\n"), "89");
  EXPECT_EQ(parse_sbatch_job_id(""), std::nullopt);
  EXPECT_EQ(parse_sbatch_job_id("Submitted batch job 12\n"), std::nullopt) << "--parsable prints the id alone";
}

TEST(SlurmParse, SqueueListsEachElementOfAnArray) {
  const ArrayStates states = parse_squeue(
      "40|1|PENDING|JobArrayTaskLimit|\n"
      "40|0|RUNNING|None|localhost\n"
      "41|N/A|RUNNING|None|node[1-2]\n");
  ASSERT_EQ(states.size(), 1u) << "a job that is not an array element is skipped";
  const auto& elements = states.at("40");
  EXPECT_EQ(elements.at(1).state, "PENDING");
  EXPECT_EQ(elements.at(1).reason, "JobArrayTaskLimit");
  EXPECT_EQ(elements.at(0).state, "RUNNING");
  EXPECT_EQ(elements.at(0).reason, "");
  EXPECT_EQ(elements.at(0).nodes, "localhost");
}

TEST(SlurmParse, SacctStatesOfEndedElements) {
  const ArrayStates states = parse_sacct(
      "50_0|COMPLETED|0:0|node1\n"
      "50_1|CANCELLED by 0|0:15|node2\n"
      "50_2|TIMEOUT|0:0|node1\n"
      "50_[3-9%2]|PENDING|0:0|None assigned\n"
      "51|FAILED|1:0|node3\n");
  ASSERT_EQ(states.size(), 1u);
  const auto& elements = states.at("50");
  ASSERT_EQ(elements.size(), 3u) << "the pending range is not an element";
  EXPECT_EQ(elements.at(1).state, "CANCELLED");
  EXPECT_EQ(elements.at(1).exit_code, "0:15");
  EXPECT_EQ(elements.at(2).state, "TIMEOUT");
  EXPECT_EQ(elements.at(0).nodes, "node1");
}

TEST(SlurmParse, ScontrolShowJobOneLinePerElement) {
  // As scontrol -o show job prints them (shortened), a pending range included.
  const ArrayStates states = parse_scontrol_jobs(
      "JobId=40 ArrayJobId=40 ArrayTaskId=3 JobName=memfront-x JobState=COMPLETED Reason=None ExitCode=0:0 "
      "NodeList=localhost Command=/tmp/a JobState=FAILED\n"
      "JobId=43 ArrayJobId=40 ArrayTaskId=0 JobName=memfront-x JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15 "
      "NodeList=localhost\n"
      "JobId=44 ArrayJobId=40 ArrayTaskId=4-7%2 JobState=PENDING Reason=JobArrayTaskLimit NodeList=(null)\n"
      "JobId=45 JobName=plain JobState=RUNNING\n");
  ASSERT_EQ(states.size(), 1u);
  const auto& elements = states.at("40");
  ASSERT_EQ(elements.size(), 2u);
  EXPECT_EQ(elements.at(3).state, "COMPLETED") << "the first JobState, not one in a later free-text field";
  EXPECT_EQ(elements.at(0).state, "TIMEOUT");
  EXPECT_EQ(elements.at(0).reason, "TimeLimit");
  EXPECT_EQ(elements.at(0).exit_code, "0:15");
  EXPECT_EQ(elements.at(0).nodes, "localhost");
}

TEST(SlurmParse, WhatBecomesOfAnElementThatEndedWithoutItsEndFile) {
  EXPECT_EQ(status_of_ended_element("TIMEOUT"), TrialStatus::timeout);
  EXPECT_EQ(status_of_ended_element("OUT_OF_MEMORY"), TrialStatus::oom);
  EXPECT_EQ(status_of_ended_element("FAILED"), TrialStatus::failed);
  EXPECT_EQ(status_of_ended_element("COMPLETED"), TrialStatus::failed);
  for (const char* again : {"CANCELLED", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", ""}) {
    EXPECT_EQ(status_of_ended_element(again), std::nullopt) << again << " runs again on --resume";
  }
  EXPECT_TRUE(element_is_active("PENDING"));
  EXPECT_TRUE(element_is_active("COMPLETING"));
  EXPECT_FALSE(element_is_active("COMPLETED"));
  EXPECT_FALSE(element_is_active(""));
}

// One decision for an element's fate, as every caller (sweep take-over,
// sweep wait, collect, status) now makes it. The bug: only the waiting sweep
// gave a COMPLETED element without its end file the grace to let the file
// arrive; the others recorded it failed at once.
TEST(SlurmClassify, EveryCallerGetsTheSameFateFromTheSameSighting) {
  const ElementState pending{"PENDING", "Priority", "", "", std::nullopt};
  const ElementState running{"RUNNING", "", "node1", "", std::nullopt};
  auto ended = [](const char* state) { return ElementState{state, "", "node1", "0:0", std::nullopt}; };
  const ElementState completed = ended("COMPLETED"), timeout = ended("TIMEOUT"), oom = ended("OUT_OF_MEMORY"),
                     failed = ended("FAILED"), cancelled = ended("CANCELLED"), node_fail = ended("NODE_FAIL"),
                     completing = ended("COMPLETING");
  using std::chrono::seconds;
  struct Row {
    const char* what;
    ElementSighting sighting;
    ElementFate fate;
    std::optional<TrialStatus> status;
  };
  const std::vector<Row> table = {
      {"end file, whatever Slurm says", {true, true, nullptr, &cancelled, seconds(1)}, ElementFate::finished, {}},
      {"end file, squeue failed", {true, false, nullptr, nullptr, {}}, ElementFate::finished, {}},
      {"queued", {false, true, &pending, nullptr, {}}, ElementFate::in_queue, {}},
      {"running", {false, true, &running, nullptr, {}}, ElementFate::in_queue, {}},
      {"squeue failed", {false, false, nullptr, &completed, seconds(100)}, ElementFate::unknown, {}},
      {"accounting still active", {false, true, nullptr, &completing, {}}, ElementFate::in_queue, {}},
      {"completed just now", {false, true, nullptr, &completed, seconds(5)}, ElementFate::awaiting_end_file, {}},
      {"completed 29 s ago", {false, true, nullptr, &completed, seconds(29)}, ElementFate::awaiting_end_file, {}},
      {"completed past the grace", {false, true, nullptr, &completed, kEndFileGrace}, ElementFate::recorded,
       TrialStatus::failed},
      {"completed, end unknown", {false, true, nullptr, &completed, {}}, ElementFate::recorded, TrialStatus::failed},
      {"timeout", {false, true, nullptr, &timeout, seconds(1)}, ElementFate::recorded, TrialStatus::timeout},
      {"out of memory", {false, true, nullptr, &oom, seconds(1)}, ElementFate::recorded, TrialStatus::oom},
      {"failed", {false, true, nullptr, &failed, seconds(1)}, ElementFate::recorded, TrialStatus::failed},
      {"cancelled", {false, true, nullptr, &cancelled, seconds(1)}, ElementFate::lost, {}},
      {"node failure", {false, true, nullptr, &node_fail, {}}, ElementFate::lost, {}},
      {"forgotten by Slurm", {false, true, nullptr, nullptr, {}}, ElementFate::lost, {}},
  };
  for (const Row& row : table) {
    const ElementVerdict verdict = classify(row.sighting);
    EXPECT_EQ(verdict.fate, row.fate) << row.what;
    EXPECT_EQ(verdict.status, row.status) << row.what;
  }
  EXPECT_EQ(classify({false, true, nullptr, &timeout, {}}).slurm_state, "TIMEOUT");
  EXPECT_EQ(classify({false, true, &running, nullptr, {}}).slurm_state, "RUNNING");
}

TEST(SlurmParse, EndTimesOfEndedElements) {
  const ArrayStates sacct = parse_sacct(
      "50_0|COMPLETED|0:0|node1|2026-12-07T17:00:27\n"
      "50_1|PENDING|0:0|None assigned|Unknown\n");
  std::tm when{};
  when.tm_year = 2026 - 1900;
  when.tm_mon = 11;
  when.tm_mday = 7;
  when.tm_hour = 17;
  when.tm_min = 0;
  when.tm_sec = 27;
  when.tm_isdst = -1;
  EXPECT_EQ(sacct.at("50").at(0).ended, std::mktime(&when));
  EXPECT_EQ(sacct.at("50").at(1).ended, std::nullopt);
  const ArrayStates scontrol = parse_scontrol_jobs(
      "JobId=43 ArrayJobId=40 ArrayTaskId=0 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15 "
      "EndTime=2026-12-07T17:00:27 NodeList=localhost\n");
  EXPECT_EQ(scontrol.at("40").at(0).ended, std::mktime(&when));
}

TEST(SlurmEndFile, AGarbageOrIncompleteEndFileSaysWhatIsWrong) {
  const fs::path dir = fresh_dir("end-file");
  const fs::path path = dir / "x.end.json";
  write(path, R"({"runs": [{"exit": 124, "started": 1.5, "ended": 4}], "nodes": "n1", "job": "9", "task": 2})");
  const EndFile end = read_end_file(path);
  EXPECT_EQ(end.runs.at(0).exit_code, 124);
  EXPECT_EQ(end.runs.at(0).ended, 4);
  EXPECT_EQ(end.task, 2);
  for (const auto& [text, says] : std::vector<std::pair<std::string, std::string>>{
           {"{\"runs\": [", "not valid JSON"},
           {R"({"runs": []})", "no run is listed"},
           {R"({"runs": [{"exit": "0", "started": 1, "ended": 2}]})", "/runs/0/exit"},
           {R"({"runs": [{"exit": 0, "started": 1, "ended": 2}], "job": "1", "task": 0})", "/nodes"}}) {
    write(path, text);
    try {
      read_end_file(path);
      ADD_FAILURE() << "accepted " << text;
    } catch (const InputError& e) {
      EXPECT_TRUE(contains(e.what(), path.string())) << e.what();
      EXPECT_TRUE(contains(e.what(), says)) << e.what();
    }
  }
  EXPECT_THROW(read_end_file(dir / "missing.end.json"), InputError);
}

namespace {

SlurmState::Array array_of(const std::string& job_id, const std::vector<Config>& configs) {
  SlurmState::Array array;
  array.job_id = job_id;
  array.submitted = "2026-01-01T00:00:00Z";
  array.options.partition = kHostile;
  array.options.max_parallel = 2;
  array.timeout_s = 30;
  Prediction prediction;
  prediction.peak_total = 1;
  for (const Config& config : configs) {
    array.trials.push_back({config_id(config), config, config_id(config), prediction, "srun memfront-trial"});
  }
  return array;
}

}  // namespace

TEST(SlurmStateFile, ArraysReadBackAndTheLastSubmissionOfATrialWins) {
  const fs::path dir = fresh_dir("state");
  const fs::path results = dir / "r.jsonl";
  Config other = tiny_config();
  other.checkpoint.every = 1;
  {
    SlurmState state(results);
    state.append(array_of("10", {tiny_config(), other}));
    state.append(array_of("11", {other}));
  }
  SlurmState state(results);
  state.load();
  ASSERT_EQ(state.arrays().size(), 2u);
  EXPECT_EQ(state.arrays()[0].options.partition, kHostile);
  EXPECT_EQ(state.arrays()[0].options.max_parallel, 2);
  EXPECT_EQ(state.arrays()[0].trials[0].config, tiny_config());
  const auto latest = state.latest_elements();
  EXPECT_EQ(latest.at(config_id(other)).name(), "11_0");
  EXPECT_EQ(latest.at(config_id(tiny_config())).name(), "10_0");
  EXPECT_EQ(state.folder(), fs::absolute(results).string() + ".slurm");

  // A driver killed while writing a line leaves it cut short: it is left out,
  // and the next append replaces it.
  const fs::path file = state.folder() / "state.jsonl";
  std::ofstream(file, std::ios::app) << R"({"array": 3, "job_id": "12", "subm)";
  state.load();
  EXPECT_EQ(state.arrays().size(), 2u);
  state.append(array_of("13", {tiny_config()}));
  state.load();
  ASSERT_EQ(state.arrays().size(), 3u);
  EXPECT_EQ(state.arrays()[2].job_id, "13");

  // Anything else malformed is an error with its line.
  std::string text = read(file);
  text.insert(0, "{not json}\n");
  write(file, text);
  try {
    state.load();
    ADD_FAILURE() << "a malformed line was accepted";
  } catch (const InputError& e) {
    EXPECT_TRUE(contains(e.what(), "state.jsonl:1:3: not valid JSON")) << e.what();
  }
}

// Bug: the state's own appender cut off any last line without its '\n',
// while load() kept such a line when it was complete JSON, so an append lost
// an array that a load had just read. One set of JSON Lines rules now serves
// both (core/jsonl.h).
TEST(SlurmStateFile, ACompleteLastLineWithoutNewlineSurvivesAnAppend) {
  const fs::path dir = fresh_dir("state-newline");
  SlurmState state(dir / "r.jsonl");
  state.append(array_of("20", {tiny_config()}));
  const fs::path file = state.folder() / "state.jsonl";
  std::string text = read(file);
  text.pop_back();  // the '\n'
  write(file, text);
  state.load();
  ASSERT_EQ(state.arrays().size(), 1u);
  Config other = tiny_config();
  other.checkpoint.every = 1;
  state.append(array_of("21", {other}));
  state.load();
  ASSERT_EQ(state.arrays().size(), 2u);
  EXPECT_EQ(state.arrays()[0].job_id, "20");
  EXPECT_EQ(state.arrays()[1].job_id, "21");
}

TEST(SlurmStateFile, AMalformedArrayNamesItsLineAndField) {
  const fs::path dir = fresh_dir("state-field");
  SlurmState state(dir / "r.jsonl");
  state.append(array_of("30", {tiny_config()}));
  const fs::path file = state.folder() / "state.jsonl";
  nlohmann::json line = nlohmann::json::parse(read(file));
  line["trials"][0]["id"] = 7;
  write(file, line.dump() + "\n");
  try {
    state.load();
    ADD_FAILURE() << "a malformed array was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), file.string() + ":1: /trials/0/id: expected the trial id, got number");
  }
}

TEST(SlurmStateFile, OneProcessMergesAtATime) {
  const fs::path dir = fresh_dir("lock");
  SlurmState state(dir / "r.jsonl");
  MergeLock first(state);
  try {
    MergeLock second(state);
    ADD_FAILURE() << "two holders";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "process " + std::to_string(getpid()))) << e.what();
    EXPECT_TRUE(contains(e.what(), "is merging into this results file")) << e.what();
  }
}

// What an element left, turned into records as the local launcher would.
class SlurmOutcomes : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fresh_dir(testing::UnitTest::GetInstance()->current_test_info()->name());
    state_.emplace(dir_ / "r.jsonl");
    state_->append(array_of("20", {tiny_config()}));
    fs::create_directories(state_->trials_dir());
    element_ = state_->latest_elements().at(id());
  }
  std::string id() const { return config_id(tiny_config()); }
  void end_file(const std::string& runs) {
    write(state_->end_path(id()), R"({"runs": [)" + runs + R"(], "nodes": "node[1-2]", "job": "20", "task": 0})");
  }
  void ok_record(int run) {
    TrialRecord record;
    record.id = id();
    record.config = tiny_config();
    record.provenance = json::object();
    write_record_file(state_->record_path(id(), run), record);
  }

  fs::path dir_;
  std::optional<SlurmState> state_;
  SlurmState::Element element_;
};

TEST_F(SlurmOutcomes, AnOkRunKeepsItsRecordWithTheNodesSlurmGave) {
  ok_record(1);
  end_file(R"({"exit": 0, "started": 10, "ended": 12.5})");
  const std::vector<LaunchOutcome> runs = outcomes_of_finished(*state_, element_);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].record.status, TrialStatus::ok) << runs[0].record.error;
  EXPECT_EQ(runs[0].record.provenance["slurm"]["nodes"], "node[1-2]");
  EXPECT_EQ(runs[0].record.provenance["slurm"]["job_id"], "20");
  EXPECT_EQ(runs[0].end.wall_s, 2.5);
  EXPECT_TRUE(contains(runs[0].command, "srun memfront-trial --out ")) << runs[0].command;
  EXPECT_EQ(runs[0].record_dir, state_->trials_dir());
}

TEST_F(SlurmOutcomes, ExitStatusesOfTimeoutAndSrunBecomeTimeoutSignalAndKilled) {
  write(state_->stderr_path(id(), 1), "srun: error: node1: task 0: Killed\n");
  end_file(R"({"exit": 124, "started": 0, "ended": 30})");
  EXPECT_EQ(outcomes_of_finished(*state_, element_)[0].record.status, TrialStatus::timeout);
  end_file(R"({"exit": 137, "started": 0, "ended": 1})");
  // A SIGKILL the kernel is not known to have sent for memory (Slurm's
  // OUT_OF_MEMORY state says that) is `killed`, never a guessed `oom`.
  const TrialRecord killed = outcomes_of_finished(*state_, element_)[0].record;
  EXPECT_EQ(killed.status, TrialStatus::killed);
  EXPECT_TRUE(contains(killed.error, "task 0: Killed")) << killed.error;
  end_file(R"({"exit": 134, "started": 0, "ended": 1})");
  EXPECT_TRUE(outcomes_of_finished(*state_, element_)[0].record.error.starts_with("killed by signal 6 (SIGABRT)"));
  ok_record(1);
  ok_record(2);
  end_file(R"({"exit": 0, "started": 0, "ended": 1}, {"exit": 0, "started": 1, "ended": 2})");
  EXPECT_EQ(outcomes_of_finished(*state_, element_).size(), 2u) << "one outcome per repeat";
}

TEST_F(SlurmOutcomes, AGarbagePartIsThatTrialsFailureNotACrash) {
  write(state_->record_path(id(), 1), "not a record {");
  end_file(R"({"exit": 0, "started": 0, "ended": 1})");
  const TrialRecord garbage_record = outcomes_of_finished(*state_, element_)[0].record;
  EXPECT_EQ(garbage_record.status, TrialStatus::failed);
  EXPECT_TRUE(contains(garbage_record.error, "exit 0 but the record is unreadable")) << garbage_record.error;

  write(state_->end_path(id()), "{\"runs\": [{\"exit\": 0,");
  const std::vector<LaunchOutcome> garbage_end = outcomes_of_finished(*state_, element_);
  ASSERT_EQ(garbage_end.size(), 1u);
  EXPECT_EQ(garbage_end[0].record.status, TrialStatus::failed);
  EXPECT_TRUE(contains(garbage_end[0].record.error, "end file is unreadable")) << garbage_end[0].record.error;
  EXPECT_EQ(garbage_end[0].record.provenance["slurm"]["job_id"], "20");
}

TEST_F(SlurmOutcomes, AnElementSlurmEndedIsRecordedWithItsStateAndLog) {
  fs::create_directories(state_->folder() / "logs");
  write(state_->log_path(element_), "starting\nslurmstepd: error: *** JOB 21 CANCELLED DUE TO TIME LIMIT ***\n");
  ElementState slurm;
  slurm.state = "TIMEOUT";
  slurm.exit_code = "0:15";
  slurm.nodes = "node1";
  const TrialRecord record = outcome_of_ended(*state_, element_, slurm, TrialStatus::timeout).record;
  EXPECT_EQ(record.status, TrialStatus::timeout);
  EXPECT_EQ(record.error,
            "Slurm ended array element 20_0 as TIMEOUT (exit 0:15) before the trial finished; log: starting | "
            "slurmstepd: error: *** JOB 21 CANCELLED DUE TO TIME LIMIT ***");
  EXPECT_EQ(record.provenance["slurm"]["state"], "TIMEOUT");
  EXPECT_EQ(record.config, tiny_config());
}

// The sweep command against stand-ins: no sbatch, an sbatch that refuses, and
// a hostile study name (which must run nothing at all).
class SlurmSweepCommand : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fresh_dir(testing::UnitTest::GetInstance()->current_test_info()->name());
    bin_ = dir_ / "bin";
    fs::create_directories(bin_);
  }
  fs::path study(const std::string& name) {
    const json spec = {
        {"study", name},
        {"base", {{"model", {{"vocab", 64}, {"seq", 16}, {"width", 32}, {"heads", 2}, {"layers", 2}}}}},
        {"space", {{"checkpoint.every", {0, 1}}}},
        {"objectives", {{{"metric", "peak_mem"}}}},
        {"steps", 2},
        {"warmup", 0}};
    const fs::path path = dir_ / "study.json";
    write(path, spec.dump());
    return path;
  }
  CommandRun sweep(const fs::path& study_path, const std::string& path_env, const std::string& extra = "") {
    return run_command("cd '" + dir_.string() + "' && PATH='" + path_env + "' MEMFRONT_TRIAL='" + MEMFRONT_TRIAL_EXE +
               "' MEMFRONT_CALIBRATION=/nonexistent '" + MEMFRONT_TOOL_EXE + "' sweep '" + study_path.string() +
               "' --results r.jsonl --launcher slurm " + extra);
  }

  fs::path dir_, bin_;
};

TEST_F(SlurmSweepCommand, NoSbatchOnPathIsOneLine) {
  const CommandRun c = sweep(study("nosbatch"), bin_.string());
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_TRUE(contains(c.output, "memfront: slurm: sbatch is not on PATH: run memfront where Slurm's commands are"))
      << c.output;
}

TEST_F(SlurmSweepCommand, ARejectedArraySaysWhatSbatchSaid) {
  write_executable(bin_ / "sbatch",
                   "#!/bin/bash\necho 'sbatch: error: Batch job submission failed: Invalid account or "
                   "account/partition combination specified' >&2\nexit 1\n");
  const CommandRun c = sweep(study("rejected"), bin_.string() + ":/usr/bin:/bin", "--account 'nobody; touch PWNED'");
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_TRUE(contains(c.output, "memfront: slurm: sbatch rejected arrays/1.sbatch (exit 1): sbatch: error: Batch "
                                 "job submission failed: Invalid account or account/partition combination "
                                 "specified\n"))
      << c.output;
  EXPECT_FALSE(fs::exists(dir_ / "r.jsonl.slurm" / "state.jsonl")) << "nothing was submitted, so nothing is kept";
  expect_nothing_executed(dir_);
}

TEST_F(SlurmSweepCommand, AHostileStudyNameRunsNothing) {
  // Any sbatch that gets called leaves a mark.
  write_executable(bin_ / "sbatch", "#!/bin/bash\ntouch \"$(dirname \"$0\")/SBATCH_CALLED\"\necho 1\n");
  for (const char* name : {"x$(touch PWNED)", "x`touch PWNED`", "x; touch PWNED", "x'\ntouch PWNED"}) {
    const CommandRun c = sweep(study(name), bin_.string() + ":/usr/bin:/bin");
    EXPECT_EQ(c.exit_code, 2) << c.output;
    EXPECT_TRUE(contains(c.output, "/study:")) << c.output;
  }
  EXPECT_FALSE(fs::exists(bin_ / "SBATCH_CALLED"));
  expect_nothing_executed(dir_);
}

TEST_F(SlurmSweepCommand, SlurmOptionsNeedTheSlurmLauncher) {
  const CommandRun c = run_command("cd '" + dir_.string() + "' && '" + MEMFRONT_TOOL_EXE + "' sweep '" +
                        study("local").string() + "' --results r.jsonl --partition debug");
  EXPECT_EQ(c.exit_code, 2) << c.output;
  EXPECT_TRUE(contains(c.output, "--partition: a Slurm option; add --launcher slurm")) << c.output;
  const CommandRun collect =
      run_command("'" + std::string(MEMFRONT_TOOL_EXE) + "' collect '" + (dir_ / "none.jsonl").string() + "'");
  EXPECT_EQ(collect.exit_code, 2) << collect.output;
  EXPECT_TRUE(contains(collect.output, "no Slurm sweep to collect")) << collect.output;
}
