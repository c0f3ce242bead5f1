// The NCCL communicator (see comm_nccl.h): comm.h's collectives as NCCL
// operations on the compute stream, with a deadline on every wait and the
// bytes counted by the ring formulas of core/closed_forms.h.
#include "kernels/comm_nccl.h"

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/annotate.h"

namespace memfront {

namespace {

// MPI tag of the messages that carry a group's ncclUniqueId, on the
// communicator's own duplicate of MPI_COMM_WORLD.
constexpr int kBootstrapTag = 1;

std::string group_text(const Group& group) {
  std::string text = "{";
  for (size_t i = 0; i < group.size(); ++i) {
    if (i > 0) text += ",";
    text += std::to_string(group[i]);
  }
  return text + "}";
}

// FNV-1a over the member list: sent beside a group's ncclUniqueId so that a
// member can tell it received the id of the group it is joining.
uint64_t fingerprint(const Group& group) {
  uint64_t hash = 14695981039346656037ull;
  for (int member : group) {
    for (int byte = 0; byte < 4; ++byte) {
      hash ^= static_cast<uint64_t>((static_cast<unsigned>(member) >> (8 * byte)) & 0xffu);
      hash *= 1099511628211ull;
    }
  }
  return hash;
}

struct BootstrapMessage {
  ncclUniqueId id;
  uint64_t group_fingerprint;
};

std::vector<uint64_t> float_block_bytes(const Partition& partition) {
  std::vector<uint64_t> bytes;
  for (int shard = 0; shard < partition.shards(); ++shard) bytes.push_back(partition.size(shard) * sizeof(float));
  return bytes;
}

bool shards_are_equal(const Partition& partition) {
  for (int shard = 1; shard < partition.shards(); ++shard) {
    if (partition.size(shard) != partition.size(0)) return false;
  }
  return true;
}

// The group seen node by node (kernels/comm.h), with my node's members as
// world ranks: the members of NCCL's per-node communicator.
struct NcclNodeSplit : NodeSplit {
  Group my_node_ranks;  // the group's members on my node, ascending: the leader first
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Topology topology, Arena& arena, std::chrono::milliseconds timeout, cudaStream_t stream)
      : topology_(std::move(topology)), arena_(arena), timeout_(timeout), stream_(stream) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    topology_.emulated = false;  // NCCL moves the bytes itself: nodes split the counts, nothing is delayed
    topology_.link_latency_s = topology_.link_bytes_per_s = 0;
    counters_.by_formula = true;
    MPI_Comm_dup(MPI_COMM_WORLD, &bootstrap_);

    // Rank 0 broadcasts even when it has no id, so that no rank is left
    // waiting: the fingerprint says whether the id is there.
    const char* op = "make_nccl_communicator";
    BootstrapMessage message{};
    ncclResult_t made = ncclSuccess;
    if (rank_ == 0) {
      made = ncclGetUniqueId(&message.id);
      if (made == ncclSuccess) message.group_fingerprint = fingerprint(world_group());
    }
    MPI_Bcast(&message, sizeof message, MPI_BYTE, 0, bootstrap_);
    check_nccl(made, nullptr, op, "ncclGetUniqueId");
    if (message.group_fingerprint != fingerprint(world_group())) {
      throw std::runtime_error(context(op) + "rank 0 could not make the NCCL id of the world");
    }
    world_comm_ = create_comm(message.id, world_, rank_, op);
  }

  ~NcclCommunicator() override {
    for (auto& [group, comm] : group_comms_) release(comm);
    release(world_comm_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && bootstrap_ != MPI_COMM_NULL) MPI_Comm_free(&bootstrap_);
  }

  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  const Topology& topology() const override { return topology_; }
  void set_algorithm(CollectiveAlgorithm algorithm) override { algorithm_ = algorithm; }
  const CommCounters& counters() const override { return counters_; }
  void reset_counters() override {
    counters_ = {};
    counters_.by_formula = true;
  }

  void all_reduce_sum(float* data, const Partition& partition, const Group& group) override {
    annotate::Range range("all_reduce_sum");
    const char* op = "all_reduce_sum";
    const int me = position_in(group, op);
    check_partition(partition, group, op);
    const uint64_t n = partition.total();
    if (algorithm_ == CollectiveAlgorithm::hierarchical) {
      const NcclNodeSplit split = split_by_node(group);
      const std::vector<ncclComm_t> comms = comms_of(split, op);
      sum_on_leaders(op, data, n, split);
      broadcast_in_node(op, data, n, split);
      wait_for_stream(op, comms);
      return;
    }
    ncclComm_t comm = comm_for(group, op);
    NcclGroup calls(*this, comm, op);
    calls.add(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, comm, stream_), "ncclAllReduce");
    calls.end();
    wait_for_stream(op, {comm});
    count_ring(ring::all_reduce(float_block_bytes(partition), me), group, me);
  }

  void reduce_scatter_sum(float* data, float* shard, const Partition& partition, const Group& group) override {
    annotate::Range range("reduce_scatter_sum");
    const char* op = "reduce_scatter_sum";
    const int me = position_in(group, op);
    check_partition(partition, group, op);
    if (algorithm_ == CollectiveAlgorithm::hierarchical) {
      const NcclNodeSplit split = split_by_node(group);
      const std::vector<ncclComm_t> comms = comms_of(split, op);
      sum_on_leaders(op, data, partition.total(), split);
      scatter_in_node(op, data, shard, partition, group, split);
      wait_for_stream(op, comms);
      return;
    }
    ncclComm_t comm = comm_for(group, op);
    NcclGroup calls(*this, comm, op);
    if (shards_are_equal(partition)) {
      calls.add(ncclReduceScatter(data, shard, partition.size(0), ncclFloat32, ncclSum, comm, stream_),
                "ncclReduceScatter");
    } else {
      for (int owner = 0; owner < partition.shards(); ++owner) {
        if (partition.size(owner) == 0) continue;
        float* sendbuff = data + partition.begin(owner);
        // recvbuff matters on the root only.
        calls.add(ncclReduce(sendbuff, owner == me ? shard : sendbuff, partition.size(owner), ncclFloat32, ncclSum,
                             owner, comm, stream_),
                  "ncclReduce");
      }
    }
    calls.end();
    wait_for_stream(op, {comm});
    count_ring(ring::reduce_scatter(float_block_bytes(partition), me), group, me);
  }

  void all_gather(const float* shard, float* full, const Partition& partition, const Group& group) override {
    annotate::Range range("all_gather");
    const char* op = "all_gather";
    const int me = position_in(group, op);
    check_partition(partition, group, op);
    if (algorithm_ == CollectiveAlgorithm::hierarchical) {
      const NcclNodeSplit split = split_by_node(group);
      const std::vector<ncclComm_t> comms = comms_of(split, op);
      gather_on_leaders(op, shard, full, partition, group, split);
      broadcast_in_node(op, full, partition.total(), split);
      wait_for_stream(op, comms);
      return;
    }
    ncclComm_t comm = comm_for(group, op);
    NcclGroup calls(*this, comm, op);
    if (shards_are_equal(partition)) {
      calls.add(ncclAllGather(shard, full, partition.size(0), ncclFloat32, comm, stream_), "ncclAllGather");
    } else {
      for (int owner = 0; owner < partition.shards(); ++owner) {
        if (partition.size(owner) == 0) continue;
        float* place = full + partition.begin(owner);
        calls.add(ncclBroadcast(owner == me ? shard : place, place, partition.size(owner), ncclFloat32, owner, comm,
                                stream_),
                  "ncclBroadcast");
      }
    }
    calls.end();
    wait_for_stream(op, {comm});
    count_ring(ring::all_gather(float_block_bytes(partition), me), group, me);
  }

  std::vector<Buffer> all_gather_bytes(const void* payload, uint64_t bytes, const Group& group) override {
    annotate::Range range("all_gather_bytes");
    const char* op = "all_gather_bytes";
    const int me = position_in(group, op);
    const int members = static_cast<int>(group.size());
    ncclComm_t comm = comm_for(group, op);

    // Sizes first, one uint64 per member, all-gathered in place.
    Buffer sizes_on_device = arena_.allocate_array<uint64_t>(members, MemCategory::comm, "comm.all_gather_bytes.sizes");
    auto* device_sizes = sizes_on_device.as<uint64_t>();
    upload(device_sizes + me, &bytes, sizeof bytes, op);
    NcclGroup size_exchange(*this, comm, op);
    size_exchange.add(ncclAllGather(device_sizes + me, device_sizes, 1, ncclUint64, comm, stream_), "ncclAllGather");
    size_exchange.end();
    wait_for_stream(op, {comm});
    count_ring(ring::all_gather(std::vector<uint64_t>(members, sizeof(uint64_t)), me), group, me);
    std::vector<uint64_t> sizes(members);
    download(sizes.data(), device_sizes, members * sizeof(uint64_t), op);

    std::vector<Buffer> received;
    for (int i = 0; i < members; ++i) {
      received.push_back(arena_.allocate(sizes[i], MemCategory::comm, "comm.all_gather_bytes"));
    }
    copy_on_device(received[me].data(), payload, bytes, op);
    NcclGroup calls(*this, comm, op);
    for (int peer = 0; peer < members; ++peer) {
      if (peer == me) continue;
      send(calls, payload, bytes, peer, group[peer], comm);
      receive(calls, received[peer].data(), sizes[peer], peer, comm);
    }
    calls.end();
    wait_for_stream(op, {comm});
    return received;
  }

  std::vector<Buffer> all_to_all_bytes(const std::vector<std::pair<const void*, uint64_t>>& payloads,
                                       const Group& group) override {
    annotate::Range range("all_to_all_bytes");
    const char* op = "all_to_all_bytes";
    const int me = position_in(group, op);
    const int members = static_cast<int>(group.size());
    if (static_cast<int>(payloads.size()) != members) {
      throw std::invalid_argument(context(op) + "got " + std::to_string(payloads.size()) +
                                  " payloads for a group of " + std::to_string(members));
    }
    ncclComm_t comm = comm_for(group, op);

    // Sizes first: outgoing[i] goes to member i, incoming[i] comes from it.
    std::vector<uint64_t> outgoing(members), incoming(members);
    for (int i = 0; i < members; ++i) outgoing[i] = payloads[i].second;
    Buffer sizes_on_device = arena_.allocate_array<uint64_t>(2 * static_cast<uint64_t>(members), MemCategory::comm,
                                                             "comm.all_to_all_bytes.sizes");
    uint64_t* device_outgoing = sizes_on_device.as<uint64_t>();
    uint64_t* device_incoming = device_outgoing + members;
    upload(device_outgoing, outgoing.data(), members * sizeof(uint64_t), op);
    NcclGroup size_exchange(*this, comm, op);
    for (int peer = 0; peer < members; ++peer) {
      if (peer == me) continue;
      send(size_exchange, device_outgoing + peer, sizeof(uint64_t), peer, group[peer], comm);
      receive(size_exchange, device_incoming + peer, sizeof(uint64_t), peer, comm);
    }
    size_exchange.end();
    wait_for_stream(op, {comm});
    download(incoming.data(), device_incoming, members * sizeof(uint64_t), op);
    incoming[me] = outgoing[me];

    std::vector<Buffer> received;
    for (int i = 0; i < members; ++i) {
      received.push_back(arena_.allocate(incoming[i], MemCategory::comm, "comm.all_to_all_bytes"));
    }
    copy_on_device(received[me].data(), payloads[me].first, payloads[me].second, op);
    NcclGroup calls(*this, comm, op);
    for (int peer = 0; peer < members; ++peer) {
      if (peer == me) continue;
      send(calls, payloads[peer].first, payloads[peer].second, peer, group[peer], comm);
      receive(calls, received[peer].data(), incoming[peer], peer, comm);
    }
    calls.end();
    wait_for_stream(op, {comm});
    return received;
  }

  void broadcast(float* data, uint64_t n, int root, const Group& group) override {
    annotate::Range range("broadcast");
    const char* op = "broadcast";
    const int me = position_in(group, op);
    const auto root_entry = std::find(group.begin(), group.end(), root);
    if (root_entry == group.end()) {
      throw std::invalid_argument(context(op) + "the root, rank " + std::to_string(root) + ", is not in the group");
    }
    const int root_position = static_cast<int>(root_entry - group.begin());
    ncclComm_t comm = comm_for(group, op);
    NcclGroup calls(*this, comm, op);
    calls.add(ncclBroadcast(data, data, n, ncclFloat32, root_position, comm, stream_), "ncclBroadcast");
    calls.end();
    wait_for_stream(op, {comm});
    count_ring(ring::broadcast(n * sizeof(float), me, root_position, static_cast<int>(group.size())), group,
               me);
  }

  // NCCL has no barrier: an all-reduce of one float over the world, which no
  // rank can finish before every rank has joined it.
  void barrier() override {
    annotate::Range range("barrier");
    const char* op = "barrier";
    check_usable(op);
    Buffer token = arena_.allocate_array<float>(1, MemCategory::comm, "comm.barrier");
    check_cuda(cudaMemsetAsync(token.data(), 0, sizeof(float), stream_), op, "cudaMemsetAsync");
    NcclGroup calls(*this, world_comm_, op);
    calls.add(ncclAllReduce(token.data(), token.data(), 1, ncclFloat32, ncclSum, world_comm_, stream_),
              "ncclAllReduce");
    calls.end();
    wait_for_stream(op, {world_comm_});
    count_ring(ring::all_reduce(float_block_bytes(Partition::even(1, world_)), rank_), world_group(), rank_);
  }

 private:
  // One ncclGroupStart/ncclGroupEnd bracket on one communicator. The calls made
  // inside are only recorded by NCCL; their errors surface at end(), which
  // waits (up to the timeout) until NCCL has queued the work on the stream.
  class NcclGroup {
   public:
    NcclGroup(NcclCommunicator& owner, ncclComm_t comm, const char* op) : owner_(owner), comm_(comm), op_(op) {
      owner_.check_usable(op_);
      owner_.check_nccl(ncclGroupStart(), comm_, op_, "ncclGroupStart");
      open_ = true;
    }
    // Closes a group that an exception left open; that exception is the one to report.
    ~NcclGroup() {
      if (open_) ncclGroupEnd();
    }
    NcclGroup(const NcclGroup&) = delete;
    NcclGroup& operator=(const NcclGroup&) = delete;

    void add(ncclResult_t result, const char* call) {
      if (result != ncclSuccess && result != ncclInProgress && first_error_ == ncclSuccess) {
        first_error_ = result;
        first_call_ = call;
      }
    }

    void end() {
      open_ = false;
      const ncclResult_t ended = ncclGroupEnd();
      if (first_error_ != ncclSuccess) owner_.fail(op_, first_call_, first_error_, comm_);
      owner_.settle(ended, comm_, op_, "ncclGroupEnd");
    }

   private:
    NcclCommunicator& owner_;
    ncclComm_t comm_;
    const char* op_;
    bool open_ = false;
    ncclResult_t first_error_ = ncclSuccess;
    const char* first_call_ = "";
  };

  std::string context(const char* op) const { return "rank " + std::to_string(rank_) + ": NCCL " + op + ": "; }

  int position_in(const Group& group, const char* op) const {
    const auto entry = std::find(group.begin(), group.end(), rank_);
    if (entry == group.end()) throw std::invalid_argument(context(op) + "this rank is not in the group");
    for (int member : group) {
      if (member < 0 || member >= world_) {
        throw std::invalid_argument(context(op) + "group member " + std::to_string(member) +
                                    " is not a rank of world=" + std::to_string(world_));
      }
    }
    return static_cast<int>(entry - group.begin());
  }

  void check_partition(const Partition& partition, const Group& group, const char* op) const {
    if (partition.shards() != static_cast<int>(group.size())) {
      throw std::invalid_argument(context(op) + "the partition has " + std::to_string(partition.shards()) +
                                  " shards for a group of " + std::to_string(group.size()));
    }
  }

  // --- errors and waiting ----------------------------------------------------

  void check_usable(const char* op) const {
    if (aborted_) {
      throw std::runtime_error(context(op) +
                               "the NCCL communicators were aborted after an earlier timeout or error; "
                               "this communicator cannot be used any more");
    }
  }

  // Every NCCL communicator of this object is aborted: after a timeout or an
  // error their state is unknown, and a peer may be gone.
  void abort_all() {
    for (auto& [group, comm] : group_comms_) ncclCommAbort(comm);
    for (ncclComm_t comm : {world_comm_, pending_comm_}) {
      if (comm != nullptr) ncclCommAbort(comm);
    }
    group_comms_.clear();
    world_comm_ = pending_comm_ = nullptr;
    aborted_ = true;
  }

  [[noreturn]] void fail(const char* op, const char* call, ncclResult_t result, ncclComm_t comm) {
    std::string text = context(op) + call + " failed: " + ncclGetErrorString(result);
    const char* detail = ncclGetLastError(comm);
    if (detail != nullptr && *detail != '\0') text += std::string(" (") + detail + ")";
    abort_all();
    throw std::runtime_error(text);
  }

  [[noreturn]] void timed_out(const char* op, const std::string& what) {
    abort_all();
    throw CommTimeout(context(op) + what + " within " + seconds_text(timeout_) +
                      "; every NCCL communicator of this rank was aborted");
  }

  void check_nccl(ncclResult_t result, ncclComm_t comm, const char* op, const char* call) {
    if (result != ncclSuccess) fail(op, call, result, comm);
  }

  void check_cuda(cudaError_t result, const char* op, const char* call) {
    if (result == cudaSuccess) return;
    abort_all();
    throw std::runtime_error(context(op) + call + " failed: " + cudaGetErrorString(result));
  }

  // A non-blocking communicator answers ncclInProgress while it works in the
  // background; its state says when that work is done.
  void settle(ncclResult_t result, ncclComm_t comm, const char* op, const char* call) {
    if (result != ncclInProgress) {
      check_nccl(result, comm, op, call);
      return;
    }
    const DeadlinePoll poll(timeout_);
    ncclResult_t state = ncclInProgress;
    while (true) {
      check_nccl(ncclCommGetAsyncError(comm, &state), comm, op, "ncclCommGetAsyncError");
      if (state != ncclInProgress) break;
      if (poll.expired()) timed_out(op, std::string(call) + " did not finish");
      poll.pause();
    }
    check_nccl(state, comm, op, call);
  }

  // Until everything queued on the stream so far has run, watching the
  // communicators for errors a peer may have caused.
  void wait_for_stream(const char* op, const std::vector<ncclComm_t>& comms) {
    const DeadlinePoll poll(timeout_);
    while (true) {
      const cudaError_t status = cudaStreamQuery(stream_);
      if (status == cudaSuccess) return;
      if (status != cudaErrorNotReady) check_cuda(status, op, "cudaStreamQuery");
      // The runtime records cudaErrorNotReady as this thread's last error; left
      // there, the CUDA ops' next check_launch (cudaGetLastError) would report it
      // as a failed kernel launch.
      cudaGetLastError();
      for (ncclComm_t comm : comms) {
        ncclResult_t state = ncclSuccess;
        check_nccl(ncclCommGetAsyncError(comm, &state), comm, op, "ncclCommGetAsyncError");
        if (state != ncclSuccess && state != ncclInProgress) fail(op, "an earlier NCCL operation", state, comm);
      }
      if (poll.expired()) timed_out(op, "the collective did not complete");
      poll.pause();
    }
  }

  // --- communicators ---------------------------------------------------------

  ncclComm_t create_comm(const ncclUniqueId& id, int members, int position, const char* op) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t comm = nullptr;
    const ncclResult_t started = ncclCommInitRankConfig(&comm, members, id, position, &config);
    if (comm == nullptr) check_nccl(started, nullptr, op, "ncclCommInitRankConfig");
    pending_comm_ = comm;  // aborted with the others if its creation fails
    settle(started, comm, op, "ncclCommInitRankConfig");
    pending_comm_ = nullptr;
    return comm;
  }

  ncclComm_t comm_for(const Group& group, const char* op) {
    check_usable(op);
    if (group == world_group()) return world_comm_;
    const auto known = group_comms_.find(group);
    if (known != group_comms_.end()) return known->second;
    const int position = position_in(group, op);
    const ncclUniqueId id = bootstrap_id(group, position, op);
    ncclComm_t comm = create_comm(id, static_cast<int>(group.size()), position, op);
    group_comms_.emplace(group, comm);
    return comm;
  }

  // The group's first member makes the id and sends it to the other members;
  // nobody outside the group takes part.
  ncclUniqueId bootstrap_id(const Group& group, int position, const char* op) {
    const uint64_t expected = fingerprint(group);
    const DeadlinePoll poll(timeout_);
    if (position == 0) {
      outgoing_ = {};
      check_nccl(ncclGetUniqueId(&outgoing_.id), nullptr, op, "ncclGetUniqueId");
      outgoing_.group_fingerprint = expected;
      std::vector<MPI_Request> sends;
      for (size_t member = 1; member < group.size(); ++member) {
        MPI_Request request = MPI_REQUEST_NULL;
        MPI_Isend(&outgoing_, sizeof outgoing_, MPI_BYTE, group[member], kBootstrapTag, bootstrap_, &request);
        sends.push_back(request);
      }
      int done = 0;
      while (MPI_Testall(static_cast<int>(sends.size()), sends.data(), &done, MPI_STATUSES_IGNORE), !done) {
        if (poll.expired()) {
          // The id is small and went out eagerly; outgoing_ outlives the requests.
          for (MPI_Request& request : sends) {
            if (request != MPI_REQUEST_NULL) MPI_Request_free(&request);
          }
          timed_out(op, "the members of group " + group_text(group) + " did not take its NCCL id");
        }
        poll.pause();
      }
      return outgoing_.id;
    }
    // Probe, then receive: nothing is left posted if the id never comes.
    int arrived = 0;
    while (MPI_Iprobe(group[0], kBootstrapTag, bootstrap_, &arrived, MPI_STATUS_IGNORE), !arrived) {
      if (poll.expired()) {
        timed_out(op, "no NCCL id for group " + group_text(group) + " came from rank " + std::to_string(group[0]));
      }
      poll.pause();
    }
    BootstrapMessage message{};
    MPI_Recv(&message, sizeof message, MPI_BYTE, group[0], kBootstrapTag, bootstrap_, MPI_STATUS_IGNORE);
    if (message.group_fingerprint != expected) {
      abort_all();
      throw std::runtime_error(context(op) + "rank " + std::to_string(group[0]) +
                               " sent the NCCL id of another group while this rank joined " + group_text(group) +
                               ": members must use their groups in the same order");
    }
    return message.id;
  }

  // Finalizes and destroys, or aborts what does not finish in time: a
  // destructor must neither throw nor hang.
  void release(ncclComm_t comm) const {
    if (comm == nullptr) return;
    ncclResult_t state = ncclCommFinalize(comm);
    const DeadlinePoll poll(timeout_);
    while (state == ncclInProgress && !poll.expired()) {
      if (ncclCommGetAsyncError(comm, &state) != ncclSuccess) break;
      poll.pause();
    }
    if (state == ncclSuccess) {
      ncclCommDestroy(comm);
    } else {
      ncclCommAbort(comm);
    }
  }

  // --- data movement ---------------------------------------------------------

  // Host staging of the size exchanges waits for the stream first (with the
  // deadline), so that the copy itself never waits on a hung collective.
  void upload(void* device, const void* host, uint64_t bytes, const char* op) {
    wait_for_stream(op, {});
    check_cuda(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_), op, "cudaMemcpyAsync");
  }

  void download(void* host, const void* device, uint64_t bytes, const char* op) {
    wait_for_stream(op, {});
    check_cuda(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream_), op, "cudaMemcpyAsync");
    wait_for_stream(op, {});
  }

  void copy_on_device(void* to, const void* from, uint64_t bytes, const char* op) {
    if (to == from || bytes == 0) return;
    check_cuda(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, stream_), op, "cudaMemcpyAsync");
  }

  // Point to point inside an NCCL group, counted exactly. Empty payloads are
  // not sent: both sides know the size.
  void send(NcclGroup& calls, const void* data, uint64_t bytes, int peer_position, int peer_rank, ncclComm_t comm) {
    if (bytes == 0) return;
    calls.add(ncclSend(data, bytes, ncclUint8, peer_position, comm, stream_), "ncclSend");
    count_to(peer_rank, {bytes, 1});
  }

  void receive(NcclGroup& calls, void* data, uint64_t bytes, int peer_position, ncclComm_t comm) {
    if (bytes == 0) return;
    calls.add(ncclRecv(data, bytes, ncclUint8, peer_position, comm, stream_), "ncclRecv");
  }

  // --- counting --------------------------------------------------------------

  void count_to(int peer_rank, const RingTraffic& sent) {
    if (sent.bytes == 0) return;
    (topology_.same_node(rank_, peer_rank) ? counters_.intra_node_bytes : counters_.inter_node_bytes) += sent.bytes;
    counters_.messages += sent.messages;
  }

  // A ring member sends only to its successor.
  void count_ring(const RingTraffic& sent, const Group& ring, int position) {
    count_to(ring[(position + 1) % static_cast<int>(ring.size())], sent);
  }

  // --- hierarchical ----------------------------------------------------------

  NcclNodeSplit split_by_node(const Group& group) const {
    NcclNodeSplit split{memfront::split_by_node(topology_, group, rank_), {}};
    for (int position : split.members[split.my_node]) split.my_node_ranks.push_back(group[position]);
    return split;
  }

  bool leads(const NcclNodeSplit& split) const { return split.my_node_ranks.front() == rank_; }
  int node_position(const NcclNodeSplit& split) const {
    return static_cast<int>(std::find(split.my_node_ranks.begin(), split.my_node_ranks.end(), rank_) - split.my_node_ranks.begin());
  }

  // The communicators a hierarchical collective uses on this rank. Called
  // before the collective queues anything, so that any still to be made are
  // made first (making one waits on the other members).
  std::vector<ncclComm_t> comms_of(const NcclNodeSplit& split, const char* op) {
    std::vector<ncclComm_t> comms;
    if (split.my_node_ranks.size() > 1) comms.push_back(comm_for(split.my_node_ranks, op));
    if (leads(split) && split.leaders.size() > 1) comms.push_back(comm_for(split.leaders, op));
    return comms;
  }

  // Every member's n floats summed into its node leader's data (a reduce inside
  // the node), then all-reduced among the leaders. Other members' data is
  // left as it was.
  void sum_on_leaders(const char* op, float* data, uint64_t n, const NcclNodeSplit& split) {
    const uint64_t bytes = n * sizeof(float);
    if (split.my_node_ranks.size() > 1) {
      ncclComm_t node = comm_for(split.my_node_ranks, op);
      NcclGroup calls(*this, node, op);
      calls.add(ncclReduce(data, data, n, ncclFloat32, ncclSum, 0, node, stream_), "ncclReduce");
      calls.end();
      count_ring(ring::reduce(bytes, node_position(split), 0), split.my_node_ranks, node_position(split));
    }
    if (leads(split) && split.leaders.size() > 1) {
      ncclComm_t leaders = comm_for(split.leaders, op);
      NcclGroup calls(*this, leaders, op);
      calls.add(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, leaders, stream_), "ncclAllReduce");
      calls.end();
      const Partition across = Partition::even(n, static_cast<int>(split.leaders.size()));
      count_ring(ring::all_reduce(float_block_bytes(across), split.my_node), split.leaders,
                 split.my_node);
    }
  }

  // The leader's n floats to every member of its node.
  void broadcast_in_node(const char* op, float* data, uint64_t n, const NcclNodeSplit& split) {
    if (split.my_node_ranks.size() <= 1) return;
    ncclComm_t node = comm_for(split.my_node_ranks, op);
    NcclGroup calls(*this, node, op);
    calls.add(ncclBroadcast(data, data, n, ncclFloat32, 0, node, stream_), "ncclBroadcast");
    calls.end();
    const int members = static_cast<int>(split.my_node_ranks.size());
    count_ring(ring::broadcast(n * sizeof(float), node_position(split), 0, members), split.my_node_ranks,
               node_position(split));
  }

  // After sum_on_leaders: the leader sends each member of its node that
  // member's shard of the sum and keeps its own.
  void scatter_in_node(const char* op, float* data, float* shard, const Partition& partition, const Group& group,
                       const NcclNodeSplit& split) {
    const int me = position_in(group, op);
    const std::vector<int>& positions = split.members[split.my_node];
    if (leads(split)) copy_on_device(shard, data + partition.begin(me), partition.size(me) * sizeof(float), op);
    if (split.my_node_ranks.size() <= 1) return;
    ncclComm_t node = comm_for(split.my_node_ranks, op);
    NcclGroup calls(*this, node, op);
    if (leads(split)) {
      for (size_t k = 1; k < positions.size(); ++k) {
        const int position = positions[k];
        send(calls, data + partition.begin(position), partition.size(position) * sizeof(float), static_cast<int>(k),
             group[position], node);
      }
    } else {
      receive(calls, shard, partition.size(me) * sizeof(float), 0, node);
    }
    calls.end();
  }

  // Every member's shard into its node leader's `full`, then the leaders
  // broadcast their nodes' shards to each other, one shard at a time.
  void gather_on_leaders(const char* op, const float* shard, float* full, const Partition& partition,
                         const Group& group, const NcclNodeSplit& split) {
    const int me = position_in(group, op);
    const std::vector<int>& positions = split.members[split.my_node];
    if (leads(split)) copy_on_device(full + partition.begin(me), shard, partition.size(me) * sizeof(float), op);
    if (split.my_node_ranks.size() > 1) {
      ncclComm_t node = comm_for(split.my_node_ranks, op);
      NcclGroup calls(*this, node, op);
      if (leads(split)) {
        for (size_t k = 1; k < positions.size(); ++k) {
          const int position = positions[k];
          receive(calls, full + partition.begin(position), partition.size(position) * sizeof(float),
                  static_cast<int>(k), node);
        }
      } else {
        send(calls, shard, partition.size(me) * sizeof(float), 0, split.my_node_ranks.front(), node);
      }
      calls.end();
    }
    if (!leads(split) || split.leaders.size() <= 1) return;
    ncclComm_t leaders = comm_for(split.leaders, op);
    std::vector<uint64_t> node_block_bytes;
    NcclGroup calls(*this, leaders, op);
    for (size_t node = 0; node < split.members.size(); ++node) {
      uint64_t block_bytes = 0;
      for (int position : split.members[node]) {
        if (partition.size(position) == 0) continue;
        float* place = full + partition.begin(position);
        calls.add(ncclBroadcast(place, place, partition.size(position), ncclFloat32, static_cast<int>(node), leaders,
                                stream_),
                  "ncclBroadcast");
        block_bytes += partition.size(position) * sizeof(float);
      }
      node_block_bytes.push_back(block_bytes);
    }
    calls.end();
    count_ring(ring::all_gather(node_block_bytes, split.my_node), split.leaders, split.my_node);
  }

  Topology topology_;
  Arena& arena_;
  std::chrono::milliseconds timeout_;
  cudaStream_t stream_;
  int rank_ = 0;
  int world_ = 1;
  MPI_Comm bootstrap_ = MPI_COMM_NULL;  // MPI_COMM_WORLD's duplicate: the id messages meet no one else's
  BootstrapMessage outgoing_{};        // the last id this rank sent: alive as long as the sends may be
  ncclComm_t world_comm_ = nullptr;
  ncclComm_t pending_comm_ = nullptr;  // a communicator being created
  std::map<Group, ncclComm_t> group_comms_;
  bool aborted_ = false;
  CollectiveAlgorithm algorithm_ = CollectiveAlgorithm::flat;
  CommCounters counters_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const Topology& topology, Arena& arena,
                                                     std::chrono::milliseconds timeout, void* cuda_stream) {
  // Collective (communicator_topology and the id's broadcast), like
  // make_mpi_communicator.
  return std::make_unique<NcclCommunicator>(communicator_topology(topology, "make_nccl_communicator"), arena, timeout,
                                            static_cast<cudaStream_t>(cuda_stream));
}

}  // namespace memfront
