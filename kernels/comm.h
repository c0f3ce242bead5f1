#pragma once
// Communicator: the collectives one training step needs, between the ranks of
// a trial. memfront implements them itself over point-to-point messages (ring
// and hierarchical algorithms), so that every byte is counted where it is sent
// and split into intra-node and inter-node bytes.
//
// Conventions:
// - A Group lists world ranks; it is the ring order and always includes the
//   calling rank. Every member calls the same collective with the same
//   arguments (sizes, partition, root).
// - A Partition splits n elements into |group| contiguous shards; member i of
//   the group owns shard i. Partition::even gives shard i the elements
//   [i*n/g, (i+1)*n/g) (integer division): sizes differ by at most one and
//   nothing is padded (shard_offset in core/closed_forms.h, which the cost
//   model predicts with too).
// - Sums are deterministic: the same inputs give the same bits on every run,
//   and all_reduce_sum is reduce_scatter_sum followed by all_gather with the
//   same partition, so each element is summed in the same order by both.
// - Buffers the algorithms need (chunks in flight, received payloads) come from
//   the arena given at construction, category comm, so they are measured too.
// - Every wait has a deadline. A peer that does not answer in time (crashed,
//   hung) raises CommTimeout instead of hanging the trial.
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/topology.h"

namespace memfront {

using Group = std::vector<int>;

struct Partition {
  std::vector<uint64_t> offsets;  // shard i is [offsets[i], offsets[i+1]); size = shards + 1

  static Partition even(uint64_t n, int shards);
  int shards() const { return static_cast<int>(offsets.size()) - 1; }
  uint64_t begin(int shard) const { return offsets[shard]; }
  uint64_t size(int shard) const { return offsets[shard + 1] - offsets[shard]; }
  uint64_t total() const { return offsets.back(); }
};

// Bytes this rank has sent since construction (or the last reset), by link class.
struct CommCounters {
  uint64_t intra_node_bytes = 0;
  uint64_t inter_node_bytes = 0;
  uint64_t messages = 0;
  bool by_formula = false;  // bytes derived from the algorithm's formula (library collectives), not counted per message
};

class CommTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class CollectiveAlgorithm { flat, hierarchical };

// A group seen node by node, for the hierarchical algorithms of every
// communicator: nodes in the order of their lowest member.
struct NodeSplit {
  std::vector<int> leaders;               // each node's lowest group member (world rank), ascending: the ring across nodes
  std::vector<std::vector<int>> members;  // members[k]: group positions on leaders[k]'s node, by ascending rank
  int my_node = 0;                        // index into leaders and members of `rank`'s node
};
NodeSplit split_by_node(const Topology& topology, const Group& group, int rank);

// A deadline for the polling waits of every communicator, `timeout` after
// construction. pause() goes between two polls: it yields the core for the
// first millisecond of the wait, then sleeps 50 us, so that short waits stay
// fast and long ones leave the core to the ranks they wait for.
class DeadlinePoll {
 public:
  explicit DeadlinePoll(std::chrono::milliseconds timeout);
  bool expired() const;
  void pause() const;

 private:
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point deadline_;
};

// A timeout as CommTimeout messages state it: "1.5 s".
std::string seconds_text(std::chrono::milliseconds duration);

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual const Topology& topology() const = 0;
  Group world_group() const;

  // flat: rings over the group's members. hierarchical: inside each node first
  // (to and from the node's lowest group member, its leader), a ring over the
  // leaders across nodes, so that only leaders cross node boundaries.
  virtual void set_algorithm(CollectiveAlgorithm algorithm) = 0;

  // data (partition.total()) is summed over the group, in place.
  virtual void all_reduce_sum(float* data, const Partition& partition, const Group& group) = 0;
  // data (partition.total()) is this rank's contribution (it may be overwritten);
  // shard (partition.size(my index)) receives the group's sum of my shard.
  virtual void reduce_scatter_sum(float* data, float* shard, const Partition& partition, const Group& group) = 0;
  // shard (partition.size(my index)) is mine; full (partition.total()) receives every member's.
  virtual void all_gather(const float* shard, float* full, const Partition& partition, const Group& group) = 0;
  // Variable-size byte payloads: result[i] holds member i's payload (mine
  // included), in a buffer of exactly that many bytes from the arena (comm).
  virtual std::vector<Buffer> all_gather_bytes(const void* payload, uint64_t bytes, const Group& group) = 0;
  // payloads[i] (pointer, bytes) goes to member i (mine to myself); result[i]
  // holds what member i sent me.
  virtual std::vector<Buffer> all_to_all_bytes(const std::vector<std::pair<const void*, uint64_t>>& payloads,
                                               const Group& group) = 0;
  // data (n) of world rank `root` is copied to every member.
  virtual void broadcast(float* data, uint64_t n, int root, const Group& group) = 0;
  virtual void barrier() = 0;

  virtual const CommCounters& counters() const = 0;
  virtual void reset_counters() = 0;
};

// Over MPI point-to-point messages (MPI must be initialized; see mpi_session.h).
// On one host the nodes are virtual (`topology`, from the config) and a message
// between two of them is delayed by the emulated link; when MPI finds ranks on
// several machines, the real nodes are used and nothing is emulated.
std::unique_ptr<Communicator> make_mpi_communicator(const Topology& topology, Arena& arena,
                                                    std::chrono::milliseconds timeout);

// The topology a communicator counts by, for make_*_communicator: the real
// nodes (Topology::real) when MPI finds ranks on several machines, otherwise
// `configured`. Throws std::invalid_argument, naming `maker`, when its world
// is not MPI's. Collective over MPI_COMM_WORLD (detect_physical_nodes).
Topology communicator_topology(const Topology& configured, const std::string& maker);

}  // namespace memfront
