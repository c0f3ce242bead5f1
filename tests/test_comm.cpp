// The MPI communicator, under mpirun with 1 to 4 ranks: values of every
// collective, bitwise agreement of all-reduce and reduce-scatter, exact byte
// counts against the ring and hierarchical formulas, the emulated link's
// delays, timeouts, and the arena's comm category.
//
// Every rank runs every test and creates the same communicators in the same
// order (creation is collective).
#include <mpi.h>

#include <gtest/gtest.h>

#include "tests/comm_test_data.h"
#include "tests/mpi_test.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/config.h"
#include "core/topology.h"
#include "kernels/comm.h"
#include "kernels/mpi_session.h"

using namespace memfront;
using namespace comm_test;

namespace {

const auto& world_size = testing_mpi::world_size;
const auto& my_rank = testing_mpi::rank;

constexpr auto kTimeout = std::chrono::milliseconds(30000);

uint64_t sum_over_ranks(uint64_t value) {
  uint64_t sum = 0;
  MPI_Allreduce(&value, &sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  return sum;
}

std::string describe(const Placement& placement, CollectiveAlgorithm algorithm) {
  return std::to_string(placement.ranks_per_node) + " ranks/node " + placement.order + ", " +
         (algorithm == CollectiveAlgorithm::flat ? "flat" : "hierarchical");
}

// Fractions: different orders of summation give different bits.
float fractional_contribution(int rank, uint64_t i) {
  return static_cast<float>(std::sin(0.37 * static_cast<double>(i) + 1.3 * rank) * 1000.0 + 0.1);
}

// --- the byte formulas -------------------------------------------------------

struct Sent {
  uint64_t intra = 0, inter = 0, messages = 0;
  void add(const Topology& topology, int from, int to, uint64_t bytes) {
    if (bytes == 0) return;  // empty payloads are not sent
    (topology.same_node(from, to) ? intra : inter) += bytes;
    messages += 1;
  }
  void add(const Sent& other) {
    intra += other.intra;
    inter += other.inter;
    messages += other.messages;
  }
};

void expect_counters(const Communicator& comm, const Sent& expected, const std::string& what) {
  EXPECT_EQ(comm.counters().intra_node_bytes, expected.intra) << what;
  EXPECT_EQ(comm.counters().inter_node_bytes, expected.inter) << what;
  EXPECT_EQ(comm.counters().messages, expected.messages) << what;
}

// A ring member sends W-1 blocks to its successor: in reduce-scatter every
// chunk but its own (member i ends with chunk i), in all-gather every block but
// its successor's (the last one to reach it). So, with s_j the bytes of block j:
//   reduce-scatter: sum_j s_j - s_i;   all-gather: sum_j s_j - s_(i+1);
// which for equal blocks is (W-1)/W of the whole, and all-reduce is both.
Sent ring_reduce_scatter_sends(const std::vector<uint64_t>& block_bytes, const Group& ring, int me,
                               const Topology& topology) {
  Sent sent;
  const int members = static_cast<int>(ring.size());
  for (int block = 0; block < members; ++block) {
    if (block != me) sent.add(topology, ring[me], ring[(me + 1) % members], block_bytes[block]);
  }
  return sent;
}

Sent ring_all_gather_sends(const std::vector<uint64_t>& block_bytes, const Group& ring, int me,
                           const Topology& topology) {
  Sent sent;
  const int members = static_cast<int>(ring.size());
  for (int block = 0; block < members; ++block) {
    if (block != (me + 1) % members) sent.add(topology, ring[me], ring[(me + 1) % members], block_bytes[block]);
  }
  return sent;
}

// The hierarchical algorithms, from the topology alone: the members of my node
// (in the group) and the ring of node leaders.
struct Hierarchy {
  std::vector<int> my_node_positions;  // group positions on my node, by ascending rank
  Group leaders;                       // lowest group member of each node, ascending
  std::vector<std::vector<int>> positions_by_leader;
  bool i_lead = false;
  int my_leader_index = 0;
};

Hierarchy hierarchy_of(const Group& group, const Topology& topology) {
  Hierarchy h;
  for (int node = 0; node < topology.node_count(); ++node) {
    std::vector<int> positions;
    for (int rank : topology.ranks_on(node)) {
      const int position = position_of(rank, group);
      if (position < static_cast<int>(group.size())) positions.push_back(position);
    }
    if (!positions.empty()) h.positions_by_leader.push_back(positions);
  }
  std::sort(h.positions_by_leader.begin(), h.positions_by_leader.end(),
            [&](const auto& a, const auto& b) { return group[a.front()] < group[b.front()]; });
  for (size_t k = 0; k < h.positions_by_leader.size(); ++k) {
    const int leader = group[h.positions_by_leader[k].front()];
    h.leaders.push_back(leader);
    if (topology.same_node(leader, my_rank())) {
      h.my_node_positions = h.positions_by_leader[k];
      h.my_leader_index = static_cast<int>(k);
      h.i_lead = leader == my_rank();
    }
  }
  return h;
}

// Hierarchical all-reduce / reduce-scatter: a member sends its n floats to its
// leader; a leader all-reduces over the leaders' ring (Partition::even over
// leaders) and sends back n floats (all-reduce) or each member's shard
// (reduce-scatter) to every member of its node.
Sent hierarchical_reduction_sends(const Partition& partition, const Group& group, const Topology& topology,
                                  bool scatter) {
  const Hierarchy h = hierarchy_of(group, topology);
  const uint64_t n = partition.total();
  Sent sent;
  if (!h.i_lead) {
    sent.add(topology, my_rank(), h.leaders[h.my_leader_index], n * sizeof(float));
    return sent;
  }
  const std::vector<uint64_t> leader_chunks = shard_bytes(Partition::even(n, static_cast<int>(h.leaders.size())));
  sent.add(ring_reduce_scatter_sends(leader_chunks, h.leaders, h.my_leader_index, topology));
  sent.add(ring_all_gather_sends(leader_chunks, h.leaders, h.my_leader_index, topology));
  for (size_t k = 1; k < h.my_node_positions.size(); ++k) {
    const int position = h.my_node_positions[k];
    sent.add(topology, my_rank(), group[position], (scatter ? partition.size(position) : n) * sizeof(float));
  }
  return sent;
}

// Hierarchical all-gather: a member sends its shard to its leader; leaders
// ring-all-gather one block per node (the node's shards) and send the whole
// vector to every member of their node.
Sent hierarchical_all_gather_sends(const Partition& partition, const Group& group, const Topology& topology) {
  const Hierarchy h = hierarchy_of(group, topology);
  const int me = position_of(my_rank(), group);
  Sent sent;
  if (!h.i_lead) {
    sent.add(topology, my_rank(), h.leaders[h.my_leader_index], partition.size(me) * sizeof(float));
    return sent;
  }
  std::vector<uint64_t> node_blocks;
  for (const std::vector<int>& positions : h.positions_by_leader) {
    uint64_t bytes = 0;
    for (int position : positions) bytes += partition.size(position) * sizeof(float);
    node_blocks.push_back(bytes);
  }
  sent.add(ring_all_gather_sends(node_blocks, h.leaders, h.my_leader_index, topology));
  for (size_t k = 1; k < h.my_node_positions.size(); ++k) {
    sent.add(topology, my_rank(), group[h.my_node_positions[k]], partition.total() * sizeof(float));
  }
  return sent;
}

}  // namespace

TEST(Partition, EvenSplitsWithoutPadding) {
  Partition p = Partition::even(10, 4);
  EXPECT_EQ(p.offsets, (std::vector<uint64_t>{0, 2, 5, 7, 10}));
  EXPECT_EQ(p.shards(), 4);
  EXPECT_EQ(p.total(), 10u);
  Partition tiny = Partition::even(2, 4);  // n < shards: some shards are empty
  EXPECT_EQ(tiny.offsets, (std::vector<uint64_t>{0, 0, 1, 1, 2}));
  Partition huge = Partition::even(uint64_t{1} << 62, 3);  // i*n would overflow 64 bits
  EXPECT_EQ(huge.size(0), (uint64_t{1} << 62) / 3);
  EXPECT_EQ(huge.total(), uint64_t{1} << 62);
  EXPECT_THROW(Partition::even(5, 0), std::invalid_argument);
}

TEST(MpiSession, OneHostIsOnePhysicalNode) {
  EXPECT_EQ(detect_physical_nodes(), std::vector<int>(static_cast<size_t>(world_size()), 0));
}

TEST(Comm, WorldGroupAndTopologyOnOneHost) {
  Arena arena;
  const Topology topology = topology_for({1, "block"});
  auto comm = make_mpi_communicator(topology, arena, kTimeout);
  EXPECT_EQ(comm->rank(), my_rank());
  EXPECT_EQ(comm->world(), world_size());
  Group expected(static_cast<size_t>(world_size()));
  for (int r = 0; r < world_size(); ++r) expected[r] = r;
  EXPECT_EQ(comm->world_group(), expected);
  // One machine: the virtual nodes of the config are kept.
  EXPECT_EQ(comm->topology().node_of_rank, topology.node_of_rank);
  EXPECT_EQ(comm->topology().emulated, topology.emulated);
}

TEST(Comm, ReductionsAndGatherGiveTheSums) {
  for (const Placement& placement : all_placements()) {
    for (CollectiveAlgorithm algorithm : {CollectiveAlgorithm::flat, CollectiveAlgorithm::hierarchical}) {
      Arena arena;
      auto comm = make_mpi_communicator(topology_for(placement), arena, kTimeout);
      comm->set_algorithm(algorithm);
      for (const Group& group : groups_containing_me()) {
        const int me = position_of(my_rank(), group);
        for (uint64_t n : kSizes) {
          const std::string what = describe(placement, algorithm) + ", n=" + std::to_string(n) + ", group of " +
                                   std::to_string(group.size()) + " starting at " + std::to_string(group[0]);
          const Partition partition = Partition::even(n, static_cast<int>(group.size()));
          const std::vector<float> expected = whole_sum_over(group, n);

          std::vector<float> reduced = contribution_of(my_rank(), n, whole_contribution);
          comm->all_reduce_sum(reduced.data(), partition, group);
          EXPECT_EQ(reduced, expected) << "all_reduce_sum, " << what;

          std::vector<float> data = contribution_of(my_rank(), n, whole_contribution);
          std::vector<float> shard(partition.size(me));
          comm->reduce_scatter_sum(data.data(), shard.data(), partition, group);
          EXPECT_EQ(shard, slice(expected, partition, me)) << "reduce_scatter_sum, " << what;

          // Gather each member's shard of the sums, from shards that live
          // inside the output as well as from separate ones.
          std::vector<float> gathered(n, -1.0f);
          comm->all_gather(shard.data(), gathered.data(), partition, group);
          EXPECT_EQ(gathered, expected) << "all_gather, " << what;
          std::vector<float> in_place(n, -1.0f);
          std::copy(shard.begin(), shard.end(), in_place.begin() + static_cast<long>(partition.begin(me)));
          comm->all_gather(in_place.data() + partition.begin(me), in_place.data(), partition, group);
          EXPECT_EQ(in_place, expected) << "all_gather in place, " << what;
        }
      }
      EXPECT_EQ(arena.live(MemCategory::comm), 0u) << describe(placement, algorithm);
      // Every ring member needs a chunk buffer; in the hierarchical algorithms
      // only leaders do (other members send and receive in place).
      if (world_size() > 1 && algorithm == CollectiveAlgorithm::flat) {
        EXPECT_GT(arena.peak(MemCategory::comm), 0u) << describe(placement, algorithm);
      }
      if (world_size() > 1) {
        EXPECT_GT(sum_over_ranks(arena.peak(MemCategory::comm)), 0u) << describe(placement, algorithm);
      }
    }
  }
}

// all_reduce_sum is reduce_scatter_sum then all_gather with the same
// partition, so ddp's all-reduce and ZeRO's reduce-scatter give the same bits.
TEST(Comm, AllReduceShardIsBitwiseTheReduceScatterShard) {
  const uint64_t n = 1003;
  for (const Placement& placement : all_placements()) {
    for (CollectiveAlgorithm algorithm : {CollectiveAlgorithm::flat, CollectiveAlgorithm::hierarchical}) {
      Arena arena;
      auto comm = make_mpi_communicator(topology_for(placement), arena, kTimeout);
      comm->set_algorithm(algorithm);
      for (const Group& group : groups_containing_me()) {
        const int me = position_of(my_rank(), group);
        const Partition partition = Partition::even(n, static_cast<int>(group.size()));
        std::vector<float> reduced = contribution_of(my_rank(), n, fractional_contribution);
        comm->all_reduce_sum(reduced.data(), partition, group);
        std::vector<float> data = contribution_of(my_rank(), n, fractional_contribution);
        std::vector<float> shard(partition.size(me));
        comm->reduce_scatter_sum(data.data(), shard.data(), partition, group);
        EXPECT_EQ(std::memcmp(shard.data(), reduced.data() + partition.begin(me), shard.size() * sizeof(float)), 0)
            << describe(placement, algorithm);
        // And the same bits on every run.
        std::vector<float> again = contribution_of(my_rank(), n, fractional_contribution);
        comm->all_reduce_sum(again.data(), partition, group);
        EXPECT_EQ(std::memcmp(again.data(), reduced.data(), n * sizeof(float)), 0) << describe(placement, algorithm);
      }
    }
  }
}

TEST(Comm, BroadcastAndByteCollectivesDeliverEveryPayload) {
  for (const Placement& placement : all_placements()) {
    Arena arena;
    auto comm = make_mpi_communicator(topology_for(placement), arena, kTimeout);
    for (const Group& group : groups_containing_me()) {
      const int me = position_of(my_rank(), group);
      for (int root : group) {
        for (uint64_t n : kSizes) {
          std::vector<float> data =
              my_rank() == root ? contribution_of(root, n, fractional_contribution) : std::vector<float>(n, 0.0f);
          comm->broadcast(data.data(), n, root, group);
          EXPECT_EQ(data, contribution_of(root, n, fractional_contribution)) << "broadcast from " << root;
        }
      }

      // Member i contributes 3*i + (rank % 2) bytes (so some payloads are empty) of value rank.
      auto payload_size = [](int position, int rank) { return static_cast<uint64_t>(3 * position + rank % 2); };
      std::vector<unsigned char> mine(payload_size(me, my_rank()), static_cast<unsigned char>(my_rank()));
      {
        std::vector<Buffer> gathered = comm->all_gather_bytes(mine.data(), mine.size(), group);
        ASSERT_EQ(gathered.size(), group.size());
        uint64_t live = 0;
        for (size_t i = 0; i < group.size(); ++i) {
          const int member = group[i];
          ASSERT_EQ(gathered[i].bytes(), payload_size(static_cast<int>(i), member)) << "all_gather_bytes from " << member;
          EXPECT_EQ(gathered[i].category(), MemCategory::comm);
          std::vector<unsigned char> expected(gathered[i].bytes(), static_cast<unsigned char>(member));
          EXPECT_EQ(std::memcmp(gathered[i].data(), expected.data(), expected.size()), 0) << "from " << member;
          live += gathered[i].bytes();
        }
        // Only the returned payloads are left in the arena.
        EXPECT_EQ(arena.live(MemCategory::comm), live);
      }
      EXPECT_EQ(arena.live(MemCategory::comm), 0u);

      // To member j I send (rank + 1) * (j + 1) - 1 bytes (empty for rank 0 to member 0) of value 16*rank + j.
      std::vector<std::vector<unsigned char>> outgoing;
      std::vector<std::pair<const void*, uint64_t>> payloads;
      for (size_t j = 0; j < group.size(); ++j) {
        outgoing.emplace_back((my_rank() + 1) * (j + 1) - 1, static_cast<unsigned char>(16 * my_rank() + j));
      }
      for (const auto& bytes : outgoing) payloads.emplace_back(bytes.data(), bytes.size());
      {
        std::vector<Buffer> received = comm->all_to_all_bytes(payloads, group);
        ASSERT_EQ(received.size(), group.size());
        for (size_t i = 0; i < group.size(); ++i) {
          const int member = group[i];
          std::vector<unsigned char> expected((member + 1) * (me + 1) - 1, static_cast<unsigned char>(16 * member + me));
          ASSERT_EQ(received[i].bytes(), expected.size()) << "all_to_all_bytes from " << member;
          EXPECT_EQ(std::memcmp(received[i].data(), expected.data(), expected.size()), 0) << "from " << member;
        }
      }
      EXPECT_EQ(arena.live(MemCategory::comm), 0u);
    }
    comm->barrier();
  }
}

TEST(Comm, FlatRingsSendTheRingFormula) {
  for (const Placement& placement : all_placements()) {
    const Topology topology = topology_for(placement);
    Arena arena;
    auto comm = make_mpi_communicator(topology, arena, kTimeout);
    for (const Group& group : groups_containing_me()) {
      const int me = position_of(my_rank(), group);
      for (uint64_t n : kSizes) {
        const std::string what = describe(placement, CollectiveAlgorithm::flat) + ", n=" + std::to_string(n);
        const Partition partition = Partition::even(n, static_cast<int>(group.size()));
        const std::vector<uint64_t> chunks = shard_bytes(partition);
        const Sent reduce_scatter = ring_reduce_scatter_sends(chunks, group, me, topology);
        const Sent all_gather = ring_all_gather_sends(chunks, group, me, topology);
        Sent all_reduce = reduce_scatter;
        all_reduce.add(all_gather);
        // In bytes: reduce-scatter 4(n - size_i), all-gather 4(n - size_(i+1)),
        // all-reduce 4(2n - size_i - size_(i+1)), all of it on the link to the successor.
        EXPECT_EQ(reduce_scatter.intra + reduce_scatter.inter, 4 * (n - partition.size(me))) << what;
        EXPECT_EQ(all_gather.intra + all_gather.inter, 4 * (n - partition.size((me + 1) % partition.shards()))) << what;
        if (n % group.size() == 0) {
          EXPECT_EQ(all_reduce.intra + all_reduce.inter, 2 * 4 * n * (group.size() - 1) / group.size()) << what;
        }

        std::vector<float> data = contribution_of(my_rank(), n, whole_contribution);
        std::vector<float> shard(partition.size(me));
        comm->reset_counters();
        comm->reduce_scatter_sum(data.data(), shard.data(), partition, group);
        expect_counters(*comm, reduce_scatter, "reduce_scatter_sum, " + what);
        comm->reset_counters();
        comm->all_gather(shard.data(), data.data(), partition, group);
        expect_counters(*comm, all_gather, "all_gather, " + what);
        comm->reset_counters();
        comm->all_reduce_sum(data.data(), partition, group);
        expect_counters(*comm, all_reduce, "all_reduce_sum, " + what);
      }
    }
  }
}

TEST(Comm, HierarchicalSendsItsFormulaAndLessAcrossNodes) {
  const uint64_t n = 1003;
  for (const Placement& placement : all_placements()) {
    const Topology topology = topology_for(placement);
    Arena arena;
    auto comm = make_mpi_communicator(topology, arena, kTimeout);
    comm->set_algorithm(CollectiveAlgorithm::hierarchical);
    for (const Group& group : groups_containing_me()) {
      const std::string what = describe(placement, CollectiveAlgorithm::hierarchical) + ", group of " +
                               std::to_string(group.size()) + " starting at " + std::to_string(group[0]);
      const int me = position_of(my_rank(), group);
      const Partition partition = Partition::even(n, static_cast<int>(group.size()));
      std::vector<float> data = contribution_of(my_rank(), n, whole_contribution);
      std::vector<float> shard(partition.size(me));

      comm->reset_counters();
      comm->all_reduce_sum(data.data(), partition, group);
      expect_counters(*comm, hierarchical_reduction_sends(partition, group, topology, false), "all_reduce_sum, " + what);
      const uint64_t hierarchical_inter = sum_over_ranks(comm->counters().inter_node_bytes);
      comm->reset_counters();
      comm->reduce_scatter_sum(data.data(), shard.data(), partition, group);
      expect_counters(*comm, hierarchical_reduction_sends(partition, group, topology, true),
                      "reduce_scatter_sum, " + what);
      comm->reset_counters();
      comm->all_gather(shard.data(), data.data(), partition, group);
      expect_counters(*comm, hierarchical_all_gather_sends(partition, group, topology), "all_gather, " + what);

      // Against the flat ring on the same group: when the group spans several
      // nodes and some node holds several of its members, fewer bytes cross
      // nodes (with one member per node both are the same ring).
      comm->set_algorithm(CollectiveAlgorithm::flat);
      comm->reset_counters();
      comm->all_reduce_sum(data.data(), partition, group);
      comm->set_algorithm(CollectiveAlgorithm::hierarchical);
      const uint64_t flat_inter = sum_over_ranks(comm->counters().inter_node_bytes);
      const size_t nodes_spanned = hierarchy_of(group, topology).leaders.size();
      if (nodes_spanned > 1 && nodes_spanned < group.size()) {
        EXPECT_LT(hierarchical_inter, flat_inter) << what;
      }
      if (topology.node_count() == 1) {
        EXPECT_EQ(hierarchical_inter, 0u) << what;
      }
    }
  }
}

// Four ranks on two nodes: the ring 0→1→2→3→0 crosses nodes twice with block
// placement ({0,1} {2,3}) and at every step with cyclic ({0,2} {1,3}).
TEST(Comm, PlacementOrderChangesTheFlatRingsInterNodeBytes) {
  if (world_size() != 4) GTEST_SKIP() << "needs 4 ranks";
  const uint64_t n = 1000;
  const uint64_t per_rank = 2 * 4 * n * 3 / 4;  // ring all-reduce: 2(W-1)/W of 4n bytes
  const std::pair<const char*, uint64_t> cases[] = {{"block", 2 * per_rank}, {"cyclic", 4 * per_rank}};
  for (const auto& [order, expected_inter] : cases) {
    Arena arena;
    auto comm = make_mpi_communicator(topology_for({2, order}), arena, kTimeout);
    std::vector<float> data = contribution_of(my_rank(), n, whole_contribution);
    comm->all_reduce_sum(data.data(), Partition::even(n, 4), comm->world_group());
    EXPECT_EQ(sum_over_ranks(comm->counters().inter_node_bytes), expected_inter) << order;
    EXPECT_EQ(sum_over_ranks(comm->counters().intra_node_bytes), 4 * per_rank - expected_inter) << order;
  }
}

// A rank whose ring successor is on another node pays the link latency before
// each of its 2(W-1) sends of a flat all-reduce; on one node nothing waits.
TEST(Comm, EmulatedLinkDelaysOnlyMessagesBetweenNodes) {
  const int world = world_size();
  if (world < 2) GTEST_SKIP() << "needs 2 ranks";
  constexpr double kLatencyUs = 20000;
  constexpr double kLatencyS = kLatencyUs * 1e-6;
  const Placement two_or_more_nodes = {world % 2 == 0 ? world / 2 : 1, "block"};
  const Placement one_node = {world, "block"};
  const uint64_t n = 16;
  const double latencies_paid = 2.0 * (world - 1) * kLatencyS;

  // The shortest of a few all-reduces, each started together after a barrier.
  auto fastest_all_reduce = [&](Communicator& comm) {
    double fastest = 1e9;
    for (int repeat = 0; repeat < 3; ++repeat) {
      std::vector<float> data = contribution_of(my_rank(), n, whole_contribution);
      MPI_Barrier(MPI_COMM_WORLD);
      const auto start = std::chrono::steady_clock::now();
      comm.all_reduce_sum(data.data(), Partition::even(n, world), comm.world_group());
      fastest = std::min(fastest, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return fastest;
  };

  {
    Arena arena;
    const Topology topology = topology_for(two_or_more_nodes, kLatencyUs);
    ASSERT_TRUE(topology.emulated);
    auto comm = make_mpi_communicator(topology, arena, kTimeout);
    const double seconds = fastest_all_reduce(*comm);
    if (!topology.same_node(my_rank(), (my_rank() + 1) % world)) {
      EXPECT_GE(seconds, latencies_paid) << "a rank sending across nodes waits 2(W-1) latencies";
    }
  }
  {
    Arena arena;
    const Topology topology = topology_for(one_node, kLatencyUs);
    ASSERT_FALSE(topology.emulated);
    auto comm = make_mpi_communicator(topology, arena, kTimeout);
    EXPECT_LT(fastest_all_reduce(*comm), latencies_paid / 2) << "one node: no emulated latency";
  }
}

// Rank 1 skips an all-reduce that rank 0 calls: rank 0 gets CommTimeout naming
// itself, the operation and rank 1. The message rank 0 left for rank 1 carries
// that communicator's tag, so a fresh communicator is not disturbed by it.
TEST(Comm, SilentPeerTimesOutWithANamedError) {
  if (world_size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const Group pair = {0, 1};
  const uint64_t n = 16;
  {
    Arena arena;
    auto comm = make_mpi_communicator(topology_for({1, "block"}), arena, std::chrono::milliseconds(1000));
    if (my_rank() == 0) {
      std::vector<float> data = contribution_of(0, n, whole_contribution);
      const auto start = std::chrono::steady_clock::now();
      try {
        comm->all_reduce_sum(data.data(), Partition::even(n, 2), pair);
        ADD_FAILURE() << "expected CommTimeout";
      } catch (const CommTimeout& timeout) {
        EXPECT_STREQ(timeout.what(), "rank 0: all_reduce_sum: no message from rank 1 within 1.0 s");
      }
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      EXPECT_GE(waited, 1.0);
      EXPECT_LT(waited, 10.0);
      EXPECT_EQ(arena.live(MemCategory::comm), 0u) << "the chunk buffer is released on the way out";
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  // All ranks together again, on a fresh communicator: every sum is right.
  Arena arena;
  auto comm = make_mpi_communicator(topology_for({1, "block"}), arena, std::chrono::milliseconds(10000));
  for (const Group& group : {pair, comm->world_group()}) {
    if (position_of(my_rank(), group) == static_cast<int>(group.size())) continue;
    std::vector<float> data = contribution_of(my_rank(), n, whole_contribution);
    comm->all_reduce_sum(data.data(), Partition::even(n, static_cast<int>(group.size())), group);
    EXPECT_EQ(data, whole_sum_over(group, n));
  }
  comm->barrier();
}

TEST(Comm, GroupsAndPartitionsThatDoNotFitAreRejected) {
  Arena arena;
  auto comm = make_mpi_communicator(topology_for({1, "block"}), arena, kTimeout);
  std::vector<float> data(8);
  const Group without_me = {(my_rank() + 1) % world_size() == my_rank() ? 99 : (my_rank() + 1) % world_size()};
  EXPECT_THROW(comm->all_reduce_sum(data.data(), Partition::even(8, 1), without_me), std::invalid_argument);
  EXPECT_THROW(comm->all_reduce_sum(data.data(), Partition::even(8, world_size() + 1), comm->world_group()),
               std::invalid_argument);
  comm->barrier();
}
