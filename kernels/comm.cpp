#include "kernels/comm.h"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <thread>

#include "core/closed_forms.h"
#include "kernels/mpi_session.h"

namespace memfront {

Partition Partition::even(uint64_t n, int shards) {
  if (shards < 1) throw std::invalid_argument("Partition::even: need at least one shard, got " + std::to_string(shards));
  const uint64_t g = static_cast<uint64_t>(shards);
  Partition partition;
  partition.offsets.resize(g + 1);
  for (uint64_t i = 0; i <= g; ++i) partition.offsets[i] = shard_offset(n, g, i);
  return partition;
}

Group Communicator::world_group() const {
  Group group(static_cast<size_t>(world()));
  std::iota(group.begin(), group.end(), 0);
  return group;
}

NodeSplit split_by_node(const Topology& topology, const Group& group, int rank) {
  std::vector<std::vector<int>> by_node(static_cast<size_t>(topology.node_count()));
  for (size_t position = 0; position < group.size(); ++position) {
    by_node[topology.node_of(group[position])].push_back(static_cast<int>(position));
  }
  NodeSplit split;
  for (std::vector<int>& positions : by_node) {
    if (positions.empty()) continue;
    std::sort(positions.begin(), positions.end(), [&](int a, int b) { return group[a] < group[b]; });
    split.members.push_back(std::move(positions));
  }
  std::sort(split.members.begin(), split.members.end(),
            [&](const std::vector<int>& a, const std::vector<int>& b) { return group[a.front()] < group[b.front()]; });
  for (size_t node = 0; node < split.members.size(); ++node) {
    split.leaders.push_back(group[split.members[node].front()]);
    if (topology.same_node(split.leaders.back(), rank)) split.my_node = static_cast<int>(node);
  }
  return split;
}

DeadlinePoll::DeadlinePoll(std::chrono::milliseconds timeout)
    : started_(std::chrono::steady_clock::now()), deadline_(started_ + timeout) {}

bool DeadlinePoll::expired() const { return std::chrono::steady_clock::now() >= deadline_; }

void DeadlinePoll::pause() const {
  if (std::chrono::steady_clock::now() - started_ < std::chrono::milliseconds(1)) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

std::string seconds_text(std::chrono::milliseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(duration.count()) / 1000.0);
  return text;
}

Topology communicator_topology(const Topology& configured, const std::string& maker) {
  std::vector<int> physical_nodes = detect_physical_nodes();
  const bool several_machines = std::any_of(physical_nodes.begin(), physical_nodes.end(), [](int node) { return node > 0; });
  Topology topology = several_machines ? Topology::real(std::move(physical_nodes)) : configured;
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (topology.world != world || static_cast<int>(topology.node_of_rank.size()) != world) {
    throw std::invalid_argument(maker + ": the topology is for world=" + std::to_string(topology.world) +
                                " but MPI runs " + std::to_string(world) + " ranks");
  }
  return topology;
}

}  // namespace memfront
