#pragma once
// Placements, groups and data shared by the communicator tests (tests/test_comm.cpp for
// MPI, tests/gpu/test_nccl_comm.cpp for NCCL): every rank builds the same
// groups and knows every rank's contribution, so expected results are formed
// locally.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/topology.h"
#include "kernels/comm.h"
#include "tests/mpi_test.h"

namespace comm_test {

using memfront::Group;
using memfront::Partition;
using memfront::Topology;

// 1 and 7 leave shards empty or uneven; 1003 is not divisible by 2, 3, 4.
inline constexpr uint64_t kSizes[] = {1, 7, 1000, 1003};

struct Placement {
  int ranks_per_node;
  std::string order;  // "block" or "cyclic"
};

inline Topology topology_for(const Placement& placement, double link_latency_us = 5.0) {
  const std::string json = R"({"world": )" + std::to_string(memfront::testing_mpi::world_size()) +
                           R"(, "placement": {"ranks_per_node": )" + std::to_string(placement.ranks_per_node) +
                           R"(, "order": ")" + placement.order + R"(", "link_latency_us": )" +
                           std::to_string(link_latency_us) + "}}";
  return Topology::from_config(memfront::parse_config_text(json, "comm_test"));
}

// Every placement the world allows: each ranks_per_node that divides it, block and cyclic.
inline std::vector<Placement> all_placements() {
  const int world = memfront::testing_mpi::world_size();
  std::vector<Placement> placements;
  for (int per_node = 1; per_node <= world; ++per_node) {
    if (world % per_node != 0) continue;
    placements.push_back({per_node, "block"});
    placements.push_back({per_node, "cyclic"});
  }
  return placements;
}

// The world in ring order, the world reversed, me alone, and (for even worlds
// above 2) two interleaved halves as hybrid sharding would use.
inline std::vector<Group> groups_containing_me() {
  const int world = memfront::testing_mpi::world_size();
  const int me = memfront::testing_mpi::rank();
  Group forward, backward, half;
  for (int r = 0; r < world; ++r) forward.push_back(r);
  for (int r = world - 1; r >= 0; --r) backward.push_back(r);
  std::vector<Group> groups = {forward, backward, {me}};
  if (world % 2 == 0 && world > 2) {
    for (int r = me % 2; r < world; r += 2) half.push_back(r);
    groups.push_back(half);
  }
  return groups;
}

inline int position_of(int rank, const Group& group) {
  return static_cast<int>(std::find(group.begin(), group.end(), rank) - group.begin());
}

// Whole numbers: every order of summation gives the same float, so the
// expected sums can be formed locally in any order.
inline float whole_contribution(int rank, uint64_t i) {
  return static_cast<float>((rank + 1) * 1000 + static_cast<int>(i % 997));
}

inline std::vector<float> contribution_of(int rank, uint64_t n, float (*value)(int, uint64_t) = whole_contribution) {
  std::vector<float> data(n);
  for (uint64_t i = 0; i < n; ++i) data[i] = value(rank, i);
  return data;
}

inline std::vector<float> whole_sum_over(const Group& group, uint64_t n) {
  std::vector<float> sum(n, 0.0f);
  for (int member : group) {
    for (uint64_t i = 0; i < n; ++i) sum[i] += whole_contribution(member, i);
  }
  return sum;
}

inline std::vector<float> slice(const std::vector<float>& data, const Partition& partition, int shard) {
  return {data.begin() + static_cast<long>(partition.begin(shard)),
          data.begin() + static_cast<long>(partition.begin(shard) + partition.size(shard))};
}

inline std::vector<uint64_t> shard_bytes(const Partition& partition) {
  std::vector<uint64_t> bytes;
  for (int shard = 0; shard < partition.shards(); ++shard) bytes.push_back(partition.size(shard) * sizeof(float));
  return bytes;
}

}  // namespace comm_test
