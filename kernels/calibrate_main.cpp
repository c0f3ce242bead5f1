// memfront-calibrate: measures, on this machine, the rates the cost model
// (tuner/cost_model.h) turns FLOPs and bytes into seconds, and writes them as
// a calibration file.
//
//   mpirun -np 2 memfront-calibrate --out calibration.json [--quick]
//
// Every rank measures with one BLAS thread, as trials run, and all ranks
// measure at once, as a trial's ranks compute at once; the slowest rank's
// rate is kept, since a step waits for its slowest rank. Measured:
// - GEMM: the kernels' matmul forward and backward on the GEMM shapes of the
//   medium step (bench_step's "medium": N = 1024 rows, C = 256, V = 2048),
//   FLOPs as the kernels count them;
// - attention: the kernels' dense attention forward and backward at that shape;
// - streaming memory bandwidth: a triad a = b + s*c over three 16 MiB arrays;
// - the intra-node link between ranks 0 and 1 through memfront's own
//   communicator: the latency of one small message (broadcasts back and
//   forth), then the bandwidth of a large all-gather (each rank sends 16 MiB).
// With one rank there is no link to measure: its fields keep the cost
// model's defaults, and the program says so.
//
// Rank 0 writes the file with core's Calibration (core/calibration.h), the
// format the cost model reads.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <mpi.h>

#include "core/arena.h"
#include "core/calibration.h"
#include "core/exit_code.h"
#include "core/results.h"
#include "core/time_limits.h"
#include "core/topology.h"
#include "kernels/comm.h"
#include "kernels/cpu/ops.h"
#include "kernels/mpi_session.h"

namespace {

using namespace memfront;
using Clock = std::chrono::steady_clock;

// The medium step's shape (bench/bench_step.cpp).
constexpr int kB = 8, kT = 128, kC = 256, kHeads = 8, kV = 2048;
constexpr int kN = kB * kT;

// Median wall time of `repeats` runs of `work`, after one untimed run that
// warms caches and page tables: the median, as trials report the median step.
double median_seconds(int repeats, const std::function<void()>& work) {
  work();
  std::vector<double> seconds;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    work();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::nth_element(seconds.begin(), seconds.begin() + repeats / 2, seconds.end());
  return seconds[repeats / 2];
}

std::vector<float> filled(size_t n, float value) { return std::vector<float>(n, value); }

// FLOP/s of the step's GEMMs: QKV, projection, FC, FC projection and the LM
// head, forward and backward, as cpu::matmul_forward/backward run them.
double gemm_rate(int repeats) {
  struct Shape {
    int in, out;
  };
  const std::vector<Shape> shapes = {{kC, 3 * kC}, {kC, kC}, {kC, 4 * kC}, {4 * kC, kC}, {kC, kV}};
  std::vector<std::vector<float>> inputs, weights, biases, outputs, dinputs, dweights, dbiases;
  double flops = 0;
  for (const Shape& s : shapes) {
    inputs.push_back(filled(size_t(kN) * s.in, 0.01f));
    weights.push_back(filled(size_t(s.out) * s.in, 0.02f));
    biases.push_back(filled(s.out, 0.0f));
    outputs.push_back(filled(size_t(kN) * s.out, 0.0f));
    dinputs.push_back(filled(size_t(kN) * s.in, 0.0f));
    dweights.push_back(filled(size_t(s.out) * s.in, 0.0f));
    dbiases.push_back(filled(s.out, 0.0f));
    flops += cpu::matmul_forward_flops(kN, s.in, s.out) + cpu::matmul_backward_flops(kN, s.in, s.out);
  }
  const double seconds = median_seconds(repeats, [&] {
    for (size_t i = 0; i < shapes.size(); ++i) {
      const Shape& s = shapes[i];
      cpu::matmul_forward(outputs[i].data(), inputs[i].data(), weights[i].data(), biases[i].data(), kN, s.in, s.out);
      cpu::matmul_backward(dinputs[i].data(), dweights[i].data(), dbiases[i].data(), outputs[i].data(),
                           inputs[i].data(), weights[i].data(), kN, s.in, s.out);
    }
  });
  return flops / seconds;
}

// FLOP/s of dense causal attention, forward and backward.
double attention_rate(int repeats) {
  std::vector<float> qkv(size_t(kN) * 3 * kC), dqkv(qkv.size(), 0.0f), out(size_t(kN) * kC), dout(out.size(), 0.01f);
  std::vector<float> probs(size_t(kB) * kHeads * kT * kT), scratch(cpu::attention_scratch_floats(kT));
  for (size_t i = 0; i < qkv.size(); ++i) qkv[i] = 0.01f * static_cast<float>(i % 97);
  const double flops =
      cpu::attention_forward_flops(kB, kT, kC, kHeads) + cpu::attention_backward_flops(kB, kT, kC, kHeads);
  const double seconds = median_seconds(repeats, [&] {
    cpu::attention_forward(out.data(), probs.data(), qkv.data(), kB, kT, kC, kHeads);
    cpu::attention_backward(dqkv.data(), dout.data(), qkv.data(), probs.data(), scratch.data(), kB, kT, kC, kHeads);
  });
  return flops / seconds;
}

// Bytes/s of a streaming triad: read b and c, write a (12 bytes per element).
double memory_rate(int repeats) {
  const size_t n = size_t{4} << 20;  // 16 MiB per array: well past the caches
  std::vector<float> a(n, 0.0f), b(n, 1.0f), c(n, 2.0f);
  const double seconds = median_seconds(repeats, [&] {
    float* out = a.data();
    const float* x = b.data();
    const float* y = c.data();
    for (size_t i = 0; i < n; ++i) out[i] = x[i] + 0.5f * y[i];
  });
  volatile float sink = a[n / 2];  // keeps the loop from being optimized away
  (void)sink;
  return 3.0 * sizeof(float) * n / seconds;
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
LinkRates link_rates(int world, int rank, int batches, int repeats) {
  Topology topology;
  topology.world = world;
  topology.node_of_rank.assign(world, 0);
  Arena arena;
  const std::unique_ptr<Communicator> comm = make_mpi_communicator(topology, arena, std::chrono::milliseconds(static_cast<int64_t>(kDefaultCommTimeoutS * 1000)));
  LinkRates rates{0, 0};
  if (rank > 1) return rates;
  const Group pair = {0, 1};
  constexpr int kRoundTripsPerBatch = 100;
  float value = 1.0f;
  const double batch_seconds = median_seconds(batches, [&] {
    for (int i = 0; i < kRoundTripsPerBatch; ++i) {
      comm->broadcast(&value, 1, 0, pair);
      comm->broadcast(&value, 1, 1, pair);
    }
  });
  rates.latency_s = batch_seconds / (2.0 * kRoundTripsPerBatch);

  const uint64_t n = uint64_t{8} << 20;  // floats in all; each rank sends its 16 MiB half
  const Partition halves = Partition::even(n, 2);
  std::vector<float> full(n, 1.0f);
  const std::vector<float> mine(halves.size(rank), 2.0f);
  const double seconds = median_seconds(repeats, [&] { comm->all_gather(mine.data(), full.data(), halves, pair); });
  const double sent = static_cast<double>(halves.size(rank) * sizeof(float));
  rates.bytes_per_s = sent / std::max(seconds - rates.latency_s, 1e-9);
  return rates;
}

// The slowest rank's value of a rate.
double slowest(double rate) {
  double result = rate;
  MPI_Allreduce(&rate, &result, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(argc, argv);
  const bool is_root = mpi.rank() == 0;

  CLI::App app{"memfront-calibrate: measure this machine's rates for the cost model (run under mpirun -np 2)"};
  app.set_version_flag("--version", "memfront-calibrate " MEMFRONT_VERSION);
  std::string out_path;
  bool quick = false;
  app.add_option("--out", out_path, "write the calibration (JSON) here")->required();
  app.add_flag("--quick", quick, "fewer repetitions (about 5 s instead of 20 s)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : code(ExitCode::bad_input);
  }
  openblas_set_num_threads(1);

  const int repeats = quick ? 3 : 9;
  const double gemm = slowest(gemm_rate(repeats));
  const double attention = slowest(attention_rate(repeats));
  const double memory = slowest(memory_rate(quick ? 5 : 21));
  // Without a second rank the link keeps the cost model's defaults.
  const Calibration defaults;
  LinkRates link{defaults.link_latency_s, defaults.link_bytes_per_s};
  if (mpi.world() > 1) link = link_rates(mpi.world(), mpi.rank(), quick ? 5 : 41, quick ? 3 : 9);
  if (!is_root) return 0;

  Calibration calibration;
  calibration.measured = true;
  calibration.host = detect_machine().host;
  calibration.created = utc_now();
  calibration.gemm_flops_per_s = gemm;
  calibration.attention_flops_per_s = attention;
  calibration.memory_bytes_per_s = memory;
  calibration.link_latency_s = link.latency_s;
  calibration.link_bytes_per_s = link.bytes_per_s;
  try {
    save_calibration(out_path, calibration);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memfront-calibrate: %s: cannot write the calibration file: %s\n", out_path.c_str(), e.what());
    return code(ExitCode::bad_input);
  }
  std::printf("GEMM          %8.2f GFLOP/s (one BLAS thread, the medium step's shapes)\n", gemm * 1e-9);
  std::printf("attention     %8.2f GFLOP/s\n", attention * 1e-9);
  std::printf("memory        %8.2f GB/s (streaming triad)\n", memory * 1e-9);
  if (mpi.world() > 1) {
    std::printf("link          %8.2f us latency, %.2f GB/s (ranks 0 and 1, one node)\n", link.latency_s * 1e6,
                link.bytes_per_s * 1e-9);
  } else {
    std::printf("link          not measured with one rank: keeping the defaults, %.2f us and %.2f GB/s "
                "(run under mpirun -np 2 to measure it)\n",
                link.latency_s * 1e6, link.bytes_per_s * 1e-9);
  }
  std::printf("wrote %s\n", out_path.c_str());
  return 0;
}
