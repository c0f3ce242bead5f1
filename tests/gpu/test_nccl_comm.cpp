// The NCCL communicator under mpirun, one rank per GPU (rank r uses device
// r % devices; NCCL refuses two ranks on one GPU): every collective's result
// against the same sums formed on the host, on the world, on groups in
// another ring order and on groups of one, with even and uneven partitions,
// flat and hierarchical; the counters against the ring formulas; the arena's
// comm category; and the errors of groups that do not fit.
//
// CTest runs it with one rank (the test machine has one GPU), where every
// collective still goes through NCCL; the expectations are written for any
// number of ranks. The ring formulas themselves (NcclModel) need no device.
#include <mpi.h>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "gpu_test.h"
#include "tests/comm_test_data.h"
#include "tests/mpi_test.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "core/arena.h"
#include "core/config.h"
#include "core/topology.h"
#include "kernels/comm.h"
#include "kernels/comm_nccl.h"

using namespace memfront;
using namespace comm_test;

namespace {

const auto& world_size = testing_mpi::world_size;
const auto& my_rank = testing_mpi::rank;

constexpr auto kTimeout = std::chrono::milliseconds(60000);

// The arena's memory as the CUDA backend gives it: device memory.
class DeviceMemory final : public MemoryResource {
 public:
  void* allocate(uint64_t bytes) override {
    void* pointer = nullptr;
    if (cudaMalloc(&pointer, bytes == 0 ? 1 : bytes) != cudaSuccess) throw std::bad_alloc();
    return pointer;
  }
  void deallocate(void* pointer, uint64_t) override { cudaFree(pointer); }
};

// Test data on the device, outside the communicator's arena, so that the
// arena holds only what the communicator allocates.
class DeviceFloats {
 public:
  explicit DeviceFloats(const std::vector<float>& values) : size_(values.size()) {
    EXPECT_EQ(cudaMalloc(&data_, std::max<size_t>(size_, 1) * sizeof(float)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(data_, values.data(), size_ * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceFloats() { cudaFree(data_); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;

  float* data() const { return data_; }
  std::vector<float> values() const { return download(data_, size_); }
  static std::vector<float> download(const float* device, size_t n) {
    std::vector<float> host(n);
    EXPECT_EQ(cudaMemcpy(host.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }

 private:
  float* data_ = nullptr;
  size_t size_;
};

std::vector<unsigned char> download_bytes(const Buffer& buffer) {
  std::vector<unsigned char> host(buffer.bytes());
  EXPECT_EQ(cudaMemcpy(host.data(), buffer.data(), host.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  return host;
}

// One GPU per rank and the stream the collectives queue on, as a trial's CUDA
// backend would have them.
class OnDevice {
 public:
  OnDevice() {
    int devices = 0;
    EXPECT_EQ(cudaGetDeviceCount(&devices), cudaSuccess);
    EXPECT_EQ(cudaSetDevice(my_rank() % std::max(devices, 1)), cudaSuccess);
    EXPECT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
  }
  ~OnDevice() { cudaStreamDestroy(stream_); }
  OnDevice(const OnDevice&) = delete;
  OnDevice& operator=(const OnDevice&) = delete;
  void* stream() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

std::vector<Topology> all_topologies() {
  std::vector<Topology> topologies;
  for (const Placement& placement : all_placements()) topologies.push_back(topology_for(placement));
  return topologies;
}

// A partition whose shards differ by more than one element: member i gets
// i + 1 parts of n.
Partition stepped(uint64_t n, int shards) {
  const uint64_t parts = static_cast<uint64_t>(shards) * (shards + 1) / 2;
  Partition partition;
  partition.offsets.push_back(0);
  uint64_t parts_so_far = 0;
  for (int shard = 0; shard < shards; ++shard) {
    parts_so_far += static_cast<uint64_t>(shard) + 1;
    partition.offsets.push_back(n * parts_so_far / parts);
  }
  return partition;
}

// What the counters should say: every byte of a ring goes to the successor.
struct Expected {
  uint64_t intra = 0, inter = 0, messages = 0;
  void ring(const Topology& topology, const Group& ring, int position, uint64_t bytes, uint64_t messages_sent) {
    const int successor = ring[(position + 1) % static_cast<int>(ring.size())];
    (topology.same_node(ring[position], successor) ? intra : inter) += bytes;
    if (bytes > 0) messages += messages_sent;
  }
};

void expect_counters(const Communicator& comm, const Expected& expected, const std::string& what) {
  EXPECT_TRUE(comm.counters().by_formula) << what;
  EXPECT_EQ(comm.counters().intra_node_bytes, expected.intra) << what;
  EXPECT_EQ(comm.counters().inter_node_bytes, expected.inter) << what;
  EXPECT_EQ(comm.counters().messages, expected.messages) << what;
}

uint64_t nonempty(const std::vector<uint64_t>& blocks, int skipped) {
  uint64_t count = 0;
  for (size_t block = 0; block < blocks.size(); ++block) {
    if (static_cast<int>(block) != skipped && blocks[block] > 0) count += 1;
  }
  return count;
}

uint64_t total(const std::vector<uint64_t>& blocks) {
  uint64_t sum = 0;
  for (uint64_t bytes : blocks) sum += bytes;
  return sum;
}

}  // namespace

TEST(NcclComm, WorldGroupAndTopology) {
  MEMFRONT_REQUIRE_GPU();
  OnDevice device;
  Arena arena(0, std::make_unique<DeviceMemory>());
  const Topology topology = topology_for({1, "block"});
  auto comm = make_nccl_communicator(topology, arena, kTimeout, device.stream());
  EXPECT_EQ(comm->rank(), my_rank());
  EXPECT_EQ(comm->world(), world_size());
  EXPECT_EQ(comm->topology().node_of_rank, topology.node_of_rank);
  EXPECT_FALSE(comm->topology().emulated) << "NCCL moves the bytes: nothing is emulated";
  EXPECT_TRUE(comm->counters().by_formula);
  comm->reset_counters();
  EXPECT_TRUE(comm->counters().by_formula);
}

TEST(NcclComm, ReductionsAndGathersGiveTheHostSums) {
  MEMFRONT_REQUIRE_GPU();
  OnDevice device;
  for (const Topology& topology : all_topologies()) {
    for (CollectiveAlgorithm algorithm : {CollectiveAlgorithm::flat, CollectiveAlgorithm::hierarchical}) {
      Arena arena(0, std::make_unique<DeviceMemory>());
      auto comm = make_nccl_communicator(topology, arena, kTimeout, device.stream());
      comm->set_algorithm(algorithm);
      for (const Group& group : groups_containing_me()) {
        const int me = position_of(my_rank(), group);
        const int members = static_cast<int>(group.size());
        for (uint64_t n : kSizes) {
          for (const Partition& partition : {Partition::even(n, members), stepped(n, members)}) {
            const std::string what = topology.describe() +
                                     (algorithm == CollectiveAlgorithm::flat ? " flat" : " hierarchical") +
                                     ", n=" + std::to_string(n) + ", group " + std::to_string(group.size()) +
                                     " from " + std::to_string(group[0]) + ", shard " +
                                     std::to_string(partition.size(me));
            const std::vector<float> expected = whole_sum_over(group, n);

            DeviceFloats reduced(contribution_of(my_rank(), n));
            comm->all_reduce_sum(reduced.data(), partition, group);
            EXPECT_EQ(reduced.values(), expected) << "all_reduce_sum, " << what;

            DeviceFloats data(contribution_of(my_rank(), n));
            DeviceFloats shard(std::vector<float>(partition.size(me), -1.0f));
            comm->reduce_scatter_sum(data.data(), shard.data(), partition, group);
            EXPECT_EQ(shard.values(), slice(expected, partition, me)) << "reduce_scatter_sum, " << what;

            DeviceFloats gathered(std::vector<float>(n, -1.0f));
            comm->all_gather(shard.data(), gathered.data(), partition, group);
            EXPECT_EQ(gathered.values(), expected) << "all_gather, " << what;

            // In place: my shard already lies at its place in the output.
            std::vector<float> mine_in_place(n, -1.0f);
            const std::vector<float> my_shard = slice(expected, partition, me);
            std::copy(my_shard.begin(), my_shard.end(), mine_in_place.begin() + static_cast<long>(partition.begin(me)));
            DeviceFloats in_place(mine_in_place);
            comm->all_gather(in_place.data() + partition.begin(me), in_place.data(), partition, group);
            EXPECT_EQ(in_place.values(), expected) << "all_gather in place, " << what;
          }
        }
      }
      EXPECT_EQ(arena.live(MemCategory::comm), 0u);
    }
  }
}

TEST(NcclComm, CountersFollowTheRingFormulas) {
  MEMFRONT_REQUIRE_GPU();
  OnDevice device;
  for (const Topology& topology : all_topologies()) {
    Arena arena(0, std::make_unique<DeviceMemory>());
    auto comm = make_nccl_communicator(topology, arena, kTimeout, device.stream());
    for (const Group& group : groups_containing_me()) {
      const int me = position_of(my_rank(), group);
      const int members = static_cast<int>(group.size());
      for (uint64_t n : kSizes) {
        const std::string what = topology.describe() + ", n=" + std::to_string(n) + ", group " +
                                 std::to_string(members) + " from " + std::to_string(group[0]);
        const Partition partition = Partition::even(n, members);
        const std::vector<uint64_t> blocks = shard_bytes(partition);
        const int successor = (me + 1) % members;
        Expected reduce_scatter, all_gather, all_reduce;
        reduce_scatter.ring(topology, group, me, total(blocks) - blocks[me], nonempty(blocks, me));
        all_gather.ring(topology, group, me, total(blocks) - blocks[successor], nonempty(blocks, successor));
        all_reduce.ring(topology, group, me, 2 * total(blocks) - blocks[me] - blocks[successor],
                        nonempty(blocks, me) + nonempty(blocks, successor));
        if (n % members == 0) {
          EXPECT_EQ(all_reduce.intra + all_reduce.inter, 2 * 4 * n * (members - 1) / members) << what;
        }

        DeviceFloats data(contribution_of(my_rank(), n));
        DeviceFloats shard(std::vector<float>(partition.size(me)));
        comm->reset_counters();
        comm->reduce_scatter_sum(data.data(), shard.data(), partition, group);
        expect_counters(*comm, reduce_scatter, "reduce_scatter_sum, " + what);
        comm->reset_counters();
        comm->all_gather(shard.data(), data.data(), partition, group);
        expect_counters(*comm, all_gather, "all_gather, " + what);
        comm->reset_counters();
        comm->all_reduce_sum(data.data(), partition, group);
        expect_counters(*comm, all_reduce, "all_reduce_sum, " + what);

        for (int root_position = 0; root_position < members; ++root_position) {
          Expected broadcast;
          const bool ends_the_chain = successor == root_position;
          broadcast.ring(topology, group, me, ends_the_chain ? 0 : 4 * n, 1);
          comm->reset_counters();
          comm->broadcast(data.data(), n, group[root_position], group);
          expect_counters(*comm, broadcast, "broadcast from " + std::to_string(group[root_position]) + ", " + what);
        }
      }
    }
  }
}

TEST(NcclComm, BroadcastAndByteCollectivesDeliverEveryPayload) {
  MEMFRONT_REQUIRE_GPU();
  OnDevice device;
  Arena arena(0, std::make_unique<DeviceMemory>());
  auto comm = make_nccl_communicator(topology_for({1, "block"}), arena, kTimeout, device.stream());
  for (const Group& group : groups_containing_me()) {
    const int me = position_of(my_rank(), group);
    for (int root : group) {
      for (uint64_t n : kSizes) {
        DeviceFloats data(my_rank() == root ? contribution_of(root, n) : std::vector<float>(n, 0.0f));
        comm->broadcast(data.data(), n, root, group);
        EXPECT_EQ(data.values(), contribution_of(root, n)) << "broadcast from " << root << ", n=" << n;
      }
    }

    // Member i contributes 3*i + (rank % 2) bytes (so some payloads are empty) of value rank.
    auto payload_size = [](int position, int rank) { return static_cast<uint64_t>(3 * position + rank % 2); };
    const std::vector<unsigned char> mine(payload_size(me, my_rank()), static_cast<unsigned char>(my_rank()));
    Buffer mine_on_device = arena.allocate(mine.size(), MemCategory::workspace, "test.payload");
    ASSERT_EQ(cudaMemcpy(mine_on_device.data(), mine.data(), mine.size(), cudaMemcpyHostToDevice), cudaSuccess);
    {
      std::vector<Buffer> gathered = comm->all_gather_bytes(mine_on_device.data(), mine.size(), group);
      ASSERT_EQ(gathered.size(), group.size());
      uint64_t live = 0;
      for (size_t i = 0; i < group.size(); ++i) {
        const int member = group[i];
        ASSERT_EQ(gathered[i].bytes(), payload_size(static_cast<int>(i), member)) << "all_gather_bytes from " << member;
        EXPECT_EQ(gathered[i].category(), MemCategory::comm);
        EXPECT_EQ(download_bytes(gathered[i]),
                  std::vector<unsigned char>(gathered[i].bytes(), static_cast<unsigned char>(member)))
            << "from " << member;
        live += gathered[i].bytes();
      }
      EXPECT_EQ(arena.live(MemCategory::comm), live) << "only the returned payloads are left in the arena";
    }
    EXPECT_EQ(arena.live(MemCategory::comm), 0u);

    // To member j I send (rank + 1) * (j + 1) - 1 bytes (empty for rank 0 to member 0) of value 16*rank + j.
    std::vector<Buffer> outgoing;
    std::vector<std::pair<const void*, uint64_t>> payloads;
    for (size_t j = 0; j < group.size(); ++j) {
      const std::vector<unsigned char> bytes((my_rank() + 1) * (j + 1) - 1,
                                             static_cast<unsigned char>(16 * my_rank() + j));
      outgoing.push_back(arena.allocate(bytes.size(), MemCategory::workspace, "test.payload"));
      ASSERT_EQ(cudaMemcpy(outgoing.back().data(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
      payloads.emplace_back(outgoing.back().data(), bytes.size());
    }
    {
      std::vector<Buffer> received = comm->all_to_all_bytes(payloads, group);
      ASSERT_EQ(received.size(), group.size());
      for (size_t i = 0; i < group.size(); ++i) {
        const int member = group[i];
        const std::vector<unsigned char> expected((member + 1) * (me + 1) - 1,
                                                  static_cast<unsigned char>(16 * member + me));
        EXPECT_EQ(download_bytes(received[i]), expected) << "all_to_all_bytes from " << member;
      }
    }
    EXPECT_EQ(arena.live(MemCategory::comm), 0u);
  }
  comm->reset_counters();
  comm->barrier();
  EXPECT_EQ(arena.live(MemCategory::comm), 0u);
}

// A collective that cannot finish in time (here every rank's stream is held
// by a host callback that sleeps past the timeout, as a hung peer would hold
// NCCL's kernel) raises CommTimeout naming it after the timeout, not when the
// stream drains; the communicators are aborted and later calls refuse at once.
TEST(NcclComm, CollectiveThatDoesNotFinishTimesOutAndAborts) {
  MEMFRONT_REQUIRE_GPU();
  OnDevice device;
  Arena arena(0, std::make_unique<DeviceMemory>());
  const auto timeout = std::chrono::milliseconds(1000);
  auto comm = make_nccl_communicator(topology_for({1, "block"}), arena, timeout, device.stream());
  DeviceFloats data(contribution_of(my_rank(), 16));
  auto sleep_three_seconds = [](void*) { std::this_thread::sleep_for(std::chrono::seconds(3)); };
  ASSERT_EQ(cudaLaunchHostFunc(static_cast<cudaStream_t>(device.stream()), sleep_three_seconds, nullptr), cudaSuccess);
  const auto start = std::chrono::steady_clock::now();
  try {
    comm->all_reduce_sum(data.data(), Partition::even(16, world_size()), comm->world_group());
    ADD_FAILURE() << "expected CommTimeout";
  } catch (const CommTimeout& error) {
    const std::string text = error.what();
    EXPECT_NE(text.find("rank " + std::to_string(my_rank()) + ": NCCL all_reduce_sum: "), std::string::npos) << text;
    EXPECT_NE(text.find("within 1.0 s"), std::string::npos) << text;
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 1.0);
  EXPECT_LT(waited, 10.0) << "bounded: the timeout, then the abort";
  EXPECT_THROW(comm->barrier(), std::runtime_error);
}

TEST(NcclComm, GroupsAndPartitionsThatDoNotFitAreRejected) {
  MEMFRONT_REQUIRE_GPU();
  OnDevice device;
  Arena arena(0, std::make_unique<DeviceMemory>());
  auto comm = make_nccl_communicator(topology_for({1, "block"}), arena, kTimeout, device.stream());
  DeviceFloats data(std::vector<float>(8));
  const Group without_me = {world_size() == 1 ? 99 : (my_rank() + 1) % world_size()};
  EXPECT_THROW(comm->all_reduce_sum(data.data(), Partition::even(8, 1), without_me), std::invalid_argument);
  EXPECT_THROW(comm->all_reduce_sum(data.data(), Partition::even(8, world_size() + 1), comm->world_group()),
               std::invalid_argument);
  EXPECT_THROW(comm->broadcast(data.data(), 8, world_size() + 5, comm->world_group()), std::invalid_argument);
  comm->barrier();
}
