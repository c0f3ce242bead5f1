// The cost model (tuner/cost_model.h) under mpirun (1, 2 and 4 ranks): its
// predictions against real trials on this job's ranks — the arena's peaks by
// category and in total, the communicator's counted bytes by link class, the
// kernels' FLOP count — over a matrix of knobs; what-if predictions far beyond
// the machine against closed forms; and the calibration and prediction files.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/mpi_test.h"

#include "core/error.h"
#include "kernels/comm.h"
#include "kernels/model.h"
#include "kernels/param_layout.h"
#include "kernels/trial.h"
#include "core/step_calls.h"
#include "tuner/cost_model.h"

using namespace memfront;
namespace fs = std::filesystem;

namespace {

const auto& mpi_world = testing_mpi::world_size;
const auto& mpi_rank = testing_mpi::rank;

// Sets (value) or unsets (nullptr) an environment variable for its lifetime.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() { old_ ? setenv(name_, old_->c_str(), 1) : unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A tiny model on this job's ranks, all of them on one node. Its units (the
// embedding 2541, a block 13497, the final LayerNorm 66 parameters) split into
// shards of different sizes over 2 and 4 ranks, so that the largest shard,
// not an average, has to be found.
Config tiny(ShardStrategy strategy) {
  Config c = parse_config_text(R"({"model": {"vocab": 61, "seq": 16, "width": 33, "heads": 3, "layers": 3},
                                   "batch": {"micro": 2},
                                   "train": {"steps": 2, "warmup": 0, "eval_sequences": 2}})",
                               "tiny");
  c.world = mpi_world();
  c.placement.ranks_per_node = c.world;
  c.shard.strategy = strategy;
  // hybrid: two groups where the world allows.
  c.shard.group = strategy == ShardStrategy::hybrid && c.world % 2 == 0 ? c.world / 2 : c.world;
  return c;
}

struct Case {
  std::string name;
  Config config;
};

// Every strategy with each knob that changes what it holds or sends; on four
// ranks also two nodes of two, in block, cyclic and explicit order, flat and
// hierarchical.
std::vector<Case> knob_matrix() {
  std::vector<Case> cases;
  const int W = mpi_world();
  for (ShardStrategy strategy : {ShardStrategy::ddp, ShardStrategy::zero1, ShardStrategy::zero2, ShardStrategy::zero3,
                                 ShardStrategy::hybrid}) {
    const std::string s(to_string(strategy));
    auto add = [&](const std::string& what, auto change) {
      Config c = tiny(strategy);
      change(c);
      cases.push_back({s + " " + what, c});
    };
    add("fp32", [](Config&) {});
    add("checkpoint.every=1", [](Config& c) { c.checkpoint.every = 1; });
    add("checkpoint.every=2 bf16", [](Config& c) {
      c.checkpoint.every = 2;  // segments of 2 and 1 blocks
      c.precision.activations = DType::bf16;
    });
    add("int8 activations", [](Config& c) { c.precision.activations = DType::int8; });
    add("fp8e4m3 activations, topk.attention=4", [](Config& c) {
      c.precision.activations = DType::fp8e4m3;
      c.topk.attention = 4;
    });
    add("quant.grad=int8", [](Config& c) { c.quant.grad = DType::int8; });
    add("quant.grad=int4 block 100, accum 2", [](Config& c) {
      c.quant.grad = DType::int4;
      c.quant.block = 100;
      c.batch.accum = 2;
    });
    add("quant.grad=bf16 without feedback", [](Config& c) {
      c.quant.grad = DType::bf16;
      c.quant.error_feedback = false;
    });
    add("accum 2, checkpoint.every=3", [](Config& c) {
      c.batch.accum = 2;
      c.checkpoint.every = 3;
    });
    if (strategy == ShardStrategy::zero3 || strategy == ShardStrategy::hybrid) {
      add("quant.weights=bf16", [](Config& c) { c.quant.weights = DType::bf16; });
      add("quant.weights=int8, quant.grad=int8", [](Config& c) {
        c.quant.weights = DType::int8;
        c.quant.grad = DType::int8;
      });
    }
    if (strategy == ShardStrategy::ddp || strategy == ShardStrategy::zero1) {
      add("topk.grad=0.05", [](Config& c) { c.topk.grad = 0.05; });
      add("topk.grad=0.05 without feedback, accum 2", [](Config& c) {
        c.topk.grad = 0.05;
        c.topk.error_feedback = false;
        c.batch.accum = 2;
      });
    }
    if (W == 4) {
      for (CollectiveAlgo algorithm : {CollectiveAlgo::flat, CollectiveAlgo::hierarchical}) {
        const std::string a(to_string(algorithm));
        add("2 nodes block " + a, [&](Config& c) {
          c.placement.ranks_per_node = 2;
          c.placement.collectives = algorithm;
        });
        add("2 nodes cyclic " + a + " quant.grad=int8", [&](Config& c) {
          c.placement.ranks_per_node = 2;
          c.placement.order = PlacementOrder::cyclic;
          c.placement.collectives = algorithm;
          c.quant.grad = DType::int8;
        });
        add("2 nodes [0,1,1,0] " + a + " accum 2", [&](Config& c) {
          c.placement.ranks_per_node = 2;
          c.placement.order = PlacementOrder::explicit_list;
          c.placement.node_of_rank = {0, 1, 1, 0};
          c.placement.collectives = algorithm;
          c.batch.accum = 2;
        });
      }
    }
    if (W == 2) {
      add("2 nodes of 1 hierarchical", [](Config& c) {
        c.placement.ranks_per_node = 1;
        c.placement.collectives = CollectiveAlgo::hierarchical;
      });
    }
  }
  if (W == 4) {
    Config c = tiny(ShardStrategy::hybrid);
    c.shard.group = 1;  // four replicas of everything
    c.placement.ranks_per_node = 2;
    c.placement.collectives = CollectiveAlgo::hierarchical;
    cases.push_back({"hybrid group 1, 2 nodes hierarchical", c});
    c.shard.group = 4;  // one group: zero3
    cases.push_back({"hybrid group 4, 2 nodes hierarchical", c});
  }
  return cases;
}

}  // namespace

// Every category, the total, the bytes by link class and the FLOPs are
// predicted exactly: the transient buffers of the collectives and the moment
// the total peaks are derived, not estimated.
TEST(CostModel, PredictsWhatTheTrialMeasures) {
  int checked = 0;
  for (const Case& k : knob_matrix()) {
    SCOPED_TRACE(k.name);
    const TrialRecord record = run_trial(k.config, {});
    ASSERT_EQ(record.status, TrialStatus::ok) << record.error;
    const TrialMetrics& m = *record.metrics;
    const Prediction p = predict(k.config, Calibration{});
    for (MemCategory category : kAllMemCategories) {
      const int i = static_cast<int>(category);
      EXPECT_EQ(p.peak[i], m.peak_max[i]) << to_string(category);
    }
    EXPECT_EQ(p.peak_total, m.peak_total_max) << "total";
    EXPECT_EQ(p.bytes_intra_node, m.bytes_intra_node);
    EXPECT_EQ(p.bytes_inter_node, m.bytes_inter_node);
    EXPECT_EQ(p.flops_per_step, m.flops_per_step);
    EXPECT_GT(p.step_time_s, 0);
    EXPECT_EQ(p.step_time_s, p.compute_s + p.comm_s);
    ++checked;
  }
  EXPECT_GE(checked, 40);
}

// What-if beyond the machine: 1024 ranks, 8 per node, a GPT-2-small-like
// model. Nothing runs; the prediction is held to the forms of README.md and
// DESIGN.md, with the shards from the kernels' own Partition::even.
TEST(CostModel, WhatIfAtAThousandRanks) {
  Config c = parse_config_text(R"({"model": {"vocab": 50304, "seq": 1024, "width": 768, "heads": 12, "layers": 12},
                                   "batch": {"micro": 8}, "world": 1024,
                                   "placement": {"ranks_per_node": 8},
                                   "shard": {"strategy": "zero3"}})",
                               "what-if");
  const int W = 1024, R = 8;
  const ParamLayout layout(c.model);
  const uint64_t Psi = layout.total;
  const uint64_t U0 = layout.unit_size(layout.embedding_unit()), Ub = layout.block_size;
  const uint64_t Un = layout.unit_size(layout.final_norm_unit());
  const uint64_t L = c.model.layers;
  auto largest_owned = [&](int G) {
    uint64_t largest = 0;
    for (int i = 0; i < G; ++i) {
      uint64_t owned = 0;
      for (int u = 0; u < layout.unit_count(); ++u) owned += Partition::even(layout.unit_size(u), G).size(i);
      largest = std::max(largest, owned);
    }
    return largest;
  };
  auto peak = [](const Prediction& p, MemCategory category) { return p.peak[static_cast<int>(category)]; };

  // zero3 over all 1024: 16 bytes per owned parameter, plus the gathered
  // units; the ring of 1024 crosses a node boundary at every 8th edge.
  const Prediction zero3 = predict(c, Calibration{});
  const uint64_t owned = largest_owned(W);
  EXPECT_LE(owned, Psi / W + layout.unit_count());
  EXPECT_EQ(peak(zero3, MemCategory::params), 4 * owned + 4 * std::max(U0 + Un, Ub));
  EXPECT_EQ(peak(zero3, MemCategory::grads), 4 * owned + 4 * (U0 + std::max(Un, Ub)));
  EXPECT_EQ(peak(zero3, MemCategory::optimizer), 8 * owned);
  EXPECT_EQ(peak(zero3, MemCategory::activations), saved_activation_bytes(c).activations_peak);
  EXPECT_EQ(peak(zero3, MemCategory::recompute), 0u);
  const uint64_t zero3_bytes = 4 * uint64_t(W - 1) * (Psi + 3 * U0 + 2 * Un + 2 * L * Ub);
  EXPECT_EQ(zero3.bytes_intra_node + zero3.bytes_inter_node, zero3_bytes);
  EXPECT_NEAR(double(zero3.bytes_inter_node), zero3_bytes / double(R), 1e-3 * zero3_bytes);
  EXPECT_EQ(zero3.flops_per_step, W * 6.0 * (8.0 * 1024) * (12 * L * 768 * 768 + 768 * 50304) +
                                      W * 12.0 * L * 8 * 768 * (1024.0 * 1025 / 2));
  EXPECT_GT(zero3.comm_s, 0);
  EXPECT_FALSE(zero3.calibrated);

  // hybrid with a group per node: shard-group traffic stays inside nodes; the
  // replica all-reduce of every shard (8(R-1) bytes per element over R = 128
  // replicas) is all that crosses.
  Config hybrid = c;
  hybrid.shard.strategy = ShardStrategy::hybrid;
  hybrid.shard.group = 8;
  const Prediction h = predict(hybrid, Calibration{});
  const uint64_t replicas = W / 8;
  EXPECT_EQ(h.bytes_inter_node, 8 * (replicas - 1) * Psi);
  EXPECT_EQ(h.bytes_intra_node, replicas * 4 * 7 * (Psi + 3 * U0 + 2 * Un + 2 * L * Ub));
  EXPECT_EQ(peak(h, MemCategory::optimizer), 8 * largest_owned(8));
  EXPECT_EQ(peak(h, MemCategory::params), 4 * largest_owned(8) + 4 * std::max(U0 + Un, Ub));

  // Sharding over more ranks holds less; checkpointing trades activations for
  // a recomputed segment and more FLOPs.
  Config fewer = c;
  fewer.world = 64;
  EXPECT_LT(zero3.peak_total, predict(fewer, Calibration{}).peak_total);
  EXPECT_LT(zero3.peak_total, h.peak_total);
  Config ddp = c;
  ddp.shard.strategy = ShardStrategy::ddp;
  EXPECT_LT(h.peak_total, predict(ddp, Calibration{}).peak_total);
  Config checkpointed = c;
  checkpointed.checkpoint.every = 4;
  const Prediction k = predict(checkpointed, Calibration{});
  EXPECT_LT(peak(k, MemCategory::activations), peak(zero3, MemCategory::activations));
  EXPECT_EQ(peak(k, MemCategory::recompute), saved_activation_bytes(checkpointed).recompute_peak);
  EXPECT_GT(k.flops_per_step, zero3.flops_per_step);
  EXPECT_GT(k.step_time_s, zero3.step_time_s);
}

TEST(CostModel, CalibrationFilesRoundTripAndRejectWhatIsMalformed) {
  if (mpi_rank() != 0) GTEST_SKIP() << "files on rank 0 only";
  Calibration c;
  c.measured = true;
  c.host = "node17";
  c.created = "2026-11-23T02:10:00Z";
  c.gemm_flops_per_s = 61.5e9;
  c.attention_flops_per_s = 3.25e9;
  c.memory_bytes_per_s = 12.5e9;
  c.link_latency_s = 1.5e-6;
  c.link_bytes_per_s = 7.75e9;
  c.load_before = 0.25;
  c.load_after = 0.5;
  c.run_delay_share = 0.01;
  c.ops.push_back({{StepOp::matmul_forward, {512, 64, 192}}, 2e-5, 1.5e-5, 3e-5, 9});
  c.ops.push_back({{StepOp::quantize_rows, {512, 64}, DType::int8}, 4e-6, 3e-6, 5e-6, 9});
  const fs::path dir = fs::path(testing::TempDir()) / "memfront-calibration";
  const fs::path path = dir / "nested" / "calibration.json";
  fs::remove_all(dir);
  save_calibration(path, c);
  const Calibration back = load_calibration(path);
  EXPECT_EQ(to_json(back), to_json(c));

  EXPECT_FALSE(load_calibration(dir / "absent.json").measured) << "a missing file gives the defaults";
  EXPECT_EQ(to_json(load_calibration(dir / "absent.json")), to_json(Calibration{}));

  std::ofstream(dir / "broken.json") << "{\"measured\": tru";
  try {
    load_calibration(dir / "broken.json");
    ADD_FAILURE() << "malformed JSON accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("broken.json"), std::string::npos) << e.what();
  }
  nlohmann::json missing = to_json(c);
  missing.erase("link_bytes_per_s");
  std::ofstream(dir / "missing.json") << missing.dump();
  try {
    load_calibration(dir / "missing.json");
    ADD_FAILURE() << "a missing field accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.json: /link_bytes_per_s"), std::string::npos) << e.what();
  }
  nlohmann::json negative = to_json(c);
  negative["gemm_flops_per_s"] = -1;
  EXPECT_THROW(calibration_from_json(negative, "x"), InputError);
  nlohmann::json extra = to_json(c);
  extra["gemm"] = 1;
  EXPECT_THROW(calibration_from_json(extra, "x"), InputError);
  nlohmann::json unknown_op = to_json(c);
  unknown_op["ops"][0]["op"] = "matmul_sideways";
  try {
    calibration_from_json(unknown_op, "c.json");
    ADD_FAILURE() << "an unknown operation accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "c.json: /ops/0/op: unknown operation \"matmul_sideways\"");
  }
  nlohmann::json short_dims = to_json(c);
  short_dims["ops"][0]["dims"] = {512, 64};
  try {
    calibration_from_json(short_dims, "c.json");
    ADD_FAILURE() << "a call with too few dimensions accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "c.json: /ops/0/dims: expected 3 dimensions for matmul_forward, got 2");
  }
  nlohmann::json no_format = to_json(c);
  no_format["ops"][1].erase("format");
  EXPECT_THROW(calibration_from_json(no_format, "x"), InputError) << "quantize_rows needs its format";

  // Versioned: a file without the format, or with another one, says which it expected.
  EXPECT_EQ(to_json(c)["format"], "memfront.calibration/2");
  nlohmann::json unversioned = to_json(c);
  unversioned.erase("format");
  try {
    calibration_from_json(unversioned, "old.json");
    ADD_FAILURE() << "a calibration without its format accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("old.json: /format: missing (expected \"memfront.calibration/2\""),
              std::string::npos)
        << e.what();
  }
  nlohmann::json future = to_json(c);
  future["format"] = "memfront.calibration/1";
  try {
    calibration_from_json(future, "old.json");
    ADD_FAILURE() << "a calibration of another format accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              "old.json: /format: expected \"memfront.calibration/2\", got \"memfront.calibration/1\" (a "
              "calibration of another memfront: run memfront calibrate again)");
  }

  {
    const ScopedEnv explicit_path("MEMFRONT_CALIBRATION", path.c_str());
    EXPECT_EQ(default_calibration_path(), path);
  }
  {
    const ScopedEnv no_explicit_path("MEMFRONT_CALIBRATION", nullptr);
    const ScopedEnv cache("XDG_CACHE_HOME", "/cache");
    EXPECT_EQ(default_calibration_path(), fs::path("/cache/memfront/calibration.json"));
  }
  fs::remove_all(dir);
}

// A call is timed as measured when its shape was; between measured sizes of
// the same op it is interpolated in log-log; beyond them it keeps the
// nearest one's rate; never timed, it falls back on the rates.
TEST(CostModel, CallsAreTimedFromTheirMeasuredShapesOrInterpolated) {
  Calibration c;
  c.ops.push_back({{StepOp::gelu_forward, {1000}}, 1e-6, 1e-6, 1e-6, 3});
  c.ops.push_back({{StepOp::gelu_forward, {100000}}, 1e-4, 1e-4, 1e-4, 3});
  c.ops.push_back({{StepOp::gelu_forward, {4096}}, 9e-6, 9e-6, 9e-6, 3});
  c.ops.push_back({{StepOp::quantize_rows, {10, 100}, DType::int8}, 2e-6, 2e-6, 2e-6, 3});
  EXPECT_EQ(op_seconds(c, {StepOp::gelu_forward, {4096}}), 9e-6) << "the measured shape itself";
  EXPECT_NEAR(op_seconds(c, {StepOp::gelu_forward, {2000}}), 1e-6 * std::exp(std::log(2000.0 / 1000) /
                                                                               std::log(4096.0 / 1000) * std::log(9.0)),
              1e-12);
  EXPECT_NEAR(op_seconds(c, {StepOp::gelu_forward, {500}}), 0.5e-6, 1e-15) << "below: the smallest one's rate";
  EXPECT_NEAR(op_seconds(c, {StepOp::gelu_forward, {200000}}), 2e-4, 1e-15) << "above: the largest one's rate";
  EXPECT_NEAR(op_seconds(c, {StepOp::quantize_rows, {20, 100}, DType::int8}), 4e-6, 1e-15);
  // Another format of the same op was not measured: the fallback, 12 bytes per value.
  EXPECT_NEAR(op_seconds(c, {StepOp::quantize_rows, {20, 100}, DType::bf16}), 2000 * 12 / c.memory_bytes_per_s, 1e-15);
  EXPECT_NEAR(op_seconds(c, {StepOp::matmul_forward, {64, 32, 96}}), 2.0 * 64 * 32 * 96 / c.gemm_flops_per_s, 1e-15);
}

// The step's calls are the kernels' calls: their GEMM and attention work adds
// up to the FLOPs a trial counts, checkpointing adds a recompute phase with
// every block's forward again, a quantized activation format adds its
// conversions, and a prediction sums the calls' seconds by phase.
TEST(CostModel, StepCallsAddUpToTheKernelsFlopsAndTheirPhasesToTheStep) {
  Config c = tiny(ShardStrategy::zero3);
  c.quant.weights = DType::int8;
  const Prediction p = predict(c, Calibration{});
  double phases = 0;
  for (const auto& [phase, seconds] : p.phase_s) phases += seconds;
  EXPECT_NEAR(phases, p.step_time_s, 1e-12 * p.step_time_s);
  EXPECT_GT(p.phase_s.at("quantize"), 0) << "zero3 with int8 weights encodes and decodes every gather";
  EXPECT_EQ(p.phase_s.count("recompute"), 0u);
  auto calls_of = [](const Config& config, StepOp op) {
    double times = 0;
    for (const StepCall& call : step_calls(config)) times += call.call.op == op ? call.times : 0;
    return times;
  };
  Config checkpointed = c;
  checkpointed.checkpoint.every = 2;
  EXPECT_GT(predict(checkpointed, Calibration{}).phase_s.at("recompute"), 0);
  EXPECT_EQ(calls_of(checkpointed, StepOp::matmul_forward), calls_of(c, StepOp::matmul_forward) +
                                                                4.0 * c.model.layers * c.batch.accum);
  EXPECT_EQ(calls_of(c, StepOp::dequantize_rows), 0) << "fp32 activations are read where they were written";
  Config int8 = c;
  int8.precision.activations = DType::int8;
  EXPECT_EQ(calls_of(int8, StepOp::dequantize_rows), (9.0 * c.model.layers + 2) * c.batch.accum);
}

TEST(CostModel, PredictionsRoundTripAndRejectWhatIsMalformed) {
  Config c = tiny(ShardStrategy::zero2);
  Calibration measured;
  measured.measured = true;
  const Prediction p = predict(c, measured);
  EXPECT_TRUE(p.calibrated);
  const nlohmann::json j = to_json(p);
  EXPECT_EQ(to_json(prediction_from_json(j, "p")), j);
  EXPECT_EQ(j["peak_bytes"]["total"].get<uint64_t>(), p.peak_total);
  EXPECT_EQ(j["comm"]["bytes_intra_node"].get<uint64_t>(), p.bytes_intra_node);

  nlohmann::json no_total = j;
  no_total["peak_bytes"].erase("total");
  try {
    prediction_from_json(no_total, "record.json");
    ADD_FAILURE() << "a prediction without peak_bytes.total accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "record.json: /peak_bytes/total: missing (expected a non-negative integer)");
  }
  nlohmann::json fractional = j;
  fractional["comm"]["bytes_inter_node"] = 1.5;
  EXPECT_THROW(prediction_from_json(fractional, "p"), InputError);
  nlohmann::json wrong_type = j;
  wrong_type["step_time_s"] = "fast";
  EXPECT_THROW(prediction_from_json(wrong_type, "p"), InputError);
}

// memfront-calibrate writes what calibration_from_json reads: the same keys
// as to_json(Calibration), measured, with positive rates. It runs as a
// separate one-rank MPI job, outside this job's environment.
TEST(CostModel, CalibrateWritesWhatTheTunerReads) {
  if (mpi_world() != 1) GTEST_SKIP() << "run once, from the one-rank job";
  const fs::path out = fs::path(testing::TempDir()) / "memfront-calibrate.json";
  const fs::path configs = fs::path(testing::TempDir()) / "memfront-calibrate-configs.json";
  fs::remove(out);
  Config int8 = tiny(ShardStrategy::zero2);
  int8.precision.activations = DType::int8;
  std::ofstream(configs) << nlohmann::json::array({to_json(tiny(ShardStrategy::ddp)), to_json(int8)}).dump();
  const char* path = std::getenv("PATH");
  // A sanitizer build's options must reach the program too (leak reports from MPI would fail it).
  const char* asan = std::getenv("ASAN_OPTIONS");
  const std::string command = "env -i PATH='" + std::string(path ? path : "/usr/bin:/bin") + "'" +
                              (asan ? " ASAN_OPTIONS='" + std::string(asan) + "'" : std::string()) +
                              " OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 " +
                              MEMFRONT_CALIBRATE_EXE + " --quick --allow-loaded --configs " + configs.string() +
                              " --out " + out.string() + " > /dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(out);
  const nlohmann::json written = nlohmann::json::parse(in);
  std::vector<std::string> keys, expected;
  for (const auto& item : written.items()) keys.push_back(item.key());
  const nlohmann::json defaults = to_json(Calibration{});
  for (const auto& item : defaults.items()) expected.push_back(item.key());
  EXPECT_EQ(keys, expected);
  const Calibration c = load_calibration(out);
  EXPECT_TRUE(c.measured);
  EXPECT_FALSE(c.host.empty());
  EXPECT_EQ(c.created.size(), std::string("2026-11-23T02:10:00Z").size()) << c.created;
  EXPECT_GT(c.gemm_flops_per_s, 1e8);
  EXPECT_GT(c.attention_flops_per_s, 1e7);
  EXPECT_GT(c.memory_bytes_per_s, 1e8);
  // Every distinct call of the two configs, timed once.
  const std::vector<OpCall> calls = distinct_calls({tiny(ShardStrategy::ddp), int8});
  ASSERT_EQ(c.ops.size(), calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(c.ops[i].call, calls[i]) << i;
    EXPECT_GT(c.ops[i].median_s, 0);
    EXPECT_LE(c.ops[i].p10_s, c.ops[i].median_s);
    EXPECT_GE(c.ops[i].p90_s, c.ops[i].median_s);
  }
  fs::remove(out);
  fs::remove(configs);
}
