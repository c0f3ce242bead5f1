// bench_step: throughput of the CPU training step and of each of its ops, and
// how the step compares, in the same run, with raw OpenBLAS sgemm of the GEMM
// shapes it runs.
//
// Benchmarks, for each model shape (small, medium):
//   matmul/<shape>/<gemm>/{forward,backward}       cpu::matmul_forward/backward
//   sgemm/<shape>/<gemm>/{forward,backward_dinp,backward_dweight}
//                                                  cblas_sgemm called exactly as those ops call it
//   <op>/<shape>/{forward,backward}                layernorm, attention, attention_topk, gelu,
//                                                  softmax_crossentropy
//   step/<shape>/<variant>                         zero_grads + forward_backward + optimizer_step
// Rates come as counters: GFLOP/s for the ops ops.h gives a FLOP count for, GB/s
// for the others, GFLOP/s (from the model's own flops() counter) and tokens/s
// for the steps.
//
// After the benchmarks, a summary holds each step's GFLOP/s against the sgemm
// rate of its GEMMs: the ratio says how much of raw BLAS speed the step keeps.
//
// Rates are per CPU second of the benchmark thread (Google Benchmark's default).
// With one BLAS thread that is the wall time minus what other processes took,
// which keeps the figures steady on a busy machine.
#include <cblas.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/arena.h"
#include "core/config.h"
#include "kernels/cpu/ops.h"
#include "kernels/data.h"
#include "kernels/model.h"

namespace {

using namespace memfront;

// ---------------------------------------------------------------------------
// The model shapes
// ---------------------------------------------------------------------------

Config model_config(int vocab, int seq, int width, int heads, int layers, int micro_batch) {
  Config config;
  config.model.vocab = vocab;
  config.model.seq = seq;
  config.model.width = width;
  config.model.heads = heads;
  config.model.layers = layers;
  config.batch.micro = micro_batch;
  return config;
}

struct NamedConfig {
  std::string name;
  Config config;
};

// Every benchmark runs on each of these; all other knobs are Config's defaults
// (fp32, no checkpointing, dense attention).
const std::vector<NamedConfig> kShapes = {
    {"small", model_config(/*V=*/256, /*T=*/64, /*C=*/64, /*H=*/4, /*L=*/4, /*B=*/4)},
    {"medium", model_config(/*V=*/2048, /*T=*/128, /*C=*/256, /*H=*/8, /*L=*/6, /*B=*/8)},
};

// Sizes of the ops of one shape, in ops.h's letters.
struct Dims {
  explicit Dims(const Config& config)
      : B(config.batch.micro),
        T(config.model.seq),
        C(config.model.width),
        NH(config.model.heads),
        V(config.model.vocab),
        N(B * T),
        K(T / 4) {}
  int B, T, C, NH, V;
  int N;  // rows: B*T
  int K;  // keys per query in Top-K attention (the op benchmarks and the top-K step)
};

// One matmul of the model: out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias.
struct Matmul {
  std::string name;
  int N, C, OC;
  bool has_bias;
  int forward_calls;   // per training step
  int backward_calls;  // per training step
};

// The matmuls a training step runs, as kernels/model.cpp calls them. With
// checkpointing, backward recomputes every block's forward once more; the LM
// head (tied to wte, no bias) is not recomputed.
std::vector<Matmul> step_matmuls(const Config& config) {
  const Dims d(config);
  const int L = config.model.layers;
  const int block_forward_calls = config.checkpoint.every > 0 ? 2 * L : L;
  return {
      {"qkv", d.N, d.C, 3 * d.C, true, block_forward_calls, L},
      {"attn_proj", d.N, d.C, d.C, true, block_forward_calls, L},
      {"fc", d.N, d.C, 4 * d.C, true, block_forward_calls, L},
      {"fc_proj", d.N, 4 * d.C, d.C, true, block_forward_calls, L},
      {"lm_head", d.N, d.C, d.V, false, 1, 1},
  };
}

// The step variants: the fp32 dense baseline and one memory knob turned at a time.
std::vector<NamedConfig> step_variants(const Config& base) {
  Config checkpointed = base;
  checkpointed.checkpoint.every = 1;
  Config int8_activations = base;
  int8_activations.precision.activations = DType::int8;
  Config topk = base;
  topk.topk.attention = Dims(base).K;
  return {
      {"dense_fp32", base},
      {"checkpoint_every_1", checkpointed},
      {"int8_activations", int8_activations},
      {"topk_attention_" + std::to_string(topk.topk.attention), topk},
  };
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

constexpr const char* kGflopsCounter = "GFLOP/s";
constexpr const char* kGigabytesCounter = "GB/s";
constexpr const char* kTokensCounter = "tokens/s";

// Google Benchmark divides a rate counter by the measured seconds, so each of
// these passes the total over all iterations.
void report_gflops(benchmark::State& state, double flops_per_call) {
  state.counters[kGflopsCounter] =
      benchmark::Counter(flops_per_call * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

void report_gigabytes(benchmark::State& state, double bytes_per_call) {
  state.counters[kGigabytesCounter] =
      benchmark::Counter(bytes_per_call * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

// Bytes that the memory-bound ops read and write per call: each array counted
// once (what must cross the memory system at least), whatever the op's passes
// over a row that stay in cache. An array an op adds into (+=) is read and
// written, so counted twice. Floats and int32 targets are 4 bytes. At these
// shapes most working sets fit in the L2 cache, so GB/s is mostly cache
// bandwidth, not DRAM bandwidth.
constexpr double kBytesPerValue = 4.0;

// Reads inp (N,C), weight, bias (C each); writes out (N,C), mean, rstd (N each).
double layernorm_forward_bytes(const Dims& d) {
  return kBytesPerValue * (2.0 * d.N * d.C + 2.0 * d.C + 2.0 * d.N);
}

// Reads dout, inp (N,C each), weight (C), mean, rstd (N each); adds into
// dinp (N,C), dweight, dbias (C each).
double layernorm_backward_bytes(const Dims& d) {
  return kBytesPerValue * (2.0 * d.N * d.C + d.C + 2.0 * d.N + 2.0 * (d.N * d.C + 2.0 * d.C));
}

// Reads inp (n); writes out (n).
double gelu_forward_bytes(uint64_t n) { return kBytesPerValue * 2.0 * static_cast<double>(n); }

// Reads inp, dout (n each); adds into dinp (n).
double gelu_backward_bytes(uint64_t n) { return kBytesPerValue * 4.0 * static_cast<double>(n); }

// Reads logits (N,V), targets (N); writes probs (N,V), losses (N).
double softmax_crossentropy_forward_bytes(const Dims& d) {
  return kBytesPerValue * (2.0 * d.N * d.V + 2.0 * d.N);
}

// Reads probs (N,V), targets (N); writes dlogits (N,V).
double softmax_crossentropy_backward_bytes(const Dims& d) {
  return kBytesPerValue * (2.0 * d.N * d.V + d.N);
}

// ---------------------------------------------------------------------------
// Arrays for the ops
// ---------------------------------------------------------------------------

// `count` floats, uniform in [-1, 1) from a fixed seed: ordinary finite values,
// the same in every run.
Buffer random_floats(Arena& arena, uint64_t count, std::string_view name) {
  Buffer buffer = arena.allocate_array<float>(count, MemCategory::workspace, name);
  uint64_t state = 1;
  float* values = buffer.as<float>();
  for (uint64_t i = 0; i < count; i++) values[i] = static_cast<float>(2.0 * uniform01(state) - 1.0);
  return buffer;
}

// `count` zeros: the start of a gradient that backward adds into.
Buffer zero_floats(Arena& arena, uint64_t count, std::string_view name) {
  Buffer buffer = arena.allocate_array<float>(count, MemCategory::workspace, name);
  float* values = buffer.as<float>();
  for (uint64_t i = 0; i < count; i++) values[i] = 0.0f;
  return buffer;
}

// `count` token ids, uniform in [0, vocab) from a fixed seed.
Buffer random_tokens(Arena& arena, uint64_t count, int vocab, std::string_view name) {
  Buffer buffer = arena.allocate_array<int32_t>(count, MemCategory::workspace, name);
  uint64_t state = 1;
  int32_t* tokens = buffer.as<int32_t>();
  for (uint64_t i = 0; i < count; i++) tokens[i] = static_cast<int32_t>(splitmix64(state) % vocab);
  return buffer;
}

// Every array one matmul reads or writes, forward and backward.
struct MatmulArrays {
  MatmulArrays(Arena& arena, const Matmul& m)
      : inp(random_floats(arena, uint64_t(m.N) * m.C, "inp")),
        weight(random_floats(arena, uint64_t(m.OC) * m.C, "weight")),
        bias(random_floats(arena, m.OC, "bias")),
        out(zero_floats(arena, uint64_t(m.N) * m.OC, "out")),
        dout(random_floats(arena, uint64_t(m.N) * m.OC, "dout")),
        dinp(zero_floats(arena, uint64_t(m.N) * m.C, "dinp")),
        dweight(zero_floats(arena, uint64_t(m.OC) * m.C, "dweight")),
        dbias(zero_floats(arena, m.OC, "dbias")) {}
  Buffer inp, weight, bias, out, dout, dinp, dweight, dbias;
};

// ---------------------------------------------------------------------------
// Matmul and raw sgemm
// ---------------------------------------------------------------------------

void bench_matmul_forward(benchmark::State& state, const Matmul& m) {
  Arena arena;
  MatmulArrays a(arena, m);
  const float* bias = m.has_bias ? a.bias.as<float>() : nullptr;
  for (auto _ : state) {
    cpu::matmul_forward(a.out.as<float>(), a.inp.as<float>(), a.weight.as<float>(), bias, m.N,
                        m.C, m.OC);
  }
  report_gflops(state, cpu::matmul_forward_flops(m.N, m.C, m.OC));
}

void bench_matmul_backward(benchmark::State& state, const Matmul& m) {
  Arena arena;
  MatmulArrays a(arena, m);
  float* dbias = m.has_bias ? a.dbias.as<float>() : nullptr;
  for (auto _ : state) {
    cpu::matmul_backward(a.dinp.as<float>(), a.dweight.as<float>(), dbias, a.dout.as<float>(),
                         a.inp.as<float>(), a.weight.as<float>(), m.N, m.C, m.OC);
  }
  report_gflops(state, cpu::matmul_backward_flops(m.N, m.C, m.OC));
}

// The three GEMMs of a matmul, as kernels/cpu/ops.cpp issues them.
enum class GemmRole { forward, backward_dinp, backward_dweight };
constexpr GemmRole kGemmRoles[] = {GemmRole::forward, GemmRole::backward_dinp,
                                   GemmRole::backward_dweight};

const char* to_string(GemmRole role) {
  switch (role) {
    case GemmRole::forward: return "forward";
    case GemmRole::backward_dinp: return "backward_dinp";
    case GemmRole::backward_dweight: return "backward_dweight";
  }
  return "?";
}

void run_sgemm(GemmRole role, const Matmul& m, MatmulArrays& a) {
  switch (role) {
    case GemmRole::forward:  // out = inp @ weight^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m.N, m.OC, m.C, 1.0f,
                  a.inp.as<float>(), m.C, a.weight.as<float>(), m.C, 0.0f, a.out.as<float>(),
                  m.OC);
      break;
    case GemmRole::backward_dinp:  // dinp += dout @ weight
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m.N, m.C, m.OC, 1.0f,
                  a.dout.as<float>(), m.OC, a.weight.as<float>(), m.C, 1.0f, a.dinp.as<float>(),
                  m.C);
      break;
    case GemmRole::backward_dweight:  // dweight += dout^T @ inp
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m.OC, m.C, m.N, 1.0f,
                  a.dout.as<float>(), m.OC, a.inp.as<float>(), m.C, 1.0f, a.dweight.as<float>(),
                  m.C);
      break;
  }
}

// Each of the three GEMMs multiplies the same three extents N, C, OC, so each
// performs what ops.h counts for the forward one.
double gemm_flops(const Matmul& m) { return cpu::matmul_forward_flops(m.N, m.C, m.OC); }

void bench_sgemm(benchmark::State& state, const Matmul& m, GemmRole role) {
  Arena arena;
  MatmulArrays a(arena, m);
  for (auto _ : state) run_sgemm(role, m, a);
  report_gflops(state, gemm_flops(m));
}

std::string sgemm_benchmark_name(const std::string& shape, const Matmul& m, GemmRole role) {
  return "sgemm/" + shape + "/" + m.name + "/" + to_string(role);
}

// ---------------------------------------------------------------------------
// The other ops
// ---------------------------------------------------------------------------

void bench_layernorm_forward(benchmark::State& state, const Dims& d) {
  Arena arena;
  Buffer inp = random_floats(arena, uint64_t(d.N) * d.C, "inp");
  Buffer weight = random_floats(arena, d.C, "weight");
  Buffer bias = random_floats(arena, d.C, "bias");
  Buffer out = zero_floats(arena, uint64_t(d.N) * d.C, "out");
  Buffer mean = zero_floats(arena, d.N, "mean");
  Buffer rstd = zero_floats(arena, d.N, "rstd");
  for (auto _ : state) {
    cpu::layernorm_forward(out.as<float>(), mean.as<float>(), rstd.as<float>(), inp.as<float>(),
                           weight.as<float>(), bias.as<float>(), d.N, d.C);
  }
  report_gigabytes(state, layernorm_forward_bytes(d));
}

void bench_layernorm_backward(benchmark::State& state, const Dims& d) {
  Arena arena;
  Buffer inp = random_floats(arena, uint64_t(d.N) * d.C, "inp");
  Buffer weight = random_floats(arena, d.C, "weight");
  Buffer bias = random_floats(arena, d.C, "bias");
  Buffer out = zero_floats(arena, uint64_t(d.N) * d.C, "out");
  Buffer mean = zero_floats(arena, d.N, "mean");
  Buffer rstd = zero_floats(arena, d.N, "rstd");
  Buffer dout = random_floats(arena, uint64_t(d.N) * d.C, "dout");
  Buffer dinp = zero_floats(arena, uint64_t(d.N) * d.C, "dinp");
  Buffer dweight = zero_floats(arena, d.C, "dweight");
  Buffer dbias = zero_floats(arena, d.C, "dbias");
  // Backward needs the row statistics that forward saves.
  cpu::layernorm_forward(out.as<float>(), mean.as<float>(), rstd.as<float>(), inp.as<float>(),
                         weight.as<float>(), bias.as<float>(), d.N, d.C);
  for (auto _ : state) {
    cpu::layernorm_backward(dinp.as<float>(), dweight.as<float>(), dbias.as<float>(),
                            dout.as<float>(), inp.as<float>(), weight.as<float>(),
                            mean.as<float>(), rstd.as<float>(), d.N, d.C);
  }
  report_gigabytes(state, layernorm_backward_bytes(d));
}

void bench_attention_forward(benchmark::State& state, const Dims& d) {
  Arena arena;
  Buffer qkv = random_floats(arena, uint64_t(d.N) * 3 * d.C, "qkv");
  Buffer out = zero_floats(arena, uint64_t(d.N) * d.C, "out");
  Buffer probs = zero_floats(arena, uint64_t(d.B) * d.NH * d.T * d.T, "probs");
  for (auto _ : state) {
    cpu::attention_forward(out.as<float>(), probs.as<float>(), qkv.as<float>(), d.B, d.T, d.C,
                           d.NH);
  }
  report_gflops(state, cpu::attention_forward_flops(d.B, d.T, d.C, d.NH));
}

void bench_attention_backward(benchmark::State& state, const Dims& d) {
  Arena arena;
  Buffer qkv = random_floats(arena, uint64_t(d.N) * 3 * d.C, "qkv");
  Buffer out = zero_floats(arena, uint64_t(d.N) * d.C, "out");
  Buffer probs = zero_floats(arena, uint64_t(d.B) * d.NH * d.T * d.T, "probs");
  Buffer dout = random_floats(arena, uint64_t(d.N) * d.C, "dout");
  Buffer dqkv = zero_floats(arena, uint64_t(d.N) * 3 * d.C, "dqkv");
  Buffer scratch = zero_floats(arena, cpu::attention_scratch_floats(d.T), "scratch");
  // Backward needs the probabilities that forward saves.
  cpu::attention_forward(out.as<float>(), probs.as<float>(), qkv.as<float>(), d.B, d.T, d.C, d.NH);
  for (auto _ : state) {
    cpu::attention_backward(dqkv.as<float>(), dout.as<float>(), qkv.as<float>(),
                            probs.as<float>(), scratch.as<float>(), d.B, d.T, d.C, d.NH);
  }
  report_gflops(state, cpu::attention_backward_flops(d.B, d.T, d.C, d.NH));
}

void bench_attention_topk_forward(benchmark::State& state, const Dims& d) {
  Arena arena;
  const uint64_t kept = uint64_t(d.B) * d.NH * d.T * d.K;
  Buffer qkv = random_floats(arena, uint64_t(d.N) * 3 * d.C, "qkv");
  Buffer out = zero_floats(arena, uint64_t(d.N) * d.C, "out");
  Buffer vals = zero_floats(arena, kept, "vals");
  Buffer idx = arena.allocate_array<uint16_t>(kept, MemCategory::workspace, "idx");
  Buffer scratch = zero_floats(arena, cpu::attention_topk_scratch_floats(d.T), "scratch");
  for (auto _ : state) {
    cpu::attention_topk_forward(out.as<float>(), vals.as<float>(), idx.as<uint16_t>(),
                                qkv.as<float>(), scratch.as<float>(), d.B, d.T, d.C, d.NH, d.K);
  }
  report_gflops(state, cpu::attention_topk_forward_flops(d.B, d.T, d.C, d.NH, d.K));
}

void bench_attention_topk_backward(benchmark::State& state, const Dims& d) {
  Arena arena;
  const uint64_t kept = uint64_t(d.B) * d.NH * d.T * d.K;
  Buffer qkv = random_floats(arena, uint64_t(d.N) * 3 * d.C, "qkv");
  Buffer out = zero_floats(arena, uint64_t(d.N) * d.C, "out");
  Buffer vals = zero_floats(arena, kept, "vals");
  Buffer idx = arena.allocate_array<uint16_t>(kept, MemCategory::workspace, "idx");
  Buffer scratch = zero_floats(arena, cpu::attention_topk_scratch_floats(d.T), "scratch");
  Buffer dout = random_floats(arena, uint64_t(d.N) * d.C, "dout");
  Buffer dqkv = zero_floats(arena, uint64_t(d.N) * 3 * d.C, "dqkv");
  // Backward needs the kept weights and key indices that forward saves.
  cpu::attention_topk_forward(out.as<float>(), vals.as<float>(), idx.as<uint16_t>(),
                              qkv.as<float>(), scratch.as<float>(), d.B, d.T, d.C, d.NH, d.K);
  for (auto _ : state) {
    cpu::attention_topk_backward(dqkv.as<float>(), dout.as<float>(), qkv.as<float>(),
                                 vals.as<float>(), idx.as<uint16_t>(), scratch.as<float>(), d.B,
                                 d.T, d.C, d.NH, d.K);
  }
  report_gflops(state, cpu::attention_topk_backward_flops(d.B, d.T, d.C, d.NH, d.K));
}

// GELU runs on the MLP's hidden activations: N x 4C values.
uint64_t gelu_count(const Dims& d) { return uint64_t(d.N) * 4 * d.C; }

void bench_gelu_forward(benchmark::State& state, const Dims& d) {
  Arena arena;
  Buffer inp = random_floats(arena, gelu_count(d), "inp");
  Buffer out = zero_floats(arena, gelu_count(d), "out");
  for (auto _ : state) cpu::gelu_forward(out.as<float>(), inp.as<float>(), gelu_count(d));
  report_gigabytes(state, gelu_forward_bytes(gelu_count(d)));
}

void bench_gelu_backward(benchmark::State& state, const Dims& d) {
  Arena arena;
  Buffer inp = random_floats(arena, gelu_count(d), "inp");
  Buffer dout = random_floats(arena, gelu_count(d), "dout");
  Buffer dinp = zero_floats(arena, gelu_count(d), "dinp");
  for (auto _ : state) {
    cpu::gelu_backward(dinp.as<float>(), inp.as<float>(), dout.as<float>(), gelu_count(d));
  }
  report_gigabytes(state, gelu_backward_bytes(gelu_count(d)));
}

void bench_softmax_crossentropy_forward(benchmark::State& state, const Dims& d) {
  Arena arena;
  Buffer logits = random_floats(arena, uint64_t(d.N) * d.V, "logits");
  Buffer targets = random_tokens(arena, d.N, d.V, "targets");
  Buffer probs = zero_floats(arena, uint64_t(d.N) * d.V, "probs");
  Buffer losses = zero_floats(arena, d.N, "losses");
  for (auto _ : state) {
    cpu::softmax_crossentropy_forward(losses.as<float>(), probs.as<float>(), logits.as<float>(),
                                      targets.as<int32_t>(), d.N, d.V);
  }
  report_gigabytes(state, softmax_crossentropy_forward_bytes(d));
}

void bench_softmax_crossentropy_backward(benchmark::State& state, const Dims& d) {
  Arena arena;
  Buffer logits = random_floats(arena, uint64_t(d.N) * d.V, "logits");
  Buffer targets = random_tokens(arena, d.N, d.V, "targets");
  Buffer probs = zero_floats(arena, uint64_t(d.N) * d.V, "probs");
  Buffer losses = zero_floats(arena, d.N, "losses");
  Buffer dlogits = zero_floats(arena, uint64_t(d.N) * d.V, "dlogits");
  // Backward needs the probabilities that forward writes.
  cpu::softmax_crossentropy_forward(losses.as<float>(), probs.as<float>(), logits.as<float>(),
                                    targets.as<int32_t>(), d.N, d.V);
  const float mean_loss_weight = 1.0f / d.N;
  for (auto _ : state) {
    cpu::softmax_crossentropy_backward(dlogits.as<float>(), probs.as<float>(),
                                       targets.as<int32_t>(), mean_loss_weight, d.N, d.V);
  }
  report_gigabytes(state, softmax_crossentropy_backward_bytes(d));
}

// ---------------------------------------------------------------------------
// The whole step
// ---------------------------------------------------------------------------

// One micro-batch per step, as a trial with batch.accum = 1 runs it. The batch
// is filled once: the step's cost does not depend on which tokens it sees.
// One untimed step first, as a trial's warm-up: the first step runs on cold
// caches and faults in the pages of the activations it allocates.
void bench_step(benchmark::State& state, const Config& config) {
  const int B = config.batch.micro, T = config.model.seq;
  Arena arena;
  Gpt model(config, arena);
  Buffer inputs = arena.allocate_array<int32_t>(uint64_t(B) * T, MemCategory::workspace, "inputs");
  Buffer targets = arena.allocate_array<int32_t>(uint64_t(B) * T, MemCategory::workspace, "targets");
  const SyntheticTokens source(config.model.vocab, T, config.data.seed, config.data.noise);
  fill_batch(source, 0, B, T, inputs.as<int32_t>(), targets.as<int32_t>());

  int optimizer_steps = 0;
  auto step = [&] {
    model.zero_grads();
    model.forward_backward(inputs.as<int32_t>(), targets.as<int32_t>(), 1.0f);
    model.optimizer_step(++optimizer_steps);
  };
  step();

  const double flops_before = model.flops();
  for (auto _ : state) step();
  state.counters[kGflopsCounter] =
      benchmark::Counter((model.flops() - flops_before) / 1e9, benchmark::Counter::kIsRate);
  state.counters[kTokensCounter] = benchmark::Counter(
      double(B) * T * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

std::string step_benchmark_name(const std::string& shape, const std::string& variant) {
  return "step/" + shape + "/" + variant;
}

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

// Short enough that the whole program runs in about a minute on two cores.
constexpr double kOpMinSeconds = 0.1;
constexpr double kStepMinSeconds = 1.0;

template <class Function, class... Args>
void register_op(const std::string& name, Function function, const Args&... args) {
  benchmark::RegisterBenchmark(name.c_str(), function, args...)
      ->Unit(benchmark::kMicrosecond)
      ->MinTime(kOpMinSeconds);
}

void register_benchmarks() {
  for (const NamedConfig& shape : kShapes) {
    const std::string& s = shape.name;
    // Each matmul next to the raw sgemm calls it makes, so the two read side by side.
    for (const Matmul& m : step_matmuls(shape.config)) {
      const std::string matmul = "matmul/" + s + "/" + m.name;
      register_op(matmul + "/forward", bench_matmul_forward, m);
      register_op(sgemm_benchmark_name(s, m, GemmRole::forward), bench_sgemm, m, GemmRole::forward);
      register_op(matmul + "/backward", bench_matmul_backward, m);
      for (GemmRole role : {GemmRole::backward_dinp, GemmRole::backward_dweight}) {
        register_op(sgemm_benchmark_name(s, m, role), bench_sgemm, m, role);
      }
    }
    const Dims d(shape.config);
    register_op("layernorm/" + s + "/forward", bench_layernorm_forward, d);
    register_op("layernorm/" + s + "/backward", bench_layernorm_backward, d);
    register_op("attention/" + s + "/forward", bench_attention_forward, d);
    register_op("attention/" + s + "/backward", bench_attention_backward, d);
    register_op("attention_topk/" + s + "/forward", bench_attention_topk_forward, d);
    register_op("attention_topk/" + s + "/backward", bench_attention_topk_backward, d);
    register_op("gelu/" + s + "/forward", bench_gelu_forward, d);
    register_op("gelu/" + s + "/backward", bench_gelu_backward, d);
    register_op("softmax_crossentropy/" + s + "/forward", bench_softmax_crossentropy_forward, d);
    register_op("softmax_crossentropy/" + s + "/backward", bench_softmax_crossentropy_backward, d);
    for (const NamedConfig& variant : step_variants(shape.config)) {
      benchmark::RegisterBenchmark(step_benchmark_name(s, variant.name).c_str(), bench_step,
                                   variant.config)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(kStepMinSeconds);
    }
  }
}

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

// The usual console table, and each benchmark's counters kept for the summary.
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  using benchmark::ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override {
    benchmark::ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      // With --benchmark_repetitions the mean comes after the repetitions and
      // replaces them; the other aggregates are not rates.
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name != "mean") continue;
      // function_name is the registered name, without the "/min_time:..." suffix.
      counters_[run.run_name.function_name] = run.counters;
    }
  }

  // The value of `counter` in benchmark `name`, if that benchmark ran.
  std::optional<double> counter(const std::string& name, const std::string& counter) const {
    const auto run = counters_.find(name);
    if (run == counters_.end()) return std::nullopt;
    const auto value = run->second.find(counter);
    if (value == run->second.end()) return std::nullopt;
    return value->second.value;
  }

 private:
  std::map<std::string, benchmark::UserCounters> counters_;
};

// The rate the step's GEMMs would reach at raw sgemm speed: their total FLOPs
// over the time the measured sgemm rates give them (a FLOP-weighted harmonic
// mean of the rates), or nothing, with the number of sgemm benchmarks missing,
// if some did not run.
struct SgemmRate {
  std::optional<double> gflops;
  int missing = 0;
  int needed = 0;
};

SgemmRate step_sgemm_rate(const RecordingReporter& results, const std::string& shape,
                          const Config& config) {
  SgemmRate rate;
  double total_gflop = 0, total_seconds = 0;
  for (const Matmul& m : step_matmuls(config)) {
    for (GemmRole role : kGemmRoles) {
      rate.needed++;
      const auto gflops = results.counter(sgemm_benchmark_name(shape, m, role), kGflopsCounter);
      if (!gflops) {
        rate.missing++;
        continue;
      }
      const int calls = role == GemmRole::forward ? m.forward_calls : m.backward_calls;
      const double gflop = calls * gemm_flops(m) / 1e9;
      total_gflop += gflop;
      total_seconds += gflop / *gflops;
    }
  }
  if (rate.missing == 0) rate.gflops = total_gflop / total_seconds;
  return rate;
}

void print_summary(const RecordingReporter& results) {
  std::printf(
      "\nStep vs raw sgemm. sgemm GFLOP/s: the step's GEMMs (forward, recompute, backward)\n"
      "at the cblas_sgemm rates measured above, total GEMM FLOPs / total sgemm time.\n"
      "%-34s %13s %14s %7s\n",
      "step", "step GFLOP/s", "sgemm GFLOP/s", "ratio");
  for (const NamedConfig& shape : kShapes) {
    for (const NamedConfig& variant : step_variants(shape.config)) {
      const std::string step = step_benchmark_name(shape.name, variant.name);
      const auto step_gflops = results.counter(step, kGflopsCounter);
      const SgemmRate sgemm = step_sgemm_rate(results, shape.name, variant.config);
      if (!step_gflops) {
        std::printf("%-34s skipped: the step benchmark did not run\n", step.c_str());
      } else if (!sgemm.gflops) {
        std::printf("%-34s skipped: %d of the %d sgemm benchmarks it needs did not run\n",
                    step.c_str(), sgemm.missing, sgemm.needed);
      } else {
        std::printf("%-34s %13.2f %14.2f %7.3f\n", step.c_str(), *step_gflops, *sgemm.gflops,
                    *step_gflops / *sgemm.gflops);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // memfront runs one BLAS thread per rank by default (train.threads = 1).
  openblas_set_num_threads(1);
  // Which GEMM kernels OpenBLAS chose for this CPU: the sgemm rates depend on it.
  std::printf("%s (kernels: %s)\n", openblas_get_config(), openblas_get_corename());
  register_benchmarks();

  // The summary needs this console reporter, so --benchmark_format and
  // --benchmark_counters_tabular do not apply; --benchmark_out still writes
  // JSON or CSV beside it.
  RecordingReporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_Color
                                                   : benchmark::ConsoleReporter::OO_None);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_summary(reporter);
  benchmark::Shutdown();
  return 0;
}
