// bench_gpu: the training step on the GPU (the CUDA backend of kernels/ops.h),
// and how close its kernels come to what the device can do, measured in the
// same run:
//   copy/d2d                          cudaMemcpyAsync device to device, 256 MiB: the
//                                     bandwidth the memory-bound kernels are held to
//   gemm/peak/<compute>               a 8192^3 GEMM through the backend (cuBLAS): the
//                                     FLOP rate the GEMM-heavy work is held to
//   layernorm/<shape>/{forward,backward}, quantize_rows/<shape>/<format>,
//   dequantize_rows/<shape>/<format>, encode_blockwise/<shape>/int8
//                                     memory-bound kernels: GB/s of bytes they must move
//   matmul/<shape>/fc/forward         the MLP's first GEMM, GFLOP/s
//   step/<shape>/<compute>            zero_grads + forward_backward + optimizer_step:
//                                     ms, tokens/s, GFLOP/s, arena peak
//   probes/medium/<probes>            the medium step with no probe, the host probe,
//                                     CUPTI activity records, and the Range Profiler
// After the benchmarks a summary gives each memory-bound kernel as a fraction
// of the copy bandwidth, each GEMM and step as a fraction of the GEMM peak, and
// each probe's step time as a ratio to the step without probes.
//
// Times are wall-clock (UseRealTime): every iteration ends with the stream
// drained. Without a GPU every benchmark is skipped with the reason.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/annotate.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/data.h"
#include "kernels/model.h"
#include "kernels/ops.h"
#include "kernels/param_layout.h"
#include "kernels/quantize.h"
#include "kernels/shard.h"
#include "probes/cupti_probe.h"
#include "probes/host_probe.h"

namespace {

using namespace memfront;

struct Shape {
  const char* name;
  ModelShape model;
  int micro_batch;
};

// medium: examples/medium.json. large: a GPT-2-small-like width and depth at a
// longer sequence, about 170M parameters.
const std::vector<Shape>& shapes() {
  static const std::vector<Shape> all = {
      {"medium", {.vocab = 2048, .seq = 128, .width = 256, .heads = 8, .layers = 6}, 8},
      {"large", {.vocab = 16384, .seq = 512, .width = 1024, .heads = 16, .layers = 12}, 8},
  };
  return all;
}

Config config_of(const Shape& shape, DType compute) {
  Config config;
  config.model = shape.model;
  config.batch.micro = shape.micro_batch;
  config.backend = Backend::cuda;
  config.precision.compute = compute;
  return config;
}

// Why this machine cannot run the benchmarks; empty when it can.
std::string missing_device() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) return std::string("no CUDA device: ") + cudaGetErrorString(status);
  return count == 0 ? "no CUDA device" : "";
}

// Rates the summary relates to each other (units per second), filled as the
// benchmarks run.
std::map<std::string, double>& rates() {
  static std::map<std::string, double> all;
  return all;
}

bool skip_without_gpu(benchmark::State& state) {
  const std::string missing = missing_device();
  if (missing.empty()) return false;
  state.SkipWithError(missing.c_str());
  return true;
}

// Runs `work` (which queues on ops) once per iteration, drains the stream,
// and reports the wall time of each as the iteration's time. `amount` is what
// one iteration moves or computes (bytes, FLOPs): it becomes the counter
// `unit` per second and the summary's rate under `key`.
template <class Work>
void timed_loop(benchmark::State& state, Ops& ops, const std::string& key, const char* unit, double amount,
                Work work) {
  work();  // warm-up: first-call library set-up and pool growth are not timed
  ops.synchronize();
  double total_seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    work();
    ops.synchronize();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(seconds);
    total_seconds += seconds;
  }
  state.counters[unit] = benchmark::Counter(amount, benchmark::Counter::kIsIterationInvariantRate,
                                            benchmark::Counter::kIs1000);
  if (total_seconds > 0) rates()[key] = amount * static_cast<double>(state.iterations()) / total_seconds;
}

// Random values in [-1, 1) uploaded into a fresh device array.
Buffer random_device_array(Ops& ops, Arena& arena, uint64_t n, const char* name, uint32_t seed) {
  std::vector<float> host(n);
  uint32_t x = seed;
  for (float& v : host) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<float>(x >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
  Buffer buffer = arena.allocate_array<float>(n, MemCategory::workspace, name);
  ops.upload(buffer.data(), host.data(), n * sizeof(float));
  return buffer;
}

// One rank's model on the GPU with one batch uploaded: step() is what a
// trial's timed step runs.
class GpuTraining {
 public:
  GpuTraining(const Config& config, Ops& ops)
      : arena_(0, ops.make_memory()),
        layout_(config.model),
        state_(config, layout_, arena_, nullptr, ops),
        model_(config, arena_, &state_) {
    const auto source = make_token_source(config);
    const int B = config.batch.micro, T = config.model.seq;
    const uint64_t tokens = uint64_t(B) * T;
    std::vector<int32_t> host_inputs(tokens), host_targets(tokens);
    fill_batch(*source, 0, B, T, host_inputs.data(), host_targets.data());
    inputs_ = arena_.allocate_array<int32_t>(tokens, MemCategory::workspace, "inputs");
    targets_ = arena_.allocate_array<int32_t>(tokens, MemCategory::workspace, "targets");
    ops.upload(inputs_.data(), host_inputs.data(), tokens * sizeof(int32_t));
    ops.upload(targets_.data(), host_targets.data(), tokens * sizeof(int32_t));
  }

  void step() {
    annotate::Range range(annotate::Phase::step);
    model_.zero_grads();
    model_.forward_backward(inputs_.as<int32_t>(), targets_.as<int32_t>(), 1.0f);
    model_.optimizer_step(++t_);
  }

  double flops() const { return model_.flops(); }
  uint64_t peak_bytes() const { return arena_.peak_total(); }

 private:
  Arena arena_;
  ParamLayout layout_;
  TrainingState state_;
  Gpt model_;
  Buffer inputs_, targets_;
  int t_ = 0;
};

void bench_copy(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  Config config;
  config.backend = Backend::cuda;
  auto ops = make_cuda_ops(config, 0);
  Arena arena(0, ops->make_memory());
  const uint64_t bytes = uint64_t(256) << 20;
  Buffer src = random_device_array(*ops, arena, bytes / sizeof(float), "copy.src", 1);
  Buffer dst = arena.allocate(bytes, MemCategory::workspace, "copy.dst");
  // A copy reads and writes every byte.
  timed_loop(state, *ops, "copy", "bytes_per_s", 2.0 * bytes, [&] { ops->copy(dst.data(), src.data(), bytes); });
}

void bench_gemm_peak(benchmark::State& state, DType compute) {
  if (skip_without_gpu(state)) return;
  Config config;
  config.backend = Backend::cuda;
  config.precision.compute = compute;
  auto ops = make_cuda_ops(config, 0);
  Arena arena(0, ops->make_memory());
  const int n = 8192;
  const uint64_t elements = uint64_t(n) * n;
  Buffer a = random_device_array(*ops, arena, elements, "a", 1);
  Buffer b = random_device_array(*ops, arena, elements, "b", 2);
  Buffer c = arena.allocate_array<float>(elements, MemCategory::workspace, "c");
  timed_loop(state, *ops, "gemm/" + std::string(to_string(compute)), "flop_per_s", 2.0 * n * n * double(n),
             [&] { ops->matmul_forward(c.as<float>(), a.as<float>(), b.as<float>(), nullptr, n, n, n); });
}

void bench_layernorm(benchmark::State& state, const Shape* shape, bool backward) {
  if (skip_without_gpu(state)) return;
  const Config config = config_of(*shape, DType::fp32);
  auto ops = make_cuda_ops(config, 0);
  Arena arena(0, ops->make_memory());
  const int N = shape->micro_batch * shape->model.seq, C = shape->model.width;
  const uint64_t NC = uint64_t(N) * C;
  Buffer inp = random_device_array(*ops, arena, NC, "inp", 1);
  Buffer dout = random_device_array(*ops, arena, NC, "dout", 2);
  Buffer weight = random_device_array(*ops, arena, C, "weight", 3);
  Buffer bias = random_device_array(*ops, arena, C, "bias", 4);
  Buffer out = arena.allocate_array<float>(NC, MemCategory::workspace, "out");
  Buffer mean = arena.allocate_array<float>(N, MemCategory::workspace, "mean");
  Buffer rstd = arena.allocate_array<float>(N, MemCategory::workspace, "rstd");
  Buffer dweight = arena.allocate_array<float>(C, MemCategory::workspace, "dweight");
  Buffer dbias = arena.allocate_array<float>(C, MemCategory::workspace, "dbias");
  ops->layernorm_forward(out.as<float>(), mean.as<float>(), rstd.as<float>(), inp.as<float>(), weight.as<float>(),
                         bias.as<float>(), N, C);
  const std::string key = std::string("layernorm/") + shape->name + (backward ? "/backward" : "/forward");
  if (!backward) {
    // Reads the input, writes the output: the least any implementation moves.
    timed_loop(state, *ops, key, "bytes_per_s", 2.0 * NC * sizeof(float), [&] {
      ops->layernorm_forward(out.as<float>(), mean.as<float>(), rstd.as<float>(), inp.as<float>(), weight.as<float>(),
                             bias.as<float>(), N, C);
    });
    return;
  }
  // Reads dout and inp, reads and writes dinp (it accumulates).
  timed_loop(state, *ops, key, "bytes_per_s", 4.0 * NC * sizeof(float), [&] {
    ops->layernorm_backward(out.as<float>(), dweight.as<float>(), dbias.as<float>(), dout.as<float>(), inp.as<float>(),
                            weight.as<float>(), mean.as<float>(), rstd.as<float>(), N, C);
  });
}

void bench_quantize(benchmark::State& state, const Shape* shape, DType format, bool dequantize) {
  if (skip_without_gpu(state)) return;
  const Config config = config_of(*shape, DType::fp32);
  auto ops = make_cuda_ops(config, 0);
  Arena arena(0, ops->make_memory());
  // The largest saved activation of a block: fc, N x 4C.
  const uint64_t rows = uint64_t(shape->micro_batch) * shape->model.seq, cols = 4 * uint64_t(shape->model.width);
  Buffer src = random_device_array(*ops, arena, rows * cols, "src", 1);
  Buffer codes = arena.allocate(row_quantized_data_bytes(format, rows, cols), MemCategory::workspace, "codes");
  Buffer scales = arena.allocate(std::max<uint64_t>(4, row_quantized_scale_bytes(format, rows)),
                                 MemCategory::workspace, "scales");
  float* scale_array = row_quantized_scale_bytes(format, rows) ? scales.as<float>() : nullptr;
  ops->quantize_rows(codes.data(), scale_array, src.as<float>(), rows, cols, format);
  const double bytes = static_cast<double>(rows * cols * sizeof(float) + codes.bytes());
  const std::string key = std::string(dequantize ? "dequantize_rows/" : "quantize_rows/") + shape->name + "/" +
                          std::string(to_string(format));
  if (dequantize) {
    timed_loop(state, *ops, key, "bytes_per_s", bytes,
               [&] { ops->dequantize_rows(src.as<float>(), codes.data(), scale_array, rows, cols, format); });
  } else {
    timed_loop(state, *ops, key, "bytes_per_s", bytes,
               [&] { ops->quantize_rows(codes.data(), scale_array, src.as<float>(), rows, cols, format); });
  }
}

void bench_matmul(benchmark::State& state, const Shape* shape, DType compute) {
  if (skip_without_gpu(state)) return;
  const Config config = config_of(*shape, compute);
  auto ops = make_cuda_ops(config, 0);
  Arena arena(0, ops->make_memory());
  const int N = shape->micro_batch * shape->model.seq, C = shape->model.width, OC = 4 * C;
  Buffer inp = random_device_array(*ops, arena, uint64_t(N) * C, "inp", 1);
  Buffer weight = random_device_array(*ops, arena, uint64_t(OC) * C, "weight", 2);
  Buffer bias = random_device_array(*ops, arena, OC, "bias", 3);
  Buffer out = arena.allocate_array<float>(uint64_t(N) * OC, MemCategory::workspace, "out");
  const std::string key = std::string("matmul/") + shape->name + "/" + std::string(to_string(compute));
  timed_loop(state, *ops, key, "flop_per_s", 2.0 * N * C * double(OC), [&] {
    ops->matmul_forward(out.as<float>(), inp.as<float>(), weight.as<float>(), bias.as<float>(), N, C, OC);
  });
}

void bench_step(benchmark::State& state, const Shape* shape, DType compute) {
  if (skip_without_gpu(state)) return;
  const Config config = config_of(*shape, compute);
  auto ops = make_cuda_ops(config, 0);
  GpuTraining training(config, *ops);
  const double flops_before = training.flops();
  training.step();
  const double flops_per_step = training.flops() - flops_before;
  const std::string key = std::string("step/") + shape->name + "/" + std::string(to_string(compute));
  timed_loop(state, *ops, key, "flop_per_s", flops_per_step, [&] { training.step(); });
  const double tokens = double(config.batch.micro) * config.model.seq;
  state.counters["tokens_per_s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["arena_peak_MiB"] = static_cast<double>(training.peak_bytes()) / (1 << 20);
  rates()[key + "/peak_bytes"] = static_cast<double>(training.peak_bytes());
}

// What listening costs on the GPU: the medium step with
//   none             no subscribers
//   host             the host probe's PhaseTimer, which every trial runs
//   cupti_activity   PhaseTimer + CUPTI activity records (a backend=cuda trial)
//   range_profiler   PhaseTimer + CUPTI + the Range Profiler on the step, as on a
//                    trial's last warmup step (one profiled step per probe, so a
//                    fresh probe each iteration, made and flushed outside the timing)
enum class GpuProbes { none, host, cupti_activity, range_profiler };

void bench_probed_step(benchmark::State& state, GpuProbes probes) {
  if (skip_without_gpu(state)) return;
  const Config config = config_of(shapes().front(), DType::fp32);
  auto ops = make_cuda_ops(config, 0);
  std::optional<PhaseTimer> timer;
  if (probes != GpuProbes::none) timer.emplace();
  std::optional<CuptiProbe> cupti;
  if (probes == GpuProbes::cupti_activity) cupti.emplace(annotate::now_ns(), CuptiProbe::Options{.profile_dram = false});
  GpuTraining training(config, *ops);
  auto step = [&] {
    training.step();
    ops->synchronize();
  };
  step();  // warm-up
  double total_seconds = 0;
  for (auto _ : state) {
    std::optional<CuptiProbe> profiler;
    if (probes == GpuProbes::range_profiler) profiler.emplace(annotate::now_ns());
    const auto start = std::chrono::steady_clock::now();
    if (profiler) profiler->begin_profiled_step();
    step();
    if (profiler) profiler->end_profiled_step();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(seconds);
    total_seconds += seconds;
    if (cupti) cupti->flush();
  }
  static const char* const names[] = {"none", "host", "cupti_activity", "range_profiler"};
  if (total_seconds > 0) {
    rates()[std::string("probes/") + names[static_cast<int>(probes)]] = total_seconds / state.iterations();
  }
}

void register_benchmarks() {
  auto add = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Unit(benchmark::kMillisecond);
  };
  add("copy/d2d", bench_copy);
  for (DType compute : {DType::fp32, DType::bf16}) {
    add("gemm/peak/" + std::string(to_string(compute)), [compute](benchmark::State& s) { bench_gemm_peak(s, compute); });
  }
  for (const Shape& shape : shapes()) {
    const Shape* p = &shape;
    const std::string name = shape.name;
    add("layernorm/" + name + "/forward", [p](benchmark::State& s) { bench_layernorm(s, p, false); });
    add("layernorm/" + name + "/backward", [p](benchmark::State& s) { bench_layernorm(s, p, true); });
    for (DType format : {DType::bf16, DType::fp8e4m3, DType::int8}) {
      const std::string f(to_string(format));
      add("quantize_rows/" + name + "/" + f, [p, format](benchmark::State& s) { bench_quantize(s, p, format, false); });
      add("dequantize_rows/" + name + "/" + f,
          [p, format](benchmark::State& s) { bench_quantize(s, p, format, true); });
    }
    for (DType compute : {DType::fp32, DType::bf16}) {
      const std::string c(to_string(compute));
      add("matmul/" + name + "/fc/forward/" + c, [p, compute](benchmark::State& s) { bench_matmul(s, p, compute); });
      add("step/" + name + "/" + c, [p, compute](benchmark::State& s) { bench_step(s, p, compute); });
    }
  }
  add("probes/medium/none", [](benchmark::State& s) { bench_probed_step(s, GpuProbes::none); });
  add("probes/medium/host", [](benchmark::State& s) { bench_probed_step(s, GpuProbes::host); });
  add("probes/medium/cupti_activity", [](benchmark::State& s) { bench_probed_step(s, GpuProbes::cupti_activity); });
  benchmark::RegisterBenchmark("probes/medium/range_profiler",
                               [](benchmark::State& s) { bench_probed_step(s, GpuProbes::range_profiler); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(5);  // each iteration makes a probe, which measures the copy bandwidth first
}

// Each memory-bound kernel against the copy; each GEMM and step against the
// GEMM peak of its compute type.
void print_summary() {
  const auto& r = rates();
  std::printf("\nsummary (same run)\n");
  if (!r.count("copy")) {
    std::printf("  nothing measured: %s\n", missing_device().c_str());
    return;
  }
  std::printf("  device-to-device copy: %.1f GB/s (bytes read + written)\n", r.at("copy") * 1e-9);
  for (const auto& [key, rate] : r) {
    if (key.starts_with("layernorm/") || key.starts_with("quantize_rows/") || key.starts_with("dequantize_rows/")) {
      std::printf("  %-32s %8.1f GB/s  %5.1f%% of copy bandwidth\n", key.c_str(), rate * 1e-9,
                  100.0 * rate / r.at("copy"));
    }
  }
  if (const auto none = r.find("probes/none"); none != r.end()) {
    std::printf("  probes on the medium step (seconds per step, ratio to none):");
    for (const char* probes : {"none", "host", "cupti_activity", "range_profiler"}) {
      if (const auto it = r.find(std::string("probes/") + probes); it != r.end()) {
        std::printf("  %s %.2f ms (%.2fx)", probes, it->second * 1e3, it->second / none->second);
      }
    }
    std::printf("\n");
  }
  for (const char* compute : {"fp32", "bf16"}) {
    const auto peak = r.find(std::string("gemm/") + compute);
    if (peak == r.end()) continue;
    std::printf("  GEMM peak (%s, 8192^3): %.1f TFLOP/s\n", compute, peak->second * 1e-12);
    for (const auto& [key, rate] : r) {
      if ((key.starts_with("matmul/") || key.starts_with("step/")) && key.ends_with(compute)) {
        std::printf("  %-32s %8.2f TFLOP/s  %5.1f%% of the GEMM peak", key.c_str(), rate * 1e-12,
                    100.0 * rate / peak->second);
        if (auto bytes = r.find(key + "/peak_bytes"); bytes != r.end()) {
          std::printf("   arena peak %.1f MiB", bytes->second / (1 << 20));
        }
        std::printf("\n");
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_summary();
  return 0;
}
