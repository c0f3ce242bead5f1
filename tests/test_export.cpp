// Exports of a trial record: golden files for every format, the memfront
// config's round trip, the knobs a target cannot express, and strings from the
// record that try to escape their comments or quotes.
//
// Golden files live in tests/data/export/. After a deliberate change to an
// export, rerun with MEMFRONT_UPDATE_GOLDEN=1 to rewrite them, and review the
// diff before committing it.
#include "tuner/export.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "tuner/launcher.h"
#include "tuner/slurm.h"

namespace memfront {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kGoldenDir = fs::path(MEMFRONT_TEST_DATA) / "export";

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Compares `text` with the golden file `name`, or rewrites the file when
// MEMFRONT_UPDATE_GOLDEN=1. A mismatch names the first line that differs.
void expect_golden(const std::string& name, const std::string& text) {
  const fs::path file = kGoldenDir / name;
  const char* update = std::getenv("MEMFRONT_UPDATE_GOLDEN");
  if (update && std::string(update) == "1") {
    fs::create_directories(kGoldenDir);
    write_text(file, text);
    std::cout << "[ golden  ] wrote " << file.string() << "\n";
    return;
  }
  if (!fs::exists(file)) {
    ADD_FAILURE() << "golden file " << file.string() << " is missing; create it with MEMFRONT_UPDATE_GOLDEN=1";
    return;
  }
  const std::string expected = read_text(file);
  if (text == expected) return;
  const auto want = lines_of(expected);
  const auto got = lines_of(text);
  size_t line = 0;
  while (line < want.size() && line < got.size() && want[line] == got[line]) ++line;
  ADD_FAILURE() << file.string() << ":" << line + 1 << ": export differs from the golden file\n"
                << "  golden: " << (line < want.size() ? want[line] : "<end of file>") << "\n"
                << "  export: " << (line < got.size() ? got[line] : "<end of file>") << "\n"
                << "(if the change is intended, rerun with MEMFRONT_UPDATE_GOLDEN=1 and review the diff)";
}

TrialRecord make_record(const json& config_json, TrialStatus status) {
  const Config config = parse_config(config_json, "test");
  TrialRecord record;
  record.id = config_id(config);
  record.config = config;
  record.status = status;
  return record;
}

TrialMetrics measured(double step_s, uint64_t peak, std::optional<double> loss_delta) {
  TrialMetrics m;
  m.peak_total_max = peak;
  m.step_time_s.median = step_s;
  m.step_time_s.count = 20;
  m.tokens_per_s = 11615.5;
  m.final_loss = 4.5431;
  m.loss_delta = loss_delta;
  return m;
}

// The trial of the golden files: every kind of knob, several with no
// equivalent in DeepSpeed or PyTorch.
TrialRecord zero3_record() {
  TrialRecord r = make_record(
      {{"world", 4},
       {"placement", {{"ranks_per_node", 2}}},
       {"shard", {{"strategy", "zero3"}}},
       {"checkpoint", {{"every", 2}}},
       {"precision", {{"activations", "int8"}}},
       {"quant", {{"weights", "int8"}, {"grad", "int4"}}},
       {"topk", {{"attention", 8}}},
       {"batch", {{"micro", 4}, {"accum", 2}}}},
      TrialStatus::ok);
  r.metrics = measured(0.0441, 7540736, 0.0123);
  return r;
}

// A GPU trial on one rank that did not run: nothing measured.
TrialRecord ddp_record() {
  TrialRecord r = make_record({{"backend", "cuda"}, {"precision", {{"compute", "bf16"}}}, {"quant", {{"grad", "bf16"}}}},
                              TrialStatus::failed);
  r.error = "c.json: /backend: backend=cuda cannot run here: no CUDA device: cudaGetDeviceCount found 0";
  return r;
}

ExportSource golden_source() {
  ExportSource source;
  source.results_file = "results/golden.jsonl";
  source.header.study = "golden";
  source.header.machine.host = "node17";
  source.header.machine.cpu = "AMD EPYC 7763 64-Core Processor";
  source.header.memfront_version = "0.1.0";
  source.header.created = "2026-11-23T02:10:00Z";
  return source;
}

constexpr ExportFormat kFormats[] = {ExportFormat::memfront, ExportFormat::deepspeed, ExportFormat::fsdp2,
                                     ExportFormat::sbatch};
const char* extension(ExportFormat format) {
  switch (format) {
    case ExportFormat::memfront: return ".memfront.json";
    case ExportFormat::deepspeed: return ".deepspeed.json";
    case ExportFormat::fsdp2: return ".fsdp2.py";
    case ExportFormat::sbatch: return ".sbatch";
  }
  return "";
}

bool have(const char* program) { return std::system((std::string("command -v ") + program + " >/dev/null 2>&1").c_str()) == 0; }

// A scratch directory of this test process, removed at the end of the test.
class ScratchDir {
 public:
  ScratchDir() : path_(fs::temp_directory_path() / ("memfront-export-" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Runs a shell command; true when it exits 0.
bool run(const std::string& command) { return std::system(command.c_str()) == 0; }

bool python_parses(const fs::path& file) {
  // Bytes, so that Python decodes the source as it would when importing it.
  return run("python3 -c 'import ast, sys; ast.parse(open(sys.argv[1], \"rb\").read())' '" + file.string() + "'");
}

// ---------------------------------------------------------------------------

TEST(ExportFormatTest, ParsesTheFourNames) {
  EXPECT_EQ(parse_export_format("memfront"), ExportFormat::memfront);
  EXPECT_EQ(parse_export_format("deepspeed"), ExportFormat::deepspeed);
  EXPECT_EQ(parse_export_format("fsdp2"), ExportFormat::fsdp2);
  EXPECT_EQ(parse_export_format("fsdp"), ExportFormat::fsdp2);  // its earlier name
  EXPECT_EQ(parse_export_format("sbatch"), ExportFormat::sbatch);
  EXPECT_EQ(parse_export_format("DeepSpeed"), std::nullopt);
  EXPECT_EQ(parse_export_format("slurm"), std::nullopt);
  EXPECT_EQ(parse_export_format(""), std::nullopt);
}

TEST(ExportFormatTest, OneNameTableReadBothWays) {
  for (const ExportFormatName& entry : kExportFormats) {
    EXPECT_EQ(parse_export_format(to_string(entry.format)), entry.format);
  }
  EXPECT_EQ(export_format_name(ExportFormat::fsdp2).suffix, "py");
  EXPECT_EQ(export_format_list(), "memfront, deepspeed, fsdp2 or sbatch");
  EXPECT_EQ(export_format_named("sbatch", "--format"), ExportFormat::sbatch);
  try {
    export_format_named("slurm", "--format");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "--format: unknown export format 'slurm' (expected memfront, deepspeed, fsdp2 or sbatch)");
  }
}

TEST(ExportGoldenTest, Zero3FourRanks) {
  const TrialRecord record = zero3_record();
  for (ExportFormat format : kFormats) {
    expect_golden(std::string("zero3-w4") + extension(format), export_trial(record, format, golden_source()));
  }
}

TEST(ExportGoldenTest, DdpOneRankNothingMeasured) {
  const TrialRecord record = ddp_record();
  for (ExportFormat format : kFormats) {
    expect_golden(std::string("ddp-w1") + extension(format), export_trial(record, format, golden_source()));
  }
}

TEST(ExportTest, IsDeterministic) {
  for (ExportFormat format : kFormats) {
    EXPECT_EQ(export_trial(zero3_record(), format, golden_source()),
              export_trial(zero3_record(), format, golden_source()));
  }
}

TEST(ExportMemfrontTest, RoundTripsThroughParseConfig) {
  for (const TrialRecord& record : {zero3_record(), ddp_record()}) {
    const Config config = parse_config_text(export_trial(record, ExportFormat::memfront, golden_source()), "export");
    EXPECT_EQ(config_id(config), record.id);
    EXPECT_EQ(config, record.config);
  }
}

TEST(ExportDeepSpeedTest, MapsTheKnobsAndCarriesProvenance) {
  const TrialRecord record = zero3_record();
  const json ds = json::parse(export_trial(record, ExportFormat::deepspeed, golden_source()));
  EXPECT_EQ(ds["train_micro_batch_size_per_gpu"], 4);
  EXPECT_EQ(ds["gradient_accumulation_steps"], 2);
  EXPECT_EQ(ds["train_batch_size"], 4 * 2 * 4);
  EXPECT_EQ(ds["optimizer"]["type"], "AdamW");
  EXPECT_EQ(ds["optimizer"]["params"]["betas"], json({0.9, 0.95}));
  EXPECT_EQ(ds["zero_optimization"]["stage"], 3);
  EXPECT_EQ(ds["zero_optimization"]["zero_quantized_weights"], true);
  EXPECT_EQ(ds["zero_optimization"]["zero_quantized_gradients"], true);
  EXPECT_FALSE(ds["zero_optimization"].contains("zero_hpz_partition_size"));
  EXPECT_EQ(ds["activation_checkpointing"]["number_checkpoints"], 2);  // ceil(L=4 / k=2)
  EXPECT_EQ(ds["bf16"]["enabled"], false);

  const json& p = ds["memfront"]["provenance"];
  EXPECT_EQ(p["trial"], record.id);
  EXPECT_EQ(p["study"], "golden");
  EXPECT_EQ(p["results_file"], "results/golden.jsonl");
  EXPECT_EQ(p["machine"]["host"], "node17");
  EXPECT_EQ(p["machine"]["gpu"], "none");
  EXPECT_EQ(p["memfront_version"], "0.1.0");
  EXPECT_EQ(p["status"], "ok");
  EXPECT_EQ(p["measured"]["peak_memory_bytes"], 7540736);
  EXPECT_EQ(p["measured"]["peak_memory"], "7.2 MiB");
  EXPECT_EQ(p["measured"]["step_time_median_s"], 0.0441);
  EXPECT_EQ(p["measured"]["loss_delta"], 0.0123);
}

TEST(ExportDeepSpeedTest, StrategiesGiveTheirStage) {
  const std::pair<const char*, int> cases[] = {{"ddp", 0}, {"zero1", 1}, {"zero2", 2}, {"zero3", 3}, {"hybrid", 3}};
  for (const auto& [strategy, stage] : cases) {
    SCOPED_TRACE(strategy);
    const TrialRecord record = make_record({{"world", 4}, {"shard", {{"strategy", strategy}, {"group", 2}}}},
                                           TrialStatus::ok);
    const json ds = json::parse(export_trial(record, ExportFormat::deepspeed, golden_source()));
    EXPECT_EQ(ds["zero_optimization"]["stage"], stage);
    EXPECT_EQ(ds["zero_optimization"].contains("zero_hpz_partition_size"), std::string(strategy) == "hybrid");
    if (std::string(strategy) == "hybrid") {
      EXPECT_EQ(ds["zero_optimization"]["zero_hpz_partition_size"], 2);
    }
  }
}

TEST(ExportNotMappedTest, EveryKnobWithoutAnEquivalentIsNamed) {
  const TrialRecord record = zero3_record();
  const std::string ds = export_trial(record, ExportFormat::deepspeed, golden_source());
  const std::string py = export_trial(record, ExportFormat::fsdp2, golden_source());
  for (const std::string& text : {ds, py}) {
    EXPECT_NE(text.find("precision.activations=int8"), std::string::npos);
    EXPECT_NE(text.find("topk.attention=8"), std::string::npos);
    EXPECT_NE(text.find("quant.block=256"), std::string::npos);
    EXPECT_NE(text.find("quant.error_feedback=true"), std::string::npos);
    EXPECT_NE(text.find("placement.ranks_per_node=2"), std::string::npos);
    EXPECT_NE(text.find("placement.link_latency_us=5.0"), std::string::npos);
  }
  // PyTorch has neither integer gradients nor int8 gathers; DeepSpeed maps both (ZeRO++).
  EXPECT_NE(py.find("quant.grad=int4"), std::string::npos);
  EXPECT_NE(py.find("quant.weights=int8"), std::string::npos);
  const json not_mapped = json::parse(ds)["memfront"]["not_mapped"];
  for (const auto& entry : not_mapped) EXPECT_EQ(entry.get<std::string>().find("quant.grad=int4"), std::string::npos);

  const TrialRecord topk = make_record({{"world", 2}, {"topk", {{"grad", 0.05}}}}, TrialStatus::ok);
  for (ExportFormat format : {ExportFormat::deepspeed, ExportFormat::fsdp2}) {
    EXPECT_NE(export_trial(topk, format, golden_source()).find("topk.grad=0.05"), std::string::npos);
  }

  const TrialRecord zero1 = make_record({{"world", 2}, {"shard", {{"strategy", "zero1"}}}, {"quant", {{"grad", "int8"}}}},
                                        TrialStatus::ok);
  const json ds1 = json::parse(export_trial(zero1, ExportFormat::deepspeed, golden_source()));
  EXPECT_NE(ds1["memfront"]["not_mapped"].dump().find("quant.grad=int8"), std::string::npos);
  EXPECT_FALSE(ds1["zero_optimization"].contains("zero_quantized_gradients"));
  EXPECT_NE(export_trial(zero1, ExportFormat::fsdp2, golden_source()).find("shard.strategy=zero1"), std::string::npos);
}

TEST(ExportFsdpTest, EveryStrategyIsValidPython) {
  if (!have("python3")) GTEST_SKIP() << "python3 not found: the generated Python was not parsed";
  ScratchDir dir;
  const json configs[] = {
      {{"world", 2}},
      {{"world", 2}, {"checkpoint", {{"every", 1}}}, {"backend", "cuda"}, {"precision", {{"compute", "bf16"}}},
       {"quant", {{"grad", "bf16"}}}},
      {{"world", 2}, {"shard", {{"strategy", "zero1"}}}},
      {{"world", 2}, {"shard", {{"strategy", "zero2"}}}, {"checkpoint", {{"every", 4}}}},
      {{"world", 4}, {"shard", {{"strategy", "hybrid"}, {"group", 2}}}, {"placement", {{"order", {0, 1, 1, 0}}, {"ranks_per_node", 2}}}},
      to_json(zero3_record().config),
  };
  int n = 0;
  for (const json& config : configs) {
    SCOPED_TRACE(config.dump());
    const std::string py = export_trial(make_record(config, TrialStatus::ok), ExportFormat::fsdp2, golden_source());
    const fs::path file = dir.path() / ("export" + std::to_string(n++) + ".py");
    write_text(file, py);
    EXPECT_TRUE(python_parses(file)) << py;
  }
  const std::string hybrid = export_trial(make_record(configs[4], TrialStatus::ok), ExportFormat::fsdp2, golden_source());
  EXPECT_NE(hybrid.find("mesh_dim_names=(\"replicate\", \"shard\")"), std::string::npos);
  const std::string zero2 = export_trial(make_record(configs[3], TrialStatus::ok), ExportFormat::fsdp2, golden_source());
  EXPECT_NE(zero2.find("reshard_after_forward=False"), std::string::npos);
  const std::string ddp = export_trial(make_record(configs[1], TrialStatus::ok), ExportFormat::fsdp2, golden_source());
  EXPECT_NE(ddp.find("DistributedDataParallel(model)"), std::string::npos);
  EXPECT_NE(ddp.find("bf16_compress_hook"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Strings from the record that try to break out of a comment or a quote.

const std::string kHostile = "it's \"x\" $(touch pwned) `touch pwned` ; rm -rf nothing\n#SBATCH --nodes=99\nimport os";

ExportSource hostile_source() {
  ExportSource source = golden_source();
  source.results_file = "results/" + kHostile + "\r.jsonl";
  source.header.study = kHostile;
  // Not UTF-8 either: a stray byte, an overlong NUL, a UTF-16 surrogate, a
  // code point past U+10FFFF; Python refuses to read source holding any.
  source.header.machine.host = "node\xff\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80" + kHostile;
  source.header.machine.gpu = std::string("gpu\0\f\x7f", 6) + kHostile;
  source.header.memfront_version = "'; exit 1; '";
  return source;
}

TrialRecord hostile_record(const json& config) {
  TrialRecord r = make_record(config, TrialStatus::failed);
  r.error = kHostile;
  r.metrics = measured(0.5, 1 << 20, std::nullopt);
  return r;
}

// Every line that carries the hostile text must be a comment.
void expect_only_in_comments(const std::string& text) {
  for (const std::string& line : lines_of(text)) {
    if (line.find("pwned") != std::string::npos || line.find("import os") != std::string::npos) {
      EXPECT_EQ(line.rfind("#   ", 0), 0u) << "hostile text outside a comment: " << line;
    }
  }
}

TEST(ExportHostileTest, SbatchKeepsRecordStringsInComments) {
  if (!have("bash")) GTEST_SKIP() << "bash not found: the generated script was not checked";
  ScratchDir dir;
  const json placements[] = {{{"ranks_per_node", 2}, {"order", "cyclic"}},
                             {{"ranks_per_node", 2}, {"order", {0, 1, 1, 0}}}};
  for (const json& placement : placements) {
    SCOPED_TRACE(placement.dump());
    const TrialRecord record =
        hostile_record({{"world", 4}, {"placement", placement}, {"data", {{"source", "file"}, {"path", kHostile}}}});
    const std::string script = export_trial(record, ExportFormat::sbatch, hostile_source());
    // The heredoc holds the config (data.path is hostile too), quoted; the rest is code and comments.
    const size_t heredoc = script.find("<<'MEMFRONT_CONFIG'");
    const size_t heredoc_end = script.find("\nMEMFRONT_CONFIG\n");
    ASSERT_NE(heredoc_end, std::string::npos);
    expect_only_in_comments(script.substr(0, heredoc) + script.substr(heredoc_end + 1));

    int directives = 0;
    for (const std::string& line : lines_of(script)) directives += line.rfind("#SBATCH", 0) == 0;
    EXPECT_EQ(directives, placement["order"].is_array() ? 5 : 6);

    const fs::path file = dir.path() / "trial.sbatch";
    write_text(file, script);
    EXPECT_TRUE(run("bash -n '" + file.string() + "'")) << script;

    // Run it with stand-ins for srun and scontrol: the config reaches the file
    // unchanged and nothing in the record is executed.
    const fs::path bin = dir.path() / "bin";
    fs::create_directories(bin);
    write_text(bin / "srun", "#!/bin/sh\nprintf '%s\\n' \"$@\" > srun.args\n");
    write_text(bin / "scontrol", "#!/bin/sh\nprintf 'nodeA\\nnodeB\\n'\n");
    fs::permissions(bin / "srun", fs::perms::owner_all);
    fs::permissions(bin / "scontrol", fs::perms::owner_all);
    ASSERT_TRUE(run("cd '" + dir.path().string() + "' && PATH='" + bin.string() +
                    "':\"$PATH\" SLURM_JOB_NODELIST=nodeA,nodeB bash trial.sbatch"));
    EXPECT_FALSE(fs::exists(dir.path() / "pwned"));
    const std::string name = "memfront-" + record.id;
    EXPECT_EQ(read_text(dir.path() / (name + ".json")), export_trial(record, ExportFormat::memfront, hostile_source()));
    // srun gets the Slurm launcher's options, then the trial.
    std::string expected_args;
    for (const std::string& option : srun_options(shape_of(record.config, SlurmOptions{}), {})) {
      expected_args += option + "\n";
    }
    expected_args += "memfront-trial\n--config\n" + name + ".json\n--out\n" + name + ".record.json\n";
    EXPECT_NE(expected_args.find("--mpi=pmix\n"), std::string::npos);
    if (placement["order"].is_array()) {
      EXPECT_EQ(expected_args.rfind("--ntasks=4\n--distribution=arbitrary\n", 0), 0u) << expected_args;
      EXPECT_EQ(read_text(dir.path() / (name + ".hosts")), "nodeA\nnodeB\nnodeB\nnodeA\n");
    } else {
      EXPECT_NE(script.find("#SBATCH --distribution=cyclic\n"), std::string::npos);
    }
    EXPECT_EQ(read_text(dir.path() / "srun.args"), expected_args);
  }
}

TEST(ExportHostileTest, PythonKeepsRecordStringsInComments) {
  const TrialRecord record = hostile_record({{"world", 2}, {"shard", {{"strategy", "zero3"}}}});
  const std::string py = export_trial(record, ExportFormat::fsdp2, hostile_source());
  expect_only_in_comments(py);
  if (!have("python3")) GTEST_SKIP() << "python3 not found: the generated Python was not parsed";
  ScratchDir dir;
  write_text(dir.path() / "hostile.py", py);
  EXPECT_TRUE(python_parses(dir.path() / "hostile.py")) << py;
}

TEST(ExportHostileTest, DeepSpeedJsonCarriesRecordStringsIntact) {
  const TrialRecord record = hostile_record({{"world", 2}});
  const json ds = json::parse(export_trial(record, ExportFormat::deepspeed, hostile_source()));
  EXPECT_EQ(ds["memfront"]["provenance"]["study"], kHostile);
  EXPECT_EQ(ds["memfront"]["provenance"]["error"], kHostile);
  EXPECT_EQ(ds["memfront"]["provenance"]["status"], "failed");
}

// ---------------------------------------------------------------------------
// What running an export needs (the frameworks suite, tests/frameworks/, runs them).

// The srun line is the Slurm launcher's: an export without --mpi=pmix started
// every Open MPI rank as a world of one.
TEST(ExportSbatchTest, SrunLineIsTheSlurmLaunchers) {
  for (const json& config : {json{{"world", 4}, {"placement", {{"ranks_per_node", 2}}}},
                             json{{"world", 4}, {"placement", {{"order", {0, 1, 1, 0}}, {"ranks_per_node", 2}}}}}) {
    SCOPED_TRACE(config.dump());
    const TrialRecord record = make_record(config, TrialStatus::ok);
    const std::string script = export_trial(record, ExportFormat::sbatch, golden_source());
    std::vector<std::string> srun = {"srun"};
    for (const std::string& option : srun_options(shape_of(record.config, SlurmOptions{}), {})) srun.push_back(option);
    EXPECT_NE(script.find("\n" + shell_command(srun) + " \"${MEMFRONT_TRIAL:-memfront-trial}\""), std::string::npos)
        << script;
    EXPECT_NE(script.find(" --mpi=pmix "), std::string::npos);
  }
}

// The device mesh and process group are the trial's backend's: a CPU trial's
// export runs on CPUs with gloo.
TEST(ExportFsdpTest, DeviceIsTheTrialsBackend) {
  for (const char* strategy : {"ddp", "zero3", "hybrid"}) {
    SCOPED_TRACE(strategy);
    const json shard = {{"strategy", strategy}, {"group", 2}};
    const std::string cpu =
        export_trial(make_record({{"world", 4}, {"shard", shard}}, TrialStatus::ok), ExportFormat::fsdp2, golden_source());
    EXPECT_NE(cpu.find("\nDEVICE = \"cpu\"\n"), std::string::npos);
    EXPECT_NE(cpu.find("init_process_group(\"gloo\")"), std::string::npos);
    EXPECT_EQ(cpu.find("init_device_mesh(\"cuda\""), std::string::npos);
    const std::string cuda = export_trial(make_record({{"world", 4}, {"shard", shard}, {"backend", "cuda"}}, TrialStatus::ok),
                                          ExportFormat::fsdp2, golden_source());
    EXPECT_NE(cuda.find("\nDEVICE = \"cuda\"\n"), std::string::npos);
    EXPECT_NE(cuda.find("init_process_group(\"nccl\")"), std::string::npos);
    if (std::string(strategy) != "ddp") {
      EXPECT_NE(cuda.find("init_device_mesh(DEVICE, "), std::string::npos);
    }
  }
}

// Gradients are reduced once per optimizer step, after the last micro-batch.
TEST(ExportFsdpTest, TrainStepReducesOncePerStep) {
  const std::string ddp = export_trial(make_record({{"world", 2}, {"batch", {{"accum", 3}}}}, TrialStatus::ok),
                                       ExportFormat::fsdp2, golden_source());
  EXPECT_NE(ddp.find("with contextlib.nullcontext() if last else model.no_sync():"), std::string::npos);
  const std::string zero3 =
      export_trial(make_record({{"world", 2}, {"batch", {{"accum", 3}}}, {"shard", {{"strategy", "zero3"}}}}, TrialStatus::ok),
                   ExportFormat::fsdp2, golden_source());
  EXPECT_NE(zero3.find("model.set_requires_gradient_sync(last)"), std::string::npos);
}

// Checkpointing wraps no block in a new module, which would rename its
// parameters in the state dict.
TEST(ExportFsdpTest, CheckpointingKeepsTheBlocksWhereTheyAre) {
  for (const char* strategy : {"ddp", "zero3"}) {
    const std::string py = export_trial(
        make_record({{"world", 2}, {"checkpoint", {{"every", 2}}}, {"shard", {{"strategy", strategy}}}}, TrialStatus::ok),
        ExportFormat::fsdp2, golden_source());
    EXPECT_EQ(py.find("Sequential"), std::string::npos);
    EXPECT_EQ(py.find("checkpoint_wrapper"), std::string::npos);
    EXPECT_NE(py.find("setattr(parent, leaf, CheckpointedSegments(blocks))"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------

TEST(ExportTest, RecordWhoseIdIsNotItsConfigsSaysSo) {
  TrialRecord record = zero3_record();
  const std::string id = record.id;
  record.id = "3f2a9c1e5b7d0a44";
  const std::string script = export_trial(record, ExportFormat::sbatch, golden_source());
  EXPECT_NE(script.find("#SBATCH --job-name=memfront-" + id + "\n"), std::string::npos);
  EXPECT_NE(script.find("#   trial: 3f2a9c1e5b7d0a44\n"), std::string::npos);
  EXPECT_NE(script.find("#   config_id: " + id + "\n"), std::string::npos);
  EXPECT_NE(script.find("is not its config's id"), std::string::npos);
}

}  // namespace
}  // namespace memfront
