#include "kernels/comm.h"

#include <numeric>

namespace memfront {

Partition Partition::even(uint64_t n, int shards) {
  if (shards < 1) throw std::invalid_argument("Partition::even: need at least one shard, got " + std::to_string(shards));
  // offsets[i] = i*n/shards, computed as i*q + i*r/shards (n = q*shards + r) so
  // that i*n cannot overflow for large n.
  const uint64_t g = static_cast<uint64_t>(shards);
  const uint64_t quotient = n / g, remainder = n % g;
  Partition partition;
  partition.offsets.resize(g + 1);
  for (uint64_t i = 0; i <= g; ++i) partition.offsets[i] = i * quotient + i * remainder / g;
  return partition;
}

Group Communicator::world_group() const {
  Group group(static_cast<size_t>(world()));
  std::iota(group.begin(), group.end(), 0);
  return group;
}

}  // namespace memfront
