// Faults from the outside, as a hostile user or an unlucky cluster would
// cause them: a sweep killed by any signal in the middle of a trial leaves no
// trial process running and resumes with every record once; a later sweep
// ends what an earlier one's trial left behind; two sweeps never run on one
// results file.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/run_command.h"

#include "core/config.h"
#include "core/results.h"
#include "tuner/launcher.h"
#include "tuner/process.h"
#include "tuner/sweep_lock.h"

using namespace memfront;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kTool = MEMFRONT_TOOL_EXE;
const std::string kFakeTrial = MEMFRONT_FAKE_TRIAL;
const std::string kTrial = MEMFRONT_TRIAL_EXE;

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(testing::TempDir()) / ("faults-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Two configurations of two ranks under mpirun, each trial a fake_trial that
// sleeps `seconds` before it writes an ok record.
fs::path write_slow_study(const fs::path& dir, const std::string& name) {
  const json study = {
      {"study", name},
      {"base", {{"model", {{"vocab", 64}, {"seq", 16}, {"width", 32}, {"heads", 2}, {"layers", 2}}},
                {"batch", {{"micro", 2}}},
                {"world", 2}}},
      {"space", {{"checkpoint.every", {0, 1}}}},
      {"objectives", {{{"metric", "peak_mem"}}, {{"metric", "step_time"}}}},
      {"steps", 3},
      {"warmup", 0},
      {"launcher", {{"kind", "local"}, {"timeout_s", 60}, {"mpirun_args", {"--oversubscribe"}}}}};
  const fs::path path = dir / "study.json";
  std::ofstream(path) << study.dump(2);
  return path;
}

std::string sweep_command(const fs::path& study, const fs::path& results, double trial_seconds,
                          const std::string& extra = "") {
  return "MEMFRONT_TRIAL='" + kFakeTrial + "' FAKE_TRIAL_MODE=slow FAKE_TRIAL_SECONDS=" +
         std::to_string(trial_seconds) + " MEMFRONT_CALIBRATION=/nonexistent '" + kTool + "' sweep '" +
         study.string() + "' --results '" + results.string() + "' " + extra;
}

// The command line of a process, its words joined by spaces ("" when gone).
std::string command_line(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : text) {
    if (c == '\0') c = ' ';
  }
  return text;
}

bool is_zombie(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const size_t after_name = line.rfind(')');
  return after_name == std::string::npos || line.size() < after_name + 3 || line[after_name + 2] == 'Z';
}

// The running processes, other than this one, whose command line mentions
// `text`; with `program` given, only those that run it.
std::vector<pid_t> processes_mentioning(const std::string& text, const std::string& program = "") {
  std::vector<pid_t> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    if (pid == ::getpid()) continue;
    const std::string line = command_line(pid);
    if (line.find(text) == std::string::npos || (!program.empty() && !line.starts_with(program))) continue;
    if (!is_zombie(pid)) found.push_back(pid);
  }
  return found;
}

std::string describe(const std::vector<pid_t>& pids) {
  std::string text;
  for (pid_t pid : pids) text += "\n  " + std::to_string(pid) + ": " + command_line(pid);
  return text;
}

// Starts `command` through the shell as a process of its own (pid = the
// shell's exec'd program), its output into `log`.
pid_t start_command(const std::string& command, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    const std::string line = "exec env " + command + " > '" + log.string() + "' 2>&1";
    ::execl("/bin/sh", "sh", "-c", line.c_str(), nullptr);
    ::_exit(127);
  }
  return pid;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class DriverKilled : public testing::TestWithParam<int> {};

}  // namespace

// SIGKILL leaves the trial to its watchdog; SIGTERM and SIGHUP stop the sweep
// as Ctrl-C does. Either way, no rank (which Open MPI puts in a process group
// of its own), no mpirun and no watchdog is left 2 s later, and --resume
// records every configuration once.
TEST_P(DriverKilled, NoTrialProcessSurvivesAndResumeCompletes) {
  const int sig = GetParam();
  const fs::path dir = fresh_dir(sigabbrev_np(sig));
  const fs::path study = write_slow_study(dir, "killed");
  const fs::path results = dir / "killed.jsonl";
  const pid_t driver = start_command(sweep_command(study, results, 30), dir / "driver.log");

  // Both ranks of the first trial run.
  std::vector<pid_t> ranks;
  for (int tries = 0; tries < 600 && ranks.size() < 2; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ranks = processes_mentioning(dir.string(), kFakeTrial);
  }
  ASSERT_EQ(ranks.size(), 2u) << read_text(dir / "driver.log");
  ASSERT_EQ(::kill(driver, sig), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(driver, &status, 0), driver);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const std::vector<pid_t> left = processes_mentioning(dir.string());
  EXPECT_TRUE(left.empty()) << "still running 2 s after the driver got " << sigabbrev_np(sig) << ":"
                            << describe(left);
  for (pid_t pid : left) ::kill(pid, SIGKILL);  // not left behind by the test

  const CommandRun resumed = run_command(sweep_command(study, results, 0.2, "--resume"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  const ResultsFile file = read_results(results);
  std::set<std::string> ids;
  for (const TrialRecord& record : file.trials) {
    EXPECT_TRUE(ids.insert(record.id).second) << "recorded twice: " << record.id;
    EXPECT_EQ(record.status, TrialStatus::ok) << record.error;
  }
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_TRUE(processes_mentioning(dir.string()).empty());
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Signals, DriverKilled, testing::Values(SIGKILL, SIGTERM, SIGHUP),
                         [](const testing::TestParamInfo<int>& info) { return std::string(sigabbrev_np(info.param)); });

TEST(SweepLock, ASecondSweepOnTheSameResultsIsRefused) {
  const fs::path dir = fresh_dir("second");
  const fs::path study = write_slow_study(dir, "second");
  const fs::path results = dir / "second.jsonl";
  const pid_t first = start_command(sweep_command(study, results, 30), dir / "first.log");
  for (int tries = 0; tries < 600 && processes_mentioning(dir.string(), kFakeTrial).empty(); ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const CommandRun second = run_command(sweep_command(study, results, 0.2, "--resume"));
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.output.find("another memfront sweep " + std::to_string(first)), std::string::npos)
      << second.output;
  ::kill(first, SIGINT);
  int status = 0;
  ::waitpid(first, &status, 0);
  fs::remove_all(dir);
}

// What a sweep whose watchdog was killed too (kill -9 of every memfront
// process) left running is ended by the next one; a recorded pid that now
// names another process is left alone.
TEST(SweepLock, TheNextSweepEndsWhatAnEarlierOneLeftRunning) {
  const fs::path dir = fresh_dir("left");
  const fs::path results = dir / "left.jsonl";
  ProcessRequest orphan_request;
  orphan_request.argv = {"/bin/sh", "-c", "sleep 60 & echo $! > '" + (dir / "orphan").string() + "'; wait"};
  // The orphan's session, as a killed sweep's trial would leave it: started
  // by run_process in a child that is then killed with its watchdog.
  const pid_t driver = ::fork();
  if (driver == 0) {
    orphan_request.on_start = [&](const ProcessIdentity& trial) {
      std::ofstream(SweepLock::path_of(results)) << "sweep " << ::getpid() << "\ntrial " << trial.pid << " "
                                                 << trial.start_ticks << "\n";
    };
    run_process(orphan_request);
    ::_exit(0);
  }
  pid_t orphan = 0;
  for (int tries = 0; tries < 200 && orphan == 0; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream(dir / "orphan") >> orphan;
  }
  ASSERT_GT(orphan, 0);
  // The driver and its watchdog (the one process of the driver's other than
  // the trial that runs the test program) go at once.
  const std::vector<pid_t> watchdogs = processes_mentioning(command_line(::getpid()));
  for (pid_t pid : watchdogs) {
    if (pid != driver && command_line(pid) == command_line(::getpid())) ::kill(pid, SIGKILL);
  }
  ::kill(driver, SIGKILL);
  ::waitpid(driver, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_FALSE(is_zombie(orphan)) << "the orphan must outlive its driver and watchdog for this test";

  std::ostringstream log;
  { SweepLock lock(results, log); }
  EXPECT_NE(log.str().find("processes of a trial an earlier sweep left running"), std::string::npos)
      << log.str();
  bool gone = false;
  for (int tries = 0; tries < 100 && !gone; ++tries) {
    gone = is_zombie(orphan) || command_line(orphan).empty();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(gone);

  // A record whose pid now names another process (this one, started long
  // before) ends nothing.
  std::ofstream(SweepLock::path_of(results)) << "sweep 1\ntrial " << ::getpid() << " 1\n";
  std::ostringstream quiet;
  { SweepLock lock(results, quiet); }
  EXPECT_EQ(quiet.str(), "");
  fs::remove_all(dir);
}

// A rank that rejects its input, alone, ends the whole job at once (the
// others waited for it in a collective forever), and its message, not an
// empty stderr, is the record's error. Nothing is written for input found bad.
TEST(RankRejects, TheJobEndsWithinTheTimeoutWithTheRanksMessageInTheRecord) {
  const fs::path dir = fresh_dir("rank1");
  const Config config = parse_config({{"world", 2}}, "rank1");
  const fs::path config_path = dir / "c.json";
  std::ofstream(config_path) << to_json(config).dump();
  const fs::path record_path = dir / "r.json", stderr_path = dir / "stderr";
  const std::vector<std::pair<std::vector<std::string>, std::string>> rank1_inputs = {
      {{"--config", config_path.string(), "--mem-cap", "0.4"}, "rank 1: --mem-cap: expected a byte size from 1 B"},
      {{"--config", (dir / "missing.json").string()}, "rank 1: " + (dir / "missing.json").string() + ": cannot read"}};
  for (const auto& [rank1_args, message] : rank1_inputs) {
    ProcessRequest request;
    request.argv = {"mpirun", "--oversubscribe"};
    if (::geteuid() == 0) request.argv.push_back("--allow-run-as-root");
    request.argv.insert(request.argv.end(), {"-np", "1", kTrial, "--config", config_path.string(), "--out",
                                             record_path.string(), ":", "-np", "1", kTrial, "--out",
                                             record_path.string()});
    request.argv.insert(request.argv.end(), rank1_args.begin(), rank1_args.end());
    request.timeout_s = 60;
    request.stderr_path = stderr_path;
    const ProcessEnd end = run_process(request);
    EXPECT_FALSE(end.timed_out) << "the other rank waited for the one that stopped";
    EXPECT_LT(end.wall_s, 30);
    const LaunchOutcome outcome = outcome_of_run(config, end, "mpirun", 60, record_path, stderr_path);
    EXPECT_EQ(outcome.record.status, TrialStatus::invalid) << outcome.record.error;
    EXPECT_NE(outcome.record.error.find(message), std::string::npos) << outcome.record.error;
    EXPECT_FALSE(fs::exists(record_path)) << "a record was written for input found bad";
  }
  fs::remove_all(dir);
}

// Special files where a trial's files should be: a FIFO in the record's place
// is refused at once, not waited on; a flood on stderr is kept as a bounded tail.
TEST(SpecialFiles, AFifoRecordIsRefusedAndAFloodOfStderrIsBounded) {
  const fs::path dir = fresh_dir("special");
  LaunchRequest request;
  request.config = parse_config({{"world", 1}}, "special");
  request.work_dir = dir;
  request.timeout_s = 60;
  request.trial_exe = kFakeTrial;
  const std::string id = config_id(request.config);

  ::setenv("FAKE_TRIAL_MODE", "fifo", 1);
  const LaunchOutcome fifo = LocalLauncher().run(request);
  EXPECT_LT(fifo.end.wall_s, 10);
  EXPECT_EQ(fifo.record.status, TrialStatus::failed);
  EXPECT_NE(fifo.record.error.find("not a regular file (a FIFO)"), std::string::npos) << fifo.record.error;

  ::setenv("FAKE_TRIAL_MODE", "flood", 1);
  const LaunchOutcome flood = LocalLauncher().run(request);
  ::unsetenv("FAKE_TRIAL_MODE");
  EXPECT_EQ(flood.record.status, TrialStatus::failed);
  EXPECT_NE(flood.record.error.find("fake_trial: the last word"), std::string::npos) << flood.record.error;
  EXPECT_LE(fs::file_size(dir / (id + ".stderr")), size_t{1} << 20);
  EXPECT_GT(fs::file_size(dir / (id + ".stderr")), size_t{1} << 19);
  fs::remove_all(dir);
}

// The files of a folder and its subfolders, for a message ("" when none).
std::string files_under(const fs::path& folder) {
  std::string listed;
  for (const auto& entry : fs::recursive_directory_iterator(folder)) listed += "\n  " + entry.path().string();
  return listed;
}

// Bad input leaves nothing behind: a study whose constraint divides by zero
// (found while the space is enumerated) writes no results file, no lock file
// and no folder for them, so the corrected study then runs; a sweep refused
// on a results file that exists leaves no lock file beside it; a trial whose
// data file is missing leaves no "did not finish" record.
TEST(NothingWritten, UntilTheInputIsKnownGood) {
  const fs::path dir = fresh_dir("nothing");
  json spec = json::parse(read_text(write_slow_study(dir, "nothing")));
  spec["base"]["world"] = 1;
  spec["constraints"] = {"checkpoint.every / (model.layers - 2) == 0"};
  const fs::path study = dir / "study.json";
  std::ofstream(study) << spec.dump();
  const fs::path results = dir / "new" / "folder" / "nothing.jsonl";
  const CommandRun bad = run_command(sweep_command(study, results, 0));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("division by zero"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir / "new")) << "files were left for a study found bad:" << files_under(dir / "new");
  spec.erase("constraints");
  std::ofstream(study, std::ios::trunc) << spec.dump();
  const CommandRun good = run_command(sweep_command(study, results, 0));
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_FALSE(fs::exists(SweepLock::path_of(results))) << "a sweep that ended left its lock file";
  const CommandRun again = run_command(sweep_command(study, results, 0));
  EXPECT_EQ(again.exit_code, 2) << again.output;
  EXPECT_NE(again.output.find("results file exists"), std::string::npos) << again.output;
  EXPECT_FALSE(fs::exists(SweepLock::path_of(results))) << "a refused sweep left a lock file";

  const Config config = parse_config({{"data", {{"source", "file"}, {"path", (dir / "missing.u16").string()}}}}, "c");
  std::ofstream(dir / "c.json") << to_json(config).dump();
  const CommandRun trial = run_command("'" + kTrial + "' --config '" + (dir / "c.json").string() + "' --out '" +
                                       (dir / "r.json").string() + "'");
  EXPECT_EQ(trial.exit_code, 2) << trial.output;
  EXPECT_NE(trial.output.find("missing.u16"), std::string::npos) << trial.output;
  EXPECT_FALSE(fs::exists(dir / "r.json")) << "a record was left for input found bad";
  fs::remove_all(dir);
}

// A space of 10^8 points: the sweep says how many configurations there are
// at once and runs its first trials within seconds, for every strategy
// (nothing enumerates the space first).
TEST(HugeSpace, TheSweepCountsAtOnceAndStartsPromptly) {
  const fs::path dir = fresh_dir("huge");
  json spec = json::parse(read_text(write_slow_study(dir, "huge")));
  spec["base"]["world"] = 1;
  spec["space"] = {{"batch.micro", {{"range", {1, 10000}}, {"step", 1}}},
                   {"batch.accum", {{"range", {1, 10000}}, {"step", 1}}}};
  const fs::path study = dir / "study.json";
  std::ofstream(study, std::ios::trunc) << spec.dump();
  for (const std::string strategy : {"grid", "random", "halving", "nsga2"}) {
    const fs::path results = dir / (strategy + ".jsonl");
    const auto start = std::chrono::steady_clock::now();
    const CommandRun run =
        run_command(sweep_command(study, results, 0, "--budget 2 --strategy " + strategy + " --no-prune"));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_EQ(run.exit_code, 0) << strategy << ": " << run.output;
    EXPECT_NE(run.output.find("100000000 configurations in the space"), std::string::npos) << run.output;
    EXPECT_LT(seconds, 30) << strategy << ": the trials waited for the space";
    EXPECT_GE(read_results(results).trials.size(), 2u) << strategy;
  }
  fs::remove_all(dir);
}

// The most memory a command took (its peak resident set), and how it ended.
struct MeasuredRun {
  int exit_code = -1;
  long max_rss_kib = 0;
};

MeasuredRun run_measured(const std::string& command) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", ("exec " + command + " > /dev/null 2>&1").c_str(), nullptr);
    ::_exit(127);
  }
  int status = 0;
  struct rusage usage {};
  ::wait4(pid, &status, 0, &usage);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, usage.ru_maxrss};
}

// pareto, export and status read a results file a line at a time: on a file
// of 60 MB they take less memory than half its size (they once held the whole
// text and every record, about 2.4 times the file's size), and they find the
// same front as the records held in memory.
TEST(LargeResults, AreReadALineAtATime) {
  const fs::path dir = fresh_dir("large");
  json spec = json::parse(read_text(write_slow_study(dir, "large")));
  spec["base"]["world"] = 1;
  const fs::path study = dir / "study.json";
  std::ofstream(study, std::ios::trunc) << spec.dump();
  const fs::path seed = dir / "seed.jsonl";
  ASSERT_EQ(run_command(sweep_command(study, seed, 0)).exit_code, 0);
  const ResultsFile recorded = read_results(seed);

  // Copies of the recorded trials, each with an id of its own, a step time of
  // its own and a long loss curve, to 60 MB.
  const fs::path large = dir / "large.jsonl";
  {
    std::ofstream out(large);
    out << to_json(recorded.header).dump() << "\n";
    std::vector<double> curve(2500);
    for (size_t i = 0; i < curve.size(); ++i) curve[i] = 4.0 / (1.0 + 0.01 * static_cast<double>(i)) + 1e-7 * i;
    size_t written = 0;
    for (int copy = 0; written < (size_t{60} << 20); ++copy) {
      for (TrialRecord record : recorded.trials) {
        record.id = record.id.substr(0, 8) + std::to_string(10000000 + copy);
        record.metrics->loss_curve = curve;
        record.metrics->step_time_s.median *= 1.0 + 1e-6 * copy;
        const std::string line = to_json(record).dump() + "\n";
        out << line;
        written += line.size();
      }
    }
  }
  const long half_file_kib = static_cast<long>(fs::file_size(large) / 2048);
  for (const std::string command : {"pareto", "status", "export --pick knee", "export --pick best:step_time"}) {
    const MeasuredRun run = run_measured("'" + kTool + "' " + command + " '" + large.string() + "'");
    EXPECT_EQ(run.exit_code, 0) << command;
    EXPECT_LT(run.max_rss_kib, half_file_kib) << command << " held " << run.max_rss_kib << " KiB";
  }
  // The front of the copies is the first copy of the recorded front.
  const CommandRun pareto = run_command("'" + kTool + "' pareto --json '" + large.string() + "'");
  ASSERT_EQ(pareto.exit_code, 0) << pareto.output.substr(0, 2000);
  const json front = json::parse(pareto.output);
  const CommandRun seed_front = run_command("'" + kTool + "' pareto --json '" + seed.string() + "'");
  ASSERT_EQ(front.size(), json::parse(seed_front.output).size());
  for (const json& record : front) EXPECT_TRUE(record["id"].get<std::string>().ends_with("10000000")) << record["id"];
  fs::remove_all(dir);
}

// A resumed sweep that cuts off a torn last line (a kill mid-write) says so
// in one line naming the file and the line, and runs that trial again.
TEST(Resume, SaysItRepairedATornLastLine) {
  const fs::path dir = fresh_dir("torn");
  json spec = json::parse(read_text(write_slow_study(dir, "torn")));
  spec["base"]["world"] = 1;
  const fs::path study = dir / "study.json";
  std::ofstream(study, std::ios::trunc) << spec.dump();
  const fs::path results = dir / "torn.jsonl";
  const CommandRun made = run_command(sweep_command(study, results, 0));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const std::string text = read_text(results);
  const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  const size_t last_line = text.rfind('\n', text.size() - 2) + 1;
  std::ofstream(results, std::ios::trunc) << text.substr(0, last_line + 20);  // a kill 20 bytes into the last record

  const CommandRun resumed = run_command(sweep_command(study, results, 0, "--resume"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("memfront: warning: " + results.string() + ":" + std::to_string(lines) +
                                ": cut off a torn last line (20 bytes; a crash mid-write)"),
            std::string::npos)
      << resumed.output;
  EXPECT_EQ(read_results(results).trials.size(), lines - 1);
  fs::remove_all(dir);
}

// The study a results header keeps is checked as a study file is before
// pareto, export or status use it; --resume refuses a changed study and lists
// what changed.
TEST(RecordedStudy, IsValidatedAndAChangedStudyIsNotResumed) {
  const fs::path dir = fresh_dir("recorded");
  const fs::path study = write_slow_study(dir, "recorded");
  json spec = json::parse(read_text(study));
  spec["base"]["world"] = 1;
  std::ofstream(study, std::ios::trunc) << spec.dump();
  const fs::path results = dir / "recorded.jsonl";
  const CommandRun made = run_command(sweep_command(study, results, 0));
  ASSERT_EQ(made.exit_code, 0) << made.output;

  // Headers edited by hand: each refused with the field, not a type_error or
  // undefined behaviour.
  const std::string text = read_text(results);
  const json header = json::parse(text.substr(0, text.find('\n')));
  const std::string trials = text.substr(text.find('\n') + 1);
  struct Edit {
    std::string key;
    json value;
    std::string pointer;  // where the error must point
  };
  const std::vector<Edit> edits = {{"objectives", json::array({1, 2}), "/objectives/0"},
                                   {"objectives", "peak_mem", "/objectives"},
                                   {"steps", "three", "/steps"},
                                   {"steps", 1e300, "/steps"}};
  for (const auto& [key, value, pointer] : edits) {
    json edited = header;
    edited["study_spec"][key] = value;
    const json edit = {{key, value}};
    const fs::path path = dir / "edited.jsonl";
    std::ofstream(path, std::ios::trunc) << edited.dump() << "\n" << trials;
    for (const std::string command : {"pareto", "status"}) {
      const CommandRun run = run_command("'" + kTool + "' " + command + " '" + path.string() + "'");
      EXPECT_EQ(run.exit_code, 2) << command << " " << edit.dump() << ": " << run.output;
      EXPECT_NE(run.output.find(path.string() + ": header /study_spec: " + pointer), std::string::npos)
          << command << " " << edit.dump() << ": " << run.output;
    }
  }

  spec["steps"] = 4;
  spec["objectives"].push_back({{"metric", "loss_delta"}});
  std::ofstream(study, std::ios::trunc) << spec.dump();
  const CommandRun resumed = run_command(sweep_command(study, results, 0, "--resume"));
  EXPECT_EQ(resumed.exit_code, 2) << resumed.output;
  EXPECT_NE(resumed.output.find("/steps: 3 -> 4"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("/objectives/2: added"), std::string::npos) << resumed.output;
  fs::remove_all(dir);
}

// Asked to, a resumed sweep continues a changed study as a new revision
// that the file records; pareto and status then judge the file by it (its
// steps, its objectives), and the trials of the study before stay readable.
TEST(RecordedStudy, AChangedStudyGoesOnAsARevisionWhenAsked) {
  const fs::path dir = fresh_dir("revised");
  const fs::path study = write_slow_study(dir, "revised");
  json spec = json::parse(read_text(study));
  spec["base"]["world"] = 1;
  std::ofstream(study, std::ios::trunc) << spec.dump();
  const fs::path results = dir / "revised.jsonl";
  ASSERT_EQ(run_command(sweep_command(study, results, 0)).exit_code, 0);
  const size_t before = read_results(results).trials.size();  // the two points and the reference, 3 steps

  spec["steps"] = 4;
  spec["objectives"] = {{{"metric", "peak_mem"}}, {{"metric", "tokens_per_s"}, {"goal", "max"}}};
  std::ofstream(study, std::ios::trunc) << spec.dump();
  const std::string revise_only = run_command("'" + kTool + "' sweep '" + study.string() + "' --revise").output;
  EXPECT_NE(revise_only.find("--revise requires --resume"), std::string::npos) << revise_only;
  const CommandRun revised = run_command(sweep_command(study, results, 0, "--resume --revise"));
  ASSERT_EQ(revised.exit_code, 0) << revised.output;
  EXPECT_NE(revised.output.find(results.string() + ": study 'revised' goes on as revision 2 ("), std::string::npos)
      << revised.output;
  for (const std::string change : {"/objectives/1/metric: \"step_time\" -> \"tokens_per_s\"",
                                   "/objectives/1/goal: added \"max\"", "/steps: 3 -> 4"}) {
    EXPECT_NE(revised.output.find(change), std::string::npos) << change << ": " << revised.output;
  }
  const ResultsFile file = read_results(results);
  ASSERT_EQ(file.revisions.size(), 1u);
  EXPECT_EQ(file.revisions[0].number, 2);
  EXPECT_EQ(file.study_spec()["steps"], 4);
  EXPECT_EQ(file.trials.size(), 2 * before);  // every trial again at 4 steps; those at 3 kept

  // Again with the same study: nothing changed, no revision; every trial is recorded.
  const CommandRun again = run_command(sweep_command(study, results, 0, "--resume --revise"));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output.find("goes on as revision"), std::string::npos) << again.output;
  EXPECT_EQ(read_results(results).revisions.size(), 1u);

  const CommandRun pareto = run_command("'" + kTool + "' pareto '" + results.string() + "'");
  ASSERT_EQ(pareto.exit_code, 0) << pareto.output;
  EXPECT_NE(pareto.output.find(" of " + std::to_string(before) + " trials"), std::string::npos) << pareto.output;
  EXPECT_NE(pareto.output.find("tokens_per_s(max)"), std::string::npos) << pareto.output;
  const CommandRun status = run_command("'" + kTool + "' status '" + results.string() + "'");
  ASSERT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find(std::to_string(2 * before) + " trials recorded"), std::string::npos) << status.output;
  fs::remove_all(dir);
}

// A study sets memfront-trial's flags for every trial: a memory cap makes its
// trials run out of memory (status oom, from the trial itself); the flags the
// launcher sets per trial are refused.
TEST(StudyTrialArgs, ACapFromTheStudyReachesEveryTrial) {
  const fs::path dir = fresh_dir("trial-args");
  json spec = json::parse(read_text(write_slow_study(dir, "capped")));
  spec["base"]["world"] = 1;
  spec["launcher"]["trial_args"] = {"--mem-cap", "300KiB"};
  const fs::path study = dir / "study.json";
  std::ofstream(study, std::ios::trunc) << spec.dump();
  const fs::path results = dir / "capped.jsonl";
  auto sweep = [&](const fs::path& results) {
    return "MEMFRONT_TRIAL='" + kTrial + "' MEMFRONT_CALIBRATION=/nonexistent '" + kTool + "' sweep '" +
           study.string() + "' --results '" + results.string() + "'";
  };
  const CommandRun capped = run_command(sweep(results));
  EXPECT_EQ(capped.exit_code, 0) << capped.output;
  const ResultsFile file = read_results(results);
  ASSERT_FALSE(file.trials.empty());
  for (const TrialRecord& record : file.trials) {
    EXPECT_EQ(record.status, TrialStatus::oom) << record.error;
    EXPECT_NE(record.error.find("300"), std::string::npos) << record.error;
  }

  spec["launcher"]["trial_args"] = {"--out=elsewhere.json"};
  std::ofstream(study, std::ios::trunc) << spec.dump();
  const CommandRun refused = run_command(sweep(dir / "refused.jsonl"));
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find("/launcher/trial_args/0: --out is set by the launcher"), std::string::npos)
      << refused.output;
  fs::remove_all(dir);
}

// Host memory running out (an allocation that fails, here under an
// address-space limit) is the trial's out-of-memory, recorded as oom with the
// rank, not a crash recorded as failed.
TEST(HostMemory, AFailedAllocationIsOom) {
  const fs::path dir = fresh_dir("host-oom");
  const Config config = parse_config(
      {{"model", {{"vocab", 1024}, {"seq", 64}, {"width", 2048}, {"heads", 16}, {"layers", 8}}},  // ~1.6 GB of fp32
       {"batch", {{"micro", 1}}},
       {"train", {{"steps", 1}, {"warmup", 0}}}},
      "host-oom");
  std::ofstream(dir / "c.json") << to_json(config).dump();
  const CommandRun run = run_command("ulimit -v 1500000; OPENBLAS_NUM_THREADS=1 '" + kTrial + "' --quiet --config '" +
                                     (dir / "c.json").string() + "' --out '" + (dir / "r.json").string() + "'");
  EXPECT_EQ(run.exit_code, 3) << run.output;
  const TrialRecord record = read_record_file(dir / "r.json");
  EXPECT_EQ(record.status, TrialStatus::oom);
  EXPECT_EQ(record.error, "rank 0: out of host memory (an allocation failed)");
  fs::remove_all(dir);
}
