// memfront-calibrate: times, on this machine, the calls a training step makes,
// so that the cost model (tuner/cost_model.h) can add a step up call by call,
// and writes them as a calibration file (core/calibration.h).
//
//   mpirun -np 2 memfront-calibrate --out calibration.json [--quick]
//        [--configs configs.json] [--allow-loaded]
//
// Which calls: every distinct call (operation and shape, core/step_calls.h)
// of the configs in --configs (a JSON array of configs; `memfront calibrate
// --study` writes the study's), or, without it, of built-in configs that
// cover every operation at the shapes of examples/small.json and
// examples/medium.json. Each call runs through the CPU backend the trials use
// (kernels/ops.h), with one BLAS thread, all ranks at once as a trial's ranks
// compute at once; a sample is a batch of calls of about a millisecond,
// taken in passes over all the calls (one sample of each per pass), and each
// call keeps the median, p10 and p90 per call of its samples on the slowest
// rank.
//
// Also measured: the fallback rates for calls that were not timed (GEMM and
// attention FLOP/s from the timed calls, a streaming triad), and the
// intra-node link between ranks 0 and 1 through memfront's own communicator:
// the latency of one small message (broadcasts back and forth), then the
// bandwidth of a large all-gather (each rank sends 16 MiB). With one rank
// there is no link to measure: it keeps the defaults, and the program says so.
//
// A loaded machine gives rates that do not last. The ranks' scheduler run
// delay is read over the whole measurement: above core/timing.h's contended
// fraction the program refuses to write (exit 1), unless --allow-loaded, when
// the file is written marked `loaded` and a warning printed.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <mpi.h>

#include "core/arena.h"
#include "core/calibration.h"
#include "core/closed_forms.h"
#include "core/config.h"
#include "core/error.h"
#include "core/exit_code.h"
#include "core/json_file.h"
#include "core/results.h"
#include "core/step_calls.h"
#include "core/time_limits.h"
#include "core/timing.h"
#include "core/topology.h"
#include "kernels/comm.h"
#include "kernels/mpi_session.h"
#include "kernels/ops.h"
#include "probes/host_probe.h"

namespace {

using namespace memfront;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// ---------------------------------------------------------------------------
// Which calls
// ---------------------------------------------------------------------------

// Configs whose calls cover every operation at the shapes of
// examples/small.json and examples/medium.json, on two ranks: dense and Top-K
// attention, every activation format, checkpointing, every gradient format
// under ddp and zero2, Top-K gradients, and zero3 with every weight format.
std::vector<Config> built_in_configs() {
  std::vector<Config> configs;
  for (const auto& [vocab, seq, width, heads] : {std::array{256, 64, 64, 4}, std::array{2048, 128, 256, 8}}) {
    Config base;
    base.world = 2;
    base.model.vocab = vocab;
    base.model.seq = seq;
    base.model.width = width;
    base.model.heads = heads;
    base.batch.micro = 8;
    base.placement.ranks_per_node = 2;
    for (DType format : {DType::fp32, DType::bf16, DType::fp8e4m3, DType::int8}) {
      Config c = base;
      c.precision.activations = format;
      c.checkpoint.every = 2;
      configs.push_back(c);
      c.topk.attention = seq / 4;
      configs.push_back(c);
    }
    for (ShardStrategy strategy : {ShardStrategy::ddp, ShardStrategy::zero2}) {
      for (DType format : {DType::fp32, DType::bf16, DType::int8, DType::int4}) {
        Config c = base;
        c.shard.strategy = strategy;
        c.quant.grad = format;
        configs.push_back(c);
      }
    }
    Config sparse = base;
    sparse.topk.grad = 0.1;
    configs.push_back(sparse);
    for (DType format : {DType::fp32, DType::bf16, DType::int8}) {
      Config c = base;
      c.shard.strategy = ShardStrategy::zero3;
      c.quant.weights = format;
      configs.push_back(c);
    }
  }
  return configs;
}

std::vector<Config> configs_from_file(const std::string& path) {
  const nlohmann::json list = read_json_file(path, "configs file");
  if (!list.is_array() || list.empty()) throw InputError(path + ": expected a non-empty JSON array of configs");
  std::vector<Config> configs;
  for (size_t i = 0; i < list.size(); ++i) configs.push_back(parse_config(list[i], path + ": /" + std::to_string(i)));
  return configs;
}

// ---------------------------------------------------------------------------
// Timing one call
// ---------------------------------------------------------------------------

// Buffers for one call, filled with small values, none of them zero: a zero
// gradient would decay Adam's second moment into denormals over the
// thousands of calls of a calibration, which no step meets. `run` makes the
// call once.
struct CallRunner {
  std::vector<std::vector<float>> floats;
  std::vector<int32_t> tokens;
  std::vector<uint16_t> indices;
  std::vector<unsigned char> bytes;
  std::function<void()> run;

  float* f(size_t n) {
    floats.emplace_back(n);
    for (size_t i = 0; i < n; ++i) floats.back()[i] = 0.01f * static_cast<float>(int(i % 97) - 48) + 0.005f;
    return floats.back().data();
  }
};

// The quantization block of gradient and weight payloads: the config's default.
const int kBlock = Config{}.quant.block;

std::unique_ptr<CallRunner> make_runner(Ops& ops, const OpCall& call) {
  auto r = std::make_unique<CallRunner>();
  auto dim = [&](size_t i) { return static_cast<int>(call.dims.at(i)); };
  auto n_at = [&](size_t i) { return static_cast<uint64_t>(call.dims.at(i)); };
  const DType format = call.format;
  switch (call.op) {
    case StepOp::matmul_forward:
    case StepOp::matmul_backward: {
      const int N = dim(0), C = dim(1), OC = dim(2);
      float *inp = r->f(size_t(N) * C), *weight = r->f(size_t(OC) * C), *bias = r->f(OC), *out = r->f(size_t(N) * OC);
      if (call.op == StepOp::matmul_forward) {
        r->run = [&ops, out, inp, weight, bias, N, C, OC] { ops.matmul_forward(out, inp, weight, bias, N, C, OC); };
      } else {
        float *dinp = r->f(size_t(N) * C), *dweight = r->f(size_t(OC) * C), *dbias = r->f(OC);
        r->run = [&ops, dinp, dweight, dbias, out, inp, weight, N, C, OC] {
          ops.matmul_backward(dinp, dweight, dbias, out, inp, weight, N, C, OC);
        };
      }
      break;
    }
    case StepOp::attention_forward:
    case StepOp::attention_backward:
    case StepOp::attention_topk_forward:
    case StepOp::attention_topk_backward: {
      const int B = dim(0), T = dim(1), C = dim(2), NH = dim(3);
      const bool topk = call.op == StepOp::attention_topk_forward || call.op == StepOp::attention_topk_backward;
      const int K = topk ? dim(4) : 0;
      const size_t N = size_t(B) * T, rows = size_t(B) * NH * T, cols = topk ? K : T;
      float *qkv = r->f(N * 3 * C), *out = r->f(N * C), *att = r->f(rows * cols);
      float* scratch = r->f(ops.attention_scratch_floats(B, T, NH, K));
      float *dqkv = r->f(N * 3 * C), *dout = r->f(N * C);
      r->indices.resize(topk ? rows * K : 0);
      uint16_t* idx = r->indices.data();
      // Backward reads what forward wrote: run forward once now.
      if (topk) {
        ops.attention_topk_forward(out, att, idx, qkv, scratch, B, T, C, NH, K);
      } else {
        ops.attention_forward(out, att, qkv, scratch, B, T, C, NH);
      }
      switch (call.op) {
        case StepOp::attention_forward:
          r->run = [&ops, out, att, qkv, scratch, B, T, C, NH] { ops.attention_forward(out, att, qkv, scratch, B, T, C, NH); };
          break;
        case StepOp::attention_backward:
          r->run = [&ops, dqkv, dout, qkv, att, scratch, B, T, C, NH] {
            ops.attention_backward(dqkv, dout, qkv, att, scratch, B, T, C, NH);
          };
          break;
        case StepOp::attention_topk_forward:
          r->run = [&ops, out, att, idx, qkv, scratch, B, T, C, NH, K] {
            ops.attention_topk_forward(out, att, idx, qkv, scratch, B, T, C, NH, K);
          };
          break;
        default:
          r->run = [&ops, dqkv, dout, qkv, att, idx, scratch, B, T, C, NH, K] {
            ops.attention_topk_backward(dqkv, dout, qkv, att, idx, scratch, B, T, C, NH, K);
          };
      }
      break;
    }
    case StepOp::layernorm_forward:
    case StepOp::layernorm_backward: {
      const int N = dim(0), C = dim(1);
      float *inp = r->f(size_t(N) * C), *out = r->f(size_t(N) * C), *w = r->f(C), *b = r->f(C);
      float *mean = r->f(N), *rstd = r->f(N), *dw = r->f(C), *db = r->f(C), *dinp = r->f(size_t(N) * C);
      ops.layernorm_forward(out, mean, rstd, inp, w, b, N, C);
      if (call.op == StepOp::layernorm_forward) {
        r->run = [&ops, out, mean, rstd, inp, w, b, N, C] { ops.layernorm_forward(out, mean, rstd, inp, w, b, N, C); };
      } else {
        r->run = [&ops, dinp, dw, db, out, inp, w, mean, rstd, N, C] {
          ops.layernorm_backward(dinp, dw, db, out, inp, w, mean, rstd, N, C);
        };
      }
      break;
    }
    case StepOp::softmax_crossentropy_forward:
    case StepOp::softmax_crossentropy_backward: {
      const int N = dim(0), V = dim(1);
      float *logits = r->f(size_t(N) * V), *probs = r->f(size_t(N) * V), *losses = r->f(N);
      r->tokens.resize(N);
      for (int i = 0; i < N; ++i) r->tokens[i] = i % V;
      const int32_t* targets = r->tokens.data();
      ops.softmax_crossentropy_forward(losses, probs, logits, targets, N, V);
      if (call.op == StepOp::softmax_crossentropy_forward) {
        r->run = [&ops, losses, probs, logits, targets, N, V] {
          ops.softmax_crossentropy_forward(losses, probs, logits, targets, N, V);
        };
      } else {
        r->run = [&ops, logits, probs, targets, N, V] {
          ops.softmax_crossentropy_backward(logits, probs, targets, 1.0f / N, N, V);
        };
      }
      break;
    }
    case StepOp::embedding_forward:
    case StepOp::embedding_backward: {
      const int B = dim(0), T = dim(1), C = dim(2), vocab = 256;
      float *wte = r->f(size_t(vocab) * C), *wpe = r->f(size_t(T) * C), *out = r->f(size_t(B) * T * C);
      r->tokens.resize(size_t(B) * T);
      for (size_t i = 0; i < r->tokens.size(); ++i) r->tokens[i] = static_cast<int32_t>(i % vocab);
      const int32_t* tokens = r->tokens.data();
      if (call.op == StepOp::embedding_forward) {
        r->run = [&ops, out, tokens, wte, wpe, B, T, C] { ops.embedding_forward(out, tokens, wte, wpe, B, T, C); };
      } else {
        r->run = [&ops, wte, wpe, out, tokens, B, T, C] { ops.embedding_backward(wte, wpe, out, tokens, B, T, C); };
      }
      break;
    }
    case StepOp::gelu_forward:
    case StepOp::gelu_backward:
    case StepOp::residual_forward:
    case StepOp::adamw:
    case StepOp::fill:
    case StepOp::copy:
    case StepOp::add: {
      const uint64_t n = n_at(0);
      float *a = r->f(n), *b = r->f(n), *c = r->f(n), *d = r->f(n);
      switch (call.op) {
        case StepOp::gelu_forward: r->run = [&ops, a, b, n] { ops.gelu_forward(a, b, n); }; break;
        case StepOp::gelu_backward: r->run = [&ops, a, b, c, n] { ops.gelu_backward(a, b, c, n); }; break;
        case StepOp::residual_forward: r->run = [&ops, a, b, c, n] { ops.residual_forward(a, b, c, n); }; break;
        case StepOp::adamw:
          r->run = [&ops, a, b, c, d, n] { ops.adamw_update(a, b, c, d, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.0f, 1); };
          break;
        case StepOp::fill: r->run = [&ops, a, n] { ops.fill(a, n, 0.0f); }; break;
        case StepOp::copy: r->run = [&ops, a, b, n] { ops.copy(a, b, n * sizeof(float)); }; break;
        default: r->run = [&ops, a, b, n] { ops.add(a, b, n); };
      }
      break;
    }
    case StepOp::quantize_rows:
    case StepOp::dequantize_rows: {
      const uint64_t rows = n_at(0), cols = n_at(1);
      float *src = r->f(rows * cols), *scales = r->f(rows);
      r->bytes.resize(rows * cols * sizeof(float));
      void* codes = r->bytes.data();
      ops.quantize_rows(codes, scales, src, rows, cols, format);
      if (call.op == StepOp::quantize_rows) {
        r->run = [&ops, codes, scales, src, rows, cols, format] { ops.quantize_rows(codes, scales, src, rows, cols, format); };
      } else {
        r->run = [&ops, src, codes, scales, rows, cols, format] {
          ops.dequantize_rows(src, codes, scales, rows, cols, format);
        };
      }
      break;
    }
    case StepOp::encode_grad:
    case StepOp::add_decoded:
    case StepOp::encode_weights:
    case StepOp::decode_weights: {
      const uint64_t n = n_at(0);
      float *x = r->f(n), *residual = r->f(n);
      r->bytes.resize(blockwise_bytes(n, format, kBlock));
      void* payload = r->bytes.data();
      ops.encode_blockwise(payload, x, n, format, kBlock);
      switch (call.op) {
        case StepOp::encode_grad:
          r->run = [&ops, payload, x, residual, n, format] {
            ops.encode_blockwise_with_feedback(payload, x, residual, n, format, kBlock);
          };
          break;
        case StepOp::add_decoded:
          r->run = [&ops, x, payload, n, format] { ops.add_decoded_blockwise(x, payload, n, format, kBlock); };
          break;
        case StepOp::encode_weights:
          r->run = [&ops, payload, x, n, format] { ops.encode_blockwise(payload, x, n, format, kBlock); };
          break;
        default: r->run = [&ops, x, payload, n, format] { ops.decode_blockwise(x, payload, n, format, kBlock); };
      }
      break;
    }
    case StepOp::encode_topk:
    case StepOp::add_topk: {
      const uint64_t n = n_at(0), k = n_at(1);
      float *x = r->f(n), *residual = r->f(n);
      r->bytes.resize(topk_bytes(k) + ops.topk_scratch_bytes(n));
      void* payload = r->bytes.data();
      void* scratch = r->bytes.data() + topk_bytes(k);
      ops.encode_topk_with_feedback(payload, x, residual, n, k, scratch);
      if (call.op == StepOp::encode_topk) {
        r->run = [&ops, payload, x, residual, n, k, scratch] {
          ops.encode_topk_with_feedback(payload, x, residual, n, k, scratch);
        };
      } else {
        r->run = [&ops, x, payload, k, n] { ops.add_topk(x, payload, k, n); };
      }
      break;
    }
  }
  return r;
}

// A call ready to be timed on this rank: its buffers, and how many calls
// make a sample of about a millisecond, well above the clock's grain (from
// one untimed call, which also warms caches and page tables).
struct TimedCall {
  std::unique_ptr<CallRunner> runner;
  int batch = 1;
  std::vector<double> per_call;  // seconds per call of each sample
};

TimedCall prepare(Ops& ops, const OpCall& call) {
  TimedCall timed;
  timed.runner = make_runner(ops, call);
  const auto warm = Clock::now();
  timed.runner->run();
  const double once = std::max(seconds_since(warm), 1e-7);
  timed.batch = std::clamp(static_cast<int>(1e-3 / once), 1, 10000);
  return timed;
}

void take_sample(TimedCall& timed) {
  const auto start = Clock::now();
  for (int i = 0; i < timed.batch; ++i) timed.runner->run();
  timed.per_call.push_back(seconds_since(start) / timed.batch);
}

// The slowest rank's value.
double slowest(double value) {
  double result = value;
  MPI_Allreduce(&value, &result, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return result;
}

// ---------------------------------------------------------------------------
// The fallback rates and the link
// ---------------------------------------------------------------------------

// Bytes/s of a streaming triad: read b and c, write a (12 bytes per element).
double memory_rate(int samples) {
  const size_t n = size_t{4} << 20;  // 16 MiB per array: well past the caches
  std::vector<float> a(n, 0.0f), b(n, 1.0f), c(n, 2.0f);
  std::vector<double> seconds;
  for (int s = 0; s <= samples; ++s) {
    const auto start = Clock::now();
    float* out = a.data();
    const float* x = b.data();
    const float* y = c.data();
    for (size_t i = 0; i < n; ++i) out[i] = x[i] + 0.5f * y[i];
    if (s > 0) seconds.push_back(seconds_since(start));  // the first one warms the pages
  }
  volatile float sink = a[n / 2];  // keeps the loop from being optimized away
  (void)sink;
  return 3.0 * sizeof(float) * n / spread_of(seconds).median;
}

struct LinkRates {
  double latency_s;
  double bytes_per_s;
};

// Ranks 0 and 1 through the communicator trials use, all ranks on one node.
// Latency: a one-float broadcast from 0 to 1 and back is two messages, timed
// in batches of round trips. Bandwidth: a two-member all-gather where each
// rank sends half of the data, one message each way at once:
// bytes / (time - latency).
LinkRates link_rates(int world, int rank, int batches, int samples) {
  Topology topology;
  topology.world = world;
  topology.node_of_rank.assign(world, 0);
  Arena arena;
  const std::unique_ptr<Communicator> comm = make_mpi_communicator(
      topology, arena, std::chrono::milliseconds(static_cast<int64_t>(kDefaultCommTimeoutS * 1000)));
  LinkRates rates{0, 0};
  if (rank > 1) return rates;
  const Group pair = {0, 1};
  constexpr int kRoundTripsPerBatch = 100;
  float value = 1.0f;
  std::vector<double> batch_seconds;
  for (int b = 0; b <= batches; ++b) {
    const auto start = Clock::now();
    for (int i = 0; i < kRoundTripsPerBatch; ++i) {
      comm->broadcast(&value, 1, 0, pair);
      comm->broadcast(&value, 1, 1, pair);
    }
    if (b > 0) batch_seconds.push_back(seconds_since(start));
  }
  rates.latency_s = spread_of(batch_seconds).median / (2.0 * kRoundTripsPerBatch);

  const uint64_t n = uint64_t{8} << 20;  // floats in all; each rank sends its 16 MiB half
  const Partition halves = Partition::even(n, 2);
  std::vector<float> full(n, 1.0f);
  const std::vector<float> mine(halves.size(rank), 2.0f);
  std::vector<double> seconds;
  for (int s = 0; s <= samples; ++s) {
    const auto start = Clock::now();
    comm->all_gather(mine.data(), full.data(), halves, pair);
    if (s > 0) seconds.push_back(seconds_since(start));
  }
  const double sent = static_cast<double>(halves.size(rank) * sizeof(float));
  rates.bytes_per_s = sent / std::max(spread_of(seconds).median - rates.latency_s, 1e-9);
  return rates;
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(argc, argv);
  const bool is_root = mpi.rank() == 0;

  CLI::App app{"memfront-calibrate: time this machine's step calls for the cost model (run under mpirun -np 2)"};
  app.set_version_flag("--version", "memfront-calibrate " MEMFRONT_VERSION);
  std::string out_path, configs_path;
  bool quick = false, allow_loaded = false;
  app.add_option("--out", out_path, "write the calibration (JSON) here")->required();
  app.add_option("--configs", configs_path, "time the calls of these configs (a JSON array); default: built-in ones");
  app.add_flag("--quick", quick, "fewer samples (a few seconds)");
  app.add_flag("--allow-loaded", allow_loaded, "write the figures even when the machine was busy (marked loaded)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : code(ExitCode::bad_input);
  }
  std::vector<OpCall> calls;
  try {
    calls = distinct_calls(configs_path.empty() ? built_in_configs() : configs_from_file(configs_path));
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "memfront-calibrate: %s\n", e.what());
    return code(ExitCode::bad_input);
  }
  openblas_set_num_threads(1);
  const std::unique_ptr<Ops> ops = make_cpu_ops();

  const std::optional<double> load_before = load_average();
  const CpuCounters cpu_before = read_cpu_counters();
  const auto start = Clock::now();

  Calibration calibration;
  const int samples = quick ? 3 : 15;
  double gemm_flops = 0, gemm_s = 0, attention_flops = 0, attention_s = 0;
  // Samples in passes over every call, one sample of each per pass, so that a
  // change in the machine's state falls on every call alike; every rank
  // takes the same sample at once.
  std::vector<TimedCall> timed;
  for (const OpCall& call : calls) timed.push_back(prepare(*ops, call));
  for (int pass = 0; pass < samples; ++pass) {
    for (TimedCall& t : timed) {
      MPI_Barrier(MPI_COMM_WORLD);
      take_sample(t);
    }
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    const OpCall& call = calls[i];
    const Spread spread = spread_of(timed[i].per_call);
    OpTiming timing{call, slowest(spread.median), slowest(spread.p10), slowest(spread.p90), samples};
    if (step_op_work(call.op) == StepOpWork::gemm_flops) {
      gemm_flops += call.work();
      gemm_s += timing.median_s;
    } else if (step_op_work(call.op) == StepOpWork::attention_flops) {
      attention_flops += call.work();
      attention_s += timing.median_s;
    }
    calibration.ops.push_back(std::move(timing));
  }
  timed.clear();
  if (gemm_s > 0) calibration.gemm_flops_per_s = gemm_flops / gemm_s;
  if (attention_s > 0) calibration.attention_flops_per_s = attention_flops / attention_s;
  calibration.memory_bytes_per_s = 1.0 / slowest(1.0 / memory_rate(quick ? 5 : 21));
  if (mpi.world() > 1) {
    const LinkRates link = link_rates(mpi.world(), mpi.rank(), quick ? 5 : 41, quick ? 3 : 9);
    calibration.link_latency_s = link.latency_s;
    calibration.link_bytes_per_s = link.bytes_per_s;
    MPI_Bcast(&calibration.link_latency_s, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Bcast(&calibration.link_bytes_per_s, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  }

  const double wall_s = seconds_since(start);
  const CpuCounters cpu_after = read_cpu_counters();
  const double delay_share = slowest(
      cpu_after.has_run_delay && cpu_before.has_run_delay ? (cpu_after.run_delay_s - cpu_before.run_delay_s) / wall_s
                                                          : 0.0);
  if (!is_root) return 0;

  calibration.measured = true;
  calibration.host = detect_machine().host;
  calibration.created = utc_now();
  calibration.load_before = load_before.value_or(0);
  calibration.load_after = load_average().value_or(0);
  calibration.run_delay_share = delay_share;
  calibration.loaded = delay_share > kContendedRunDelayFraction;
  if (calibration.loaded && !allow_loaded) {
    std::fprintf(stderr,
                 "memfront-calibrate: the machine was busy: the ranks waited for a CPU %.0f%% of the time (load "
                 "average %.2f before, %.2f after; more than %.0f%% disturbs the rates); nothing written to %s. "
                 "Calibrate on a quiet machine, or pass --allow-loaded to keep the figures marked loaded\n",
                 100 * delay_share, calibration.load_before, calibration.load_after,
                 100 * kContendedRunDelayFraction, out_path.c_str());
    return code(ExitCode::failure);
  }
  try {
    save_calibration(out_path, calibration);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memfront-calibrate: %s: cannot write the calibration file: %s\n", out_path.c_str(), e.what());
    return code(ExitCode::bad_input);
  }
  std::printf("%-34s %-26s %12s %12s %12s\n", "call", "dims", "median us", "p10 us", "p90 us");
  for (const OpTiming& t : calibration.ops) {
    std::string name(to_string(t.call.op)), dims;
    if (step_op_has_format(t.call.op)) name += ":" + std::string(to_string(t.call.format));
    for (int64_t d : t.call.dims) dims += (dims.empty() ? "" : "x") + std::to_string(d);
    std::printf("%-34s %-26s %12.2f %12.2f %12.2f\n", name.c_str(), dims.c_str(), t.median_s * 1e6, t.p10_s * 1e6,
                t.p90_s * 1e6);
  }
  std::printf("GEMM          %8.2f GFLOP/s over the timed GEMM calls (one BLAS thread)\n",
              calibration.gemm_flops_per_s * 1e-9);
  std::printf("attention     %8.2f GFLOP/s over the timed attention calls\n", calibration.attention_flops_per_s * 1e-9);
  std::printf("memory        %8.2f GB/s (streaming triad)\n", calibration.memory_bytes_per_s * 1e-9);
  if (mpi.world() > 1) {
    std::printf("link          %8.2f us latency, %.2f GB/s (ranks 0 and 1, one node)\n",
                calibration.link_latency_s * 1e6, calibration.link_bytes_per_s * 1e-9);
  } else {
    std::printf("link          not measured with one rank: keeping the defaults, %.2f us and %.2f GB/s "
                "(run under mpirun -np 2 to measure it)\n",
                calibration.link_latency_s * 1e6, calibration.link_bytes_per_s * 1e-9);
  }
  if (calibration.loaded) {
    std::printf("WARNING: the machine was busy (ranks waited for a CPU %.0f%% of the time): figures marked loaded\n",
                100 * delay_share);
  }
  std::printf("%zu calls timed in %.1f s, load average %.2f before and %.2f after; wrote %s\n", calibration.ops.size(),
              wall_s, calibration.load_before, calibration.load_after, out_path.c_str());
  return 0;
}
