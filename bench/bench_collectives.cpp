// bench_collectives: time and bytes of memfront's own collectives, in the
// manner of nccl-tests. Run it under mpirun:
//   mpirun -np 4 bench_collectives [--max-bytes 67108864]
//
// For each link (one node: plain shared memory; and, with an even world, two
// virtual nodes of W/2 ranks each, block placement, joined by an emulated
// 5 us / 10 GB/s link), each algorithm (flat ring, hierarchical) and each
// collective (all_reduce_sum, reduce_scatter_sum, all_gather), one row per
// message size from 4 KiB to 64 MiB (x4):
//   size      bytes of the whole vector (S), count = S / 4 floats
//   time      median over the timed iterations of the slowest rank's time
//   algbw     S / time
//   busbw     algbw x 2(W-1)/W for all-reduce, x (W-1)/W for reduce-scatter and
//             all-gather: the per-link rate, comparable across world sizes
//   intra, inter   bytes the busiest rank sent in one call, by link class
// Rank 0 prints.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/config.h"
#include "core/topology.h"
#include "kernels/comm.h"
#include "kernels/mpi_session.h"

using namespace memfront;

namespace {

constexpr uint64_t kMinBytes = 4 << 10;
constexpr uint64_t kDefaultMaxBytes = 64 << 20;
constexpr int kWarmupIterations = 2;
constexpr int kMinIterations = 3;
constexpr int kMaxIterations = 40;
// Timed iterations are chosen so that one row takes about this long.
constexpr double kSecondsPerRow = 0.25;
constexpr auto kTimeout = std::chrono::milliseconds(60000);

enum class Collective { all_reduce, reduce_scatter, all_gather };

const char* name_of(Collective collective) {
  switch (collective) {
    case Collective::all_reduce: return "all_reduce_sum";
    case Collective::reduce_scatter: return "reduce_scatter_sum";
    case Collective::all_gather: return "all_gather";
  }
  return "?";
}

// How much of the vector crosses each link, relative to S, in a ring.
double bus_factor(Collective collective, int world) {
  const double share = static_cast<double>(world - 1) / world;
  return collective == Collective::all_reduce ? 2 * share : share;
}

struct Link {
  const char* label;
  Topology topology;
};

Topology topology_from(const std::string& json) { return Topology::from_config(parse_config_text(json, "bench_collectives")); }

double max_over_ranks(double value) {
  double max = 0;
  MPI_Allreduce(&value, &max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return max;
}

uint64_t max_over_ranks(uint64_t value) {
  uint64_t max = 0;
  MPI_Allreduce(&value, &max, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  return max;
}

// The buffers of one message size, filled once: the values do not change the
// time, and all-reduce may keep summing into the same vector.
struct Buffers {
  std::vector<float> data, shard;
};

// One call, started together on every rank; returns the slowest rank's seconds.
double time_one_call(Communicator& comm, Collective collective, Buffers& buffers, const Partition& partition,
                     const Group& group) {
  MPI_Barrier(MPI_COMM_WORLD);
  const auto start = std::chrono::steady_clock::now();
  switch (collective) {
    case Collective::all_reduce: comm.all_reduce_sum(buffers.data.data(), partition, group); break;
    case Collective::reduce_scatter:
      comm.reduce_scatter_sum(buffers.data.data(), buffers.shard.data(), partition, group);
      break;
    case Collective::all_gather: comm.all_gather(buffers.shard.data(), buffers.data.data(), partition, group); break;
  }
  return max_over_ranks(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

void print_table_heading(bool print, const Link& link, CollectiveAlgorithm algorithm, Collective collective) {
  if (!print) return;
  std::printf("\n# %s, %s, %s\n", name_of(collective),
              algorithm == CollectiveAlgorithm::flat ? "flat ring" : "hierarchical", link.label);
  std::printf("%12s %12s %12s %11s %11s %14s %14s %6s\n", "size(B)", "count", "time(us)", "algbw(GB/s)",
              "busbw(GB/s)", "intra(B/rank)", "inter(B/rank)", "iters");
}

void run_row(Communicator& comm, Collective collective, uint64_t bytes, bool print) {
  const int world = comm.world();
  const Group group = comm.world_group();
  const uint64_t count = bytes / sizeof(float);
  const Partition partition = Partition::even(count, world);
  Buffers buffers;
  buffers.data.assign(count, 1.0f);
  buffers.shard.assign(partition.size(comm.rank()), 1.0f);

  double warmup_seconds = 0;
  for (int i = 0; i < kWarmupIterations; ++i) warmup_seconds = time_one_call(comm, collective, buffers, partition, group);
  // Every rank has the same slowest-rank warmup time, so they agree on the count.
  const int iterations = std::clamp(static_cast<int>(kSecondsPerRow / std::max(warmup_seconds, 1e-9)), kMinIterations,
                                    kMaxIterations);
  std::vector<double> seconds;
  for (int i = 0; i < iterations; ++i) {
    comm.reset_counters();
    seconds.push_back(time_one_call(comm, collective, buffers, partition, group));
  }
  std::nth_element(seconds.begin(), seconds.begin() + iterations / 2, seconds.end());
  const double median = seconds[iterations / 2];
  const uint64_t intra = max_over_ranks(comm.counters().intra_node_bytes);
  const uint64_t inter = max_over_ranks(comm.counters().inter_node_bytes);
  if (!print) return;
  const double algbw = static_cast<double>(bytes) / median / 1e9;
  std::printf("%12llu %12llu %12.1f %11.3f %11.3f %14llu %14llu %6d\n", static_cast<unsigned long long>(bytes),
              static_cast<unsigned long long>(count), median * 1e6, algbw, algbw * bus_factor(collective, world),
              static_cast<unsigned long long>(intra), static_cast<unsigned long long>(inter), iterations);
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(argc, argv);
  const int world = mpi.world();
  const bool print = mpi.rank() == 0;

  uint64_t max_bytes = kDefaultMaxBytes;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--max-bytes") == 0 && i + 1 < argc) {
      max_bytes = std::strtoull(argv[++i], nullptr, 10);
    } else {
      if (print) std::fprintf(stderr, "usage: bench_collectives [--max-bytes N]\n");
      return 2;
    }
  }

  std::vector<Link> links;
  const std::string world_json = R"({"world": )" + std::to_string(world);
  links.push_back({"1 node, no emulated link", topology_from(world_json + "}")});
  if (world % 2 == 0) {
    links.push_back({"2 virtual nodes x W/2 ranks (block), emulated link 5 us, 10 GB/s",
                     topology_from(world_json + R"(, "placement": {"ranks_per_node": )" + std::to_string(world / 2) +
                                   R"(, "order": "block", "link_latency_us": 5, "link_bandwidth_gigabytes_per_s": 10}})")});
  }
  if (print) {
    std::printf("# bench_collectives: %d ranks, %s\n", world, mpi.library_version().c_str());
    std::printf("# time: median of the slowest rank over the timed iterations, after %d warmup calls\n",
                kWarmupIterations);
    std::printf("# busbw = algbw x 2(W-1)/W (all-reduce) or (W-1)/W (reduce-scatter, all-gather)\n");
    std::printf("# intra, inter: bytes sent in one call by the busiest rank\n");
    if (world % 2 != 0) std::printf("# odd world: no two-node emulated link\n");
  }

  try {
    for (const Link& link : links) {
      Arena arena;
      auto comm = make_mpi_communicator(link.topology, arena, kTimeout);
      for (CollectiveAlgorithm algorithm : {CollectiveAlgorithm::flat, CollectiveAlgorithm::hierarchical}) {
        comm->set_algorithm(algorithm);
        for (Collective collective : {Collective::all_reduce, Collective::reduce_scatter, Collective::all_gather}) {
          print_table_heading(print, link, algorithm, collective);
          for (uint64_t bytes = kMinBytes; bytes <= max_bytes; bytes *= 4) run_row(*comm, collective, bytes, print);
        }
      }
    }
  } catch (const std::exception& error) {
    // A timeout or failure on one rank: end every rank rather than leave the others waiting.
    std::fprintf(stderr, "bench_collectives: %s\n", error.what());
    std::fflush(stderr);
    MpiSession::abort(1);
  }
  return 0;
}
