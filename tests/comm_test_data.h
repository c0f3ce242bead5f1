#pragma once
// Groups and data shared by the communicator tests (tests/test_comm.cpp for
// MPI, tests/gpu/test_nccl_comm.cpp for NCCL): every rank builds the same
// groups and knows every rank's contribution, so expected results are formed
// locally.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/comm.h"
#include "tests/mpi_test.h"

namespace comm_test {

using memfront::Group;
using memfront::Partition;

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
