// The exports, checked by the frameworks they are for (CTest label
// frameworks): records of real memfront trials (ddp, zero1/2/3, hybrid,
// accumulation, checkpointing, bf16 and int8 gradients and weights) are
// exported with `memfront export`, then
//   - DeepSpeed parses every DeepSpeed export with its own config class and
//     trains two steps with deepspeed.initialize on CPU (gloo), except where
//     its ZeRO++ quantized paths are CUDA-only: those are parsed, and say so;
//   - torchrun runs every PyTorch export for two steps on CPU (gloo): gradient
//     reductions once per optimizer step (as memfront's step), as many as the
//     record measured, the state dict's keys kept, and a state dict saved from
//     the unwrapped model loads;
//   - the local single-node Slurm (scripts/slurm-local.sh, test_frameworks_slurm)
//     runs every sbatch export that fits it, and the trial it runs peaks at
//     the exported record's memory, byte for byte.
// PyTorch and DeepSpeed come from the environment scripts/install-deps.sh
// makes ($MEMFRONT_FRAMEWORKS_VENV, default ~/.cache/memfront/frameworks-venv);
// without it these tests are skipped, saying where it was looked for.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/json_file.h"
#include "core/results.h"
#include "tests/run_command.h"
#include "tuner/launcher.h"

namespace memfront {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The trials whose records are exported: together they cover every strategy,
// accumulation, checkpointing, and bf16/int8 gradients and weights.
struct Case {
  const char* name;
  json knobs;
};
const Case kCases[] = {
    {"ddp-accum2", {{"world", 2}, {"batch", {{"accum", 2}}}}},
    {"ddp-bf16-grads", {{"world", 2}, {"quant", {{"grad", "bf16"}}}}},
    {"ddp-int8-grads", {{"world", 2}, {"quant", {{"grad", "int8"}}}}},
    {"zero1", {{"world", 2}, {"shard", {{"strategy", "zero1"}}}}},
    {"zero2-checkpoint-accum2", {{"world", 2}, {"shard", {{"strategy", "zero2"}}}, {"checkpoint", {{"every", 2}}},
                                  {"batch", {{"accum", 2}}}}},
    {"zero3-checkpoint", {{"world", 2}, {"shard", {{"strategy", "zero3"}}}, {"checkpoint", {{"every", 1}}}}},
    {"zero3-int8", {{"world", 2}, {"shard", {{"strategy", "zero3"}}}, {"quant", {{"grad", "int8"}, {"weights", "int8"}}}}},
    {"zero3-bf16-weights", {{"world", 2}, {"shard", {{"strategy", "zero3"}}}, {"quant", {{"weights", "bf16"}, {"grad", "bf16"}}}}},
    {"hybrid", {{"world", 4}, {"shard", {{"strategy", "hybrid"}, {"group", 2}}}, {"batch", {{"accum", 2}}}}},
};

const json kShape = {{"vocab", 64}, {"seq", 16}, {"width", 32}, {"heads", 4}, {"layers", 2}};

fs::path frameworks_venv() {
  if (const char* set = std::getenv("MEMFRONT_FRAMEWORKS_VENV"); set && *set) return set;
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : "/root") / ".cache" / "memfront" / "frameworks-venv";
}

struct Exported {
  const Case* trial;
  TrialRecord record;
};

// Everything the tests share: the records, their results file, the venv.
struct Setup {
  std::string skip;  // why the Python tests cannot run; empty when they can
  fs::path venv, dir, results;
  std::vector<Exported> exported;
};

fs::path scratch_dir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return fs::path(tmp && *tmp ? tmp : fs::temp_directory_path().c_str()) /
         ("memfront-frameworks-" + std::to_string(::getpid()));
}

// Runs each case's trial with memfront-trial (under mpirun for several ranks)
// and writes their records as one results file, as a sweep would.
Setup make_setup() {
  Setup s;
  s.venv = frameworks_venv();
  if (!fs::exists(s.venv / "bin" / "python") || !fs::exists(s.venv / "bin" / "torchrun")) {
    s.skip = "no PyTorch/DeepSpeed environment at " + s.venv.string() +
             " (scripts/install-deps.sh makes it; MEMFRONT_FRAMEWORKS_VENV names another)";
  }
  s.dir = scratch_dir();
  fs::remove_all(s.dir);
  fs::create_directories(s.dir);
  s.results = s.dir / "frameworks.jsonl";
  ResultsHeader header;
  header.study = "frameworks";
  header.machine = detect_machine();
  header.memfront_version = MEMFRONT_VERSION;
  header.created = "2026-12-08T00:00:00Z";
  ResultsWriter writer = ResultsWriter::create(s.results, header);
  for (const Case& c : kCases) {
    json config = c.knobs;
    config["model"] = kShape;
    config["batch"]["micro"] = 2;
    config["train"] = {{"steps", 2}, {"warmup", 0}};
    const fs::path config_path = s.dir / (std::string(c.name) + ".config.json");
    const fs::path record_path = s.dir / (std::string(c.name) + ".record.json");
    replace_file_atomically(config_path, config.dump(2));
    const int world = config["world"].get<int>();
    std::vector<std::string> argv;
    if (world > 1) {
      argv = {MEMFRONT_MPIEXEC, "-np", std::to_string(world), "--oversubscribe", "--allow-run-as-root"};
    }
    for (const std::string& word :
         {std::string(MEMFRONT_TRIAL_EXE), std::string("--config"), config_path.string(), std::string("--out"),
          record_path.string(), std::string("--quiet")}) {
      argv.push_back(word);
    }
    const CommandRun run = run_command(shell_command(argv));
    if (run.exit_code != 0) {
      ADD_FAILURE() << c.name << ": memfront-trial failed (exit " << run.exit_code << "):\n" << run.output;
      continue;
    }
    TrialRecord record = read_record_file(record_path);
    writer.append(record);
    s.exported.push_back({&c, std::move(record)});
  }
  return s;
}

const Setup& setup() {
  static const Setup shared = make_setup();
  return shared;
}

// `memfront export` of one record, into the scratch folder.
fs::path export_record(const Exported& e, const std::string& format, const std::string& suffix) {
  const fs::path out = setup().dir / (std::string(e.trial->name) + "." + format + "." + suffix);
  const CommandRun run = run_command(shell_command({MEMFRONT_TOOL_EXE, "export", setup().results.string(), "--pick",
                                                    "id:" + e.record.id, "--format", format, "--out", out.string()}));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  return out;
}

// The exports of one world size run by one torchrun (the start-up of Python
// and its frameworks is most of the time); the driver's report per export.
std::map<std::string, json> run_driver(const std::string& driver, int world, const std::vector<fs::path>& exports) {
  std::vector<std::string> argv = {(setup().venv / "bin" / "torchrun").string(), "--standalone",
                                   "--nproc-per-node", std::to_string(world),
                                   std::string(MEMFRONT_SOURCE_DIR) + "/tests/frameworks/" + driver, "--steps", "2"};
  for (const auto& [key, value] : kShape.items()) {
    argv.push_back("--" + key);
    argv.push_back(std::to_string(value.get<int>()));
  }
  for (const fs::path& path : exports) argv.push_back(path.string());
  const CommandRun run = run_command("OMP_NUM_THREADS=1 " + shell_command(argv));
  std::map<std::string, json> reports;
  std::istringstream lines(run.output);
  const std::string mark = "MEMFRONT_FRAMEWORKS ";
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(mark, 0) != 0) continue;
    const json report = json::parse(line.substr(mark.size()));
    reports[report["export"].get<std::string>()] = report;
  }
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(reports.size(), exports.size()) << run.output;
  return reports;
}

class Frameworks : public testing::Test {
 protected:
  void SetUp() override {
    if (!setup().skip.empty()) GTEST_SKIP() << setup().skip;
    ASSERT_EQ(setup().exported.size(), std::size(kCases));
  }
};

TEST_F(Frameworks, DeepSpeedParsesAndTrainsEachExport) {
  std::map<int, std::vector<fs::path>> by_world;
  std::map<std::string, const Exported*> of_file;
  for (const Exported& e : setup().exported) {
    const fs::path file = export_record(e, "deepspeed", "json");
    by_world[e.record.config.world].push_back(file);
    of_file[file.filename().string()] = &e;
  }
  for (const auto& [world, files] : by_world) {
    for (const auto& [file, report] : run_driver("run_deepspeed.py", world, files)) {
      SCOPED_TRACE(file + ": " + report.dump());
      ASSERT_FALSE(report.contains("error"));
      EXPECT_TRUE(report["parsed"].get<bool>());
      if (report.contains("parse_only")) {
        const Config& c = of_file.at(file)->record.config;
        EXPECT_TRUE(c.quant.weights == DType::int8 || c.quant.grad == DType::int8)
            << "only ZeRO++'s quantized paths are CUDA-only";
        std::cout << "[ parse   ] " << file << ": parsed by DeepSpeed, not trained: "
                  << report["parse_only"].get<std::string>() << "\n";
      } else {
        EXPECT_EQ(report["trained_steps"], 2);
        std::cout << "[ trained ] " << file << ": 2 steps with deepspeed.initialize, losses "
                  << report["losses"].dump() << "\n";
      }
    }
  }
}

// memfront's step reduces the gradients once per optimizer step; the record
// says how much that moved. For ddp with fp32 gradients, one ring all-reduce
// of the gradients: 2(N-1)/N of their bytes per rank.
std::optional<double> record_reductions_per_step(const TrialRecord& record) {
  const Config& c = record.config;
  if (c.shard.strategy != ShardStrategy::ddp || c.quant.grad != DType::fp32 || c.topk.grad < 1) return std::nullopt;
  const TrialMetrics& m = *record.metrics;
  const double grads = static_cast<double>(m.peak_max[static_cast<int>(MemCategory::grads)]);
  const double one_all_reduce = 2.0 * (c.world - 1) / c.world * grads;
  const double sent = static_cast<double>(m.ranks.at(0).bytes_intra_node + m.ranks.at(0).bytes_inter_node);
  return sent / one_all_reduce;
}

TEST_F(Frameworks, PyTorchRunsEachExportAsMeasured) {
  std::map<int, std::vector<fs::path>> by_world;
  std::map<std::string, const Exported*> of_file;
  for (const Exported& e : setup().exported) {
    const fs::path file = export_record(e, "fsdp2", "py");
    by_world[e.record.config.world].push_back(file);
    of_file[file.filename().string()] = &e;
  }
  for (const auto& [world, files] : by_world) {
    for (const auto& [file, report] : run_driver("run_torch.py", world, files)) {
      SCOPED_TRACE(file + ": " + report.dump());
      ASSERT_FALSE(report.contains("error"));
      const TrialRecord& record = of_file.at(file)->record;
      EXPECT_EQ(report["device"], "cpu") << "the trial's own backend";
      EXPECT_TRUE(report["state_dict_keys_kept"].get<bool>());
      EXPECT_TRUE(report["state_dict_loaded"].get<bool>());
      const json& reductions = report["reductions"];
      ASSERT_EQ(reductions.size(), 2u) << "two optimizer steps";
      int per_step = -1;
      for (const json& step : reductions) {
        ASSERT_EQ(step.size(), static_cast<size_t>(record.config.batch.accum));
        for (size_t micro = 0; micro + 1 < step.size(); ++micro) {
          EXPECT_EQ(step[micro], 0) << "gradients reduced before the last micro-batch";
        }
        const int last = step.back().get<int>();
        EXPECT_GT(last, 0);
        if (per_step >= 0) {
          EXPECT_EQ(last, per_step) << "every step reduces alike";
        }
        per_step = last;
      }
      if (const std::optional<double> measured = record_reductions_per_step(record)) {
        EXPECT_NEAR(*measured, 1.0, 1e-9) << "memfront's record: one all-reduce per step";
        EXPECT_EQ(per_step, 1) << "DistributedDataParallel: one bucket, one all-reduce per step";
      }
      std::cout << "[ ran     ] " << file << ": 2 steps under torchrun -np " << world << ", " << per_step
                << " gradient reductions per step (" << record.config.batch.accum << " micro-batches), losses "
                << report["losses"].dump() << "\n";
    }
  }
}

// The sbatch exports on the local cluster (test_frameworks_slurm; CTest's
// slurm_cluster fixture starts it and sets SLURM_CONF).
class FrameworksSlurm : public testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "not root: the local Slurm cluster (scripts/slurm-local.sh) needs root";
    const char* conf = std::getenv("SLURM_CONF");
    ASSERT_TRUE(conf && *conf) << "SLURM_CONF is not set: run through CTest, whose slurm_cluster fixture starts "
                                  "the local cluster";
  }
};

TEST_F(FrameworksSlurm, SbatchExportsReproduceThePeakMemory) {
  // memfront-trial runs here: no Python environment is needed.
  ASSERT_EQ(setup().exported.size(), std::size(kCases));
  const int cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  int ran = 0;
  for (const Exported& e : setup().exported) {
    const Config& c = e.record.config;
    SCOPED_TRACE(e.trial->name);
    if (c.world / c.placement.ranks_per_node > 1 || c.world * c.train.threads > cpus) {
      std::cout << "[ skipped ] " << e.trial->name << ": needs " << c.world / c.placement.ranks_per_node
                << " nodes and " << c.world * c.train.threads << " CPUs; the local cluster is one node of " << cpus
                << "\n";
      continue;
    }
    const fs::path script = export_record(e, "sbatch", "sh");
    const fs::path work = setup().dir / (std::string(e.trial->name) + ".slurm");
    fs::create_directories(work);
    const CommandRun run = run_command("cd " + shell_quote(work.string()) + " && MEMFRONT_TRIAL=" +
                                       shell_quote(MEMFRONT_TRIAL_EXE) + " sbatch --wait --export=ALL " +
                                       shell_quote(script.string()));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const TrialRecord rerun = read_record_file(work / ("memfront-" + config_id(c) + ".record.json"));
    ASSERT_EQ(rerun.status, TrialStatus::ok) << rerun.error;
    EXPECT_EQ(rerun.metrics->peak_total_max, e.record.metrics->peak_total_max) << "the exported record's peak";
    EXPECT_EQ(rerun.config, c);
    std::cout << "[ slurm   ] " << e.trial->name << ": sbatch export ran; peak " << rerun.metrics->peak_total_max
              << " B, as exported\n";
    ++ran;
  }
  EXPECT_GT(ran, 0);
}

}  // namespace
}  // namespace memfront
