// memfront-trial as a user runs it: exit codes, one-line errors, the record it
// writes, and how the measured peaks answer the knobs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/run_command.h"
#ifdef MEMFRONT_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#include "core/error.h"
#include "core/results.h"
#include "kernels/trial.h"
#include "core/json_file.h"
#include "tests/results_schema.h"

using namespace memfront;
namespace fs = std::filesystem;

namespace {

CommandRun run_trial_exe(const std::string& args) { return run_command(std::string(MEMFRONT_TRIAL_EXE) + " " + args); }

fs::path write_config(const std::string& name, const std::string& text) {
  fs::path path = fs::path(testing::TempDir()) / name;
  std::ofstream(path) << text;
  return path;
}

const char* kTiny = R"({"model": {"vocab": 64, "seq": 16, "width": 32, "heads": 4, "layers": 2},
                        "batch": {"micro": 2}, "train": {"steps": 3, "warmup": 1}})";

}  // namespace

TEST(TrialExe, RunsAConfigPrintsTheSummaryAndWritesTheRecord) {
  fs::path config = write_config("tiny.json", kTiny);
  fs::path out = fs::path(testing::TempDir()) / "tiny.record.json";
  CommandRun run = run_trial_exe("--config " + config.string() + " --out " + out.string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("status ok"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("activations"), std::string::npos);
  EXPECT_NE(run.output.find("tokens/s"), std::string::npos);
  TrialRecord record = read_record_file(out);
  EXPECT_EQ(results_schema_errors(read_json_file(out, "record")), "");
  EXPECT_EQ(record.status, TrialStatus::ok);
  ASSERT_TRUE(record.metrics);
  EXPECT_EQ(record.metrics->loss_curve.size(), 4u);  // warmup steps are in the curve
  EXPECT_EQ(record.metrics->step_time_s.count, 3);
  EXPECT_GT(record.metrics->peak_max[static_cast<int>(MemCategory::activations)], 0u);
  EXPECT_GE(record.metrics->ranks[0].rss_peak_bytes, record.metrics->peak_total_max);
  // The pool holds at least what the arena had live at its peak (its blocks are rounded up).
  ASSERT_TRUE(record.metrics->ranks[0].pool_reserved_high_bytes);
  EXPECT_GE(*record.metrics->ranks[0].pool_reserved_high_bytes, record.metrics->peak_total_max);
  EXPECT_GT(record.metrics->phase_s.at("forward"), 0.0);
  EXPECT_EQ(record.id, config_id(record.config));
}

TEST(TrialExe, StepsOnTheCommandLineOverrideTheConfig) {
  fs::path config = write_config("tiny2.json", kTiny);
  fs::path out = fs::path(testing::TempDir()) / "tiny2.record.json";
  CommandRun run = run_trial_exe("--config " + config.string() + " --steps 2 --warmup 0 --quiet --out " + out.string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output, "");
  EXPECT_EQ(read_record_file(out).metrics->loss_curve.size(), 2u);
}

TEST(TrialExe, BadConfigIsOneLineAndExitTwo) {
  fs::path config = write_config("typo.json", R"({"batch": {"mciro": 2}})");
  CommandRun run = run_trial_exe("--config " + config.string());
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.output, "memfront-trial: " + config.string() +
                            ": /batch/mciro: unknown key (expected one of: accum, micro)\n");
}

TEST(TrialExe, WorldMustMatchTheJob) {
  fs::path config = write_config("zero3.json", R"({"world": 2, "shard": {"strategy": "zero3"}})");
  CommandRun run = run_trial_exe("--config " + config.string());
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.output, "memfront-trial: " + config.string() +
                            ": /world: the config asks for world=2 ranks but this job has 1 (run it under mpirun -np "
                            "2)\n");
}

// Without a CUDA build, or without a GPU, backend=cuda is refused in one line
// that names the file and the knob.
TEST(TrialExe, ABackendThisMachineCannotRunFailsClearly) {
  int devices = 0;
#ifdef MEMFRONT_HAVE_CUDA
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
#endif
  if (devices > 0) GTEST_SKIP() << "this machine has a GPU: backend=cuda runs here";
  fs::path config = write_config("cuda.json", R"({"backend": "cuda"})");
  CommandRun run = run_trial_exe("--config " + config.string());
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("cuda.json: /backend: backend=cuda "), std::string::npos) << run.output;
  EXPECT_EQ(std::count(run.output.begin(), run.output.end(), '\n'), 1) << run.output;
}

// A rank that dies mid-step ends the trial: mpirun returns a failure quickly,
// and the record on disk says the trial did not finish.
TEST(TrialExe, ARankThatExitsMidStepFailsTheTrialWithinTheTimeout) {
  fs::path config = write_config("crash.json", R"({"model": {"vocab": 64, "seq": 16, "width": 32, "heads": 4,
      "layers": 2}, "batch": {"micro": 2}, "world": 2, "train": {"steps": 5, "warmup": 0}})");
  fs::path out = fs::path(testing::TempDir()) / "crash.record.json";
  const auto start = std::chrono::steady_clock::now();
  CommandRun run = run_command(std::string(MEMFRONT_MPIEXEC) + " -np 2 --oversubscribe --allow-run-as-root " +
                           MEMFRONT_TRIAL_EXE + " --config " + config.string() + " --timeout 10 --crash 1:2 --out " +
                           out.string());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(run.exit_code, 0) << run.output;
  EXPECT_LT(seconds, 30.0) << "the surviving rank must not hang";
  EXPECT_NE(run.output.find("rank 1: crashing at step 2"), std::string::npos) << run.output;
  TrialRecord record = read_record_file(out);
  EXPECT_EQ(results_schema_errors(read_json_file(out, "record")), "");
  EXPECT_EQ(record.status, TrialStatus::failed);
  EXPECT_NE(record.error.find("did not finish"), std::string::npos) << record.error;
}

TEST(TrialExe, MemoryCapBreachIsStatusOomWithExitThree) {
  fs::path config = write_config("oom.json", kTiny);
  fs::path out = fs::path(testing::TempDir()) / "oom.record.json";
  CommandRun run = run_trial_exe("--config " + config.string() + " --mem-cap 600KiB --out " + out.string());
  EXPECT_EQ(run.exit_code, 3) << run.output;
  TrialRecord record = read_record_file(out);
  EXPECT_EQ(record.status, TrialStatus::oom);
  EXPECT_NE(record.error.find("out of memory"), std::string::npos);
  ASSERT_TRUE(record.metrics);  // what was measured until then is kept
  EXPECT_LE(record.metrics->peak_total_max, 600u * 1024);
}

TEST(TrialExe, BadMemCapIsOneLine) {
  CommandRun run = run_trial_exe("--config x.json --mem-cap lots");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.output,
            "memfront-trial: --mem-cap: expected a byte size from 1 B to below 16 EiB (2^64 B), such as 512MiB or "
            "2GB, got 'lots'\n");
}

// The acceptance check: the measured peak of each category moves the way each
// knob says it should.
TEST(Trial, PeaksAnswerTheKnobs) {
  Config base = parse_config_text(kTiny, "tiny");
  base.model.seq = 32;
  base.train.steps = 1;
  base.train.warmup = 0;
  auto activations = [](const Config& c) {
    TrialRecord r = run_trial(c, {});
    EXPECT_EQ(r.status, TrialStatus::ok) << r.error;
    return r.metrics->peak_max[static_cast<int>(MemCategory::activations)];
  };
  const uint64_t reference = activations(base);
  Config c = base;
  c.checkpoint.every = 1;
  EXPECT_LT(activations(c), reference) << "checkpoint.every";
  c = base;
  c.precision.activations = DType::bf16;
  EXPECT_LT(activations(c), reference) << "bf16";
  c.precision.activations = DType::int8;
  EXPECT_LT(activations(c), reference) << "int8";
  c = base;
  c.topk.attention = 2;
  EXPECT_LT(activations(c), reference) << "topk.attention";
  c = base;
  c.batch.micro = 4;
  EXPECT_GT(activations(c), reference) << "batch.micro";
}

// The held-out loss is over a fixed set of sequences (train.eval_sequences):
// configurations that train alike report the same loss to float noise,
// whatever their micro-batch and world. It used to evaluate eval_batches
// micro-batches, so micro 15 and micro 5 x accum 3 differed by 1e-3.
TEST(TrialExe, HeldOutLossIsTheSameForEveryWayOfCuttingTheBatch) {
  const auto final_loss = [](const std::string& name, const std::string& batch, int world) {
    fs::path config = write_config(name + ".json", R"({"model": {"vocab": 64, "seq": 16, "width": 32, "heads": 4,
        "layers": 2}, "train": {"steps": 3, "warmup": 0, "eval_sequences": 20}, )" + batch +
                                                      R"(, "world": )" + std::to_string(world) + "}");
    fs::path out = fs::path(testing::TempDir()) / (name + ".record.json");
    const std::string launch = world == 1 ? std::string()
                                          : std::string(MEMFRONT_MPIEXEC) + " -np " + std::to_string(world) +
                                                " --oversubscribe --allow-run-as-root ";
    CommandRun run = run_command(launch + MEMFRONT_TRIAL_EXE + " --quiet --config " + config.string() + " --out " +
                                 out.string());
    EXPECT_EQ(run.exit_code, 0) << run.output;
    const TrialRecord record = read_record_file(out);
    return record.metrics ? record.metrics->final_loss : -1.0;
  };
  const double whole = final_loss("micro15", R"("batch": {"micro": 15})", 1);
  const double accumulated = final_loss("micro5x3", R"("batch": {"micro": 5, "accum": 3})", 1);
  const double three_ranks = final_loss("world3", R"("batch": {"micro": 5})", 3);
  ASSERT_GT(whole, 0);
  EXPECT_NEAR(accumulated, whole, 2e-5 * whole);
  EXPECT_NEAR(three_ranks, whole, 2e-5 * whole);
}
