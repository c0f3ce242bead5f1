#include "core/topology.h"

#include <algorithm>

namespace memfront {

Topology Topology::from_config(const Config& config) {
  Topology t;
  t.world = config.world;
  const int per_node = config.placement.ranks_per_node;
  const int nodes = config.world / per_node;
  t.node_of_rank.resize(config.world);
  for (int r = 0; r < config.world; ++r) {
    switch (config.placement.order) {
      case PlacementOrder::block: t.node_of_rank[r] = r / per_node; break;
      case PlacementOrder::cyclic: t.node_of_rank[r] = r % nodes; break;
      case PlacementOrder::explicit_list: t.node_of_rank[r] = config.placement.node_of_rank[r]; break;
    }
  }
  t.emulated = nodes > 1;
  t.link_latency_s = config.placement.link_latency_us * 1e-6;
  t.link_bytes_per_s = config.placement.link_bandwidth_gbps * 1e9;
  return t;
}

Topology Topology::real(std::vector<int> node_of_rank) {
  Topology t;
  t.world = static_cast<int>(node_of_rank.size());
  t.node_of_rank = std::move(node_of_rank);
  return t;
}

int Topology::node_count() const {
  return node_of_rank.empty() ? 0 : *std::max_element(node_of_rank.begin(), node_of_rank.end()) + 1;
}

std::vector<int> Topology::ranks_on(int node) const {
  std::vector<int> ranks;
  for (int r = 0; r < world; ++r) {
    if (node_of_rank[r] == node) ranks.push_back(r);
  }
  return ranks;
}

int Topology::leader(int node) const {
  for (int r = 0; r < world; ++r) {
    if (node_of_rank[r] == node) return r;
  }
  return -1;
}

std::string Topology::describe() const {
  // Appended piece by piece: g++ 12 misreports `"x" + std::to_string(...)` (-Wrestrict).
  std::string text = std::to_string(node_count());
  text += node_count() == 1 ? " node [" : " nodes [";
  for (int r = 0; r < world; ++r) {
    if (r) text += ' ';
    text += std::to_string(node_of_rank[r]);
  }
  text += "]";
  text += emulated ? " (virtual nodes, emulated link)" : "";
  return text;
}

}  // namespace memfront
