#pragma once
// Topology: which node each rank runs on, from the placement knobs.
//
// On one host the nodes are virtual: ranks are grouped as placement says, and
// messages between groups pay an emulated link (Communicator). On a cluster
// the nodes are real, found by the communicator, and nothing is emulated.
#include <string>
#include <vector>

#include "core/config.h"

namespace memfront {

struct Topology {
  int world = 1;
  std::vector<int> node_of_rank;  // node index of each rank, 0..node_count()-1
  bool emulated = false;          // virtual nodes on one host, with an emulated link between them
  double link_latency_s = 0;      // emulated link, per message
  double link_bytes_per_s = 0;    // emulated link bandwidth

  // Virtual nodes from config.placement: `block` puts ranks r*rpn .. r*rpn+rpn-1
  // on node r, `cyclic` puts rank r on node r % nodes, an explicit list is taken
  // as it is. Emulated when there is more than one node.
  static Topology from_config(const Config& config);
  // Real nodes: node_of_rank as found on the machine (e.g. MPI shared-memory
  // split); nothing emulated.
  static Topology real(std::vector<int> node_of_rank);

  int node_count() const;
  int node_of(int rank) const { return node_of_rank[rank]; }
  bool same_node(int a, int b) const { return node_of_rank[a] == node_of_rank[b]; }
  std::vector<int> ranks_on(int node) const;  // ascending
  int leader(int node) const;                  // lowest rank on the node
  std::string describe() const;                // "2 nodes x 2 ranks (block, emulated)"-style line
};

}  // namespace memfront
