// The MPI communicator: comm.h's collectives over MPI point-to-point messages
// on MPI_COMM_WORLD, so that every byte is counted by the rank that sends it.
//
// Keeping messages apart. Each communicator instance owns its own range of MPI
// tags, and within it every collective call on a group takes the group's next
// tag (members of a group call its collectives in the same order, so they
// agree on it). A message left behind by a collective that timed out has a tag
// that no later receive of its group expects, nor any receive of a later
// communicator: the next collective times out too instead of taking stale
// data. Inside one collective, messages between the same two ranks share the
// tag and rely on MPI's non-overtaking order: each pair posts its sends and
// receives in the same order.
//
// Waiting. Requests are posted with MPI_Isend/MPI_Irecv and completed by
// polling MPI_Test until a deadline (now + timeout at every wait), yielding the
// core between polls and, once a wait has lasted a millisecond, sleeping
// between them, so that oversubscribed ranks (more ranks than cores) still
// progress. A wait past its deadline throws CommTimeout naming the operation,
// this rank and the peer it waited for.
//
// Emulated link. On virtual nodes, a sender waits latency + bytes / bandwidth
// before it posts a message to another node: the wire time of a real link,
// paid by the sender, with no contention modelled.
#include "kernels/comm.h"

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>
#include <thread>
#include <utility>

#include "core/annotate.h"

namespace memfront {
namespace {

using Clock = std::chrono::steady_clock;

// MPI counts are ints: a longer message travels as several pieces of at most
// this many bytes (both sides cut it the same way).
constexpr uint64_t kMaxPieceBytes = uint64_t{1} << 30;

// The tag space is divided into this many slots, one per communicator instance
// (they are reused after this many instances in one process).
constexpr int kInstanceSlots = 256;
// Communicators created by this process so far. Creation is collective, so
// every rank numbers its communicators alike.
int communicators_created = 0;

// After a timeout, how long cancelled receives get to complete before their
// requests are freed.
constexpr auto kCancelGrace = std::chrono::milliseconds(100);

int wrap(int index, int size) { return ((index % size) + size) % size; }

// Sleep while the emulated wire time is long, then yield until it is over:
// a sleep overshoots by tens of microseconds, a link latency may be 5 us.
void wait_for_emulated_link(double seconds) {
  constexpr auto kYieldWindow = std::chrono::microseconds(200);
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  if (until - Clock::now() > kYieldWindow) std::this_thread::sleep_until(until - kYieldWindow);
  while (Clock::now() < until) std::this_thread::yield();
}

void add_into(float* sum, const float* addend, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) sum[i] += addend[i];
}

// One collective call in progress: its name (for errors) and the tag of all its messages.
struct Operation {
  const char* name;
  int tag;
};

// Where one member's contribution to an all-gather lies (in the output, or in
// a staging buffer).
struct Block {
  std::byte* data;
  uint64_t bytes;
};

std::vector<Block> float_blocks(float* data, const Partition& partition) {
  std::vector<Block> blocks;
  for (int shard = 0; shard < partition.shards(); ++shard) {
    blocks.push_back({reinterpret_cast<std::byte*>(data + partition.begin(shard)), partition.size(shard) * sizeof(float)});
  }
  return blocks;
}

// The messages posted for one step of a collective. wait() completes them all
// or throws CommTimeout. Requests still pending when it is destroyed (after a
// timeout, or an exception between posting and waiting) are abandoned: the
// receives cancelled and every request freed, best effort. Declare it after
// the buffers its messages use, so that it is destroyed before them.
class PendingMessages {
 public:
  PendingMessages(int my_rank, const Operation& operation, std::chrono::milliseconds timeout)
      : my_rank_(my_rank), operation_(operation), timeout_(timeout) {}
  ~PendingMessages() { abandon(); }
  PendingMessages(const PendingMessages&) = delete;
  PendingMessages& operator=(const PendingMessages&) = delete;

  const Operation& operation() const { return operation_; }
  void add(MPI_Request request, int peer, bool is_receive) { pending_.push_back({request, peer, is_receive}); }

  void wait() {
    const DeadlinePoll poll(timeout_);
    while (true) {
      bool all_done = true;
      for (Pending& message : pending_) {
        if (message.request == MPI_REQUEST_NULL) continue;
        int done = 0;
        MPI_Test(&message.request, &done, MPI_STATUS_IGNORE);  // sets the request to MPI_REQUEST_NULL when done
        all_done = all_done && done;
      }
      if (all_done) {
        pending_.clear();
        return;
      }
      if (poll.expired()) throw CommTimeout(timeout_message());
      poll.pause();
    }
  }

 private:
  struct Pending {
    MPI_Request request;
    int peer;
    bool is_receive;
  };

  // Names a receive that has not arrived if there is one (the usual case: a
  // peer that is late or gone), else a send its peer has not taken.
  std::string timeout_message() const {
    const std::string prefix = "rank " + std::to_string(my_rank_) + ": " + operation_.name + ": ";
    for (const Pending& message : pending_) {
      if (message.request != MPI_REQUEST_NULL && message.is_receive) {
        return prefix + "no message from rank " + std::to_string(message.peer) + " within " + seconds_text(timeout_);
      }
    }
    for (const Pending& message : pending_) {
      if (message.request != MPI_REQUEST_NULL) {
        return prefix + "rank " + std::to_string(message.peer) + " did not receive its message within " +
               seconds_text(timeout_);
      }
    }
    return prefix + "timed out";
  }

  // A cancelled receive that had not matched completes at once and will not
  // write into its buffer. Sends cannot be cancelled reliably (Open MPI does
  // not), so they are freed and finish in the background if their peer ever
  // receives them; small ones have already been copied out.
  void abandon() {
    for (Pending& message : pending_) {
      if (message.request != MPI_REQUEST_NULL && message.is_receive) MPI_Cancel(&message.request);
    }
    const auto grace_end = Clock::now() + kCancelGrace;
    for (Pending& message : pending_) {
      int done = 0;
      while (message.request != MPI_REQUEST_NULL && message.is_receive && !done && Clock::now() < grace_end) {
        MPI_Test(&message.request, &done, MPI_STATUS_IGNORE);
        if (!done) std::this_thread::yield();
      }
      if (message.request != MPI_REQUEST_NULL) MPI_Request_free(&message.request);
    }
    pending_.clear();
  }

  int my_rank_;
  Operation operation_;
  std::chrono::milliseconds timeout_;
  std::vector<Pending> pending_;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(Topology topology, Arena& arena, std::chrono::milliseconds timeout)
      : topology_(std::move(topology)), arena_(arena), timeout_(timeout) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    int* tag_upper_bound = nullptr;
    int found = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_upper_bound, &found);
    // MPI guarantees tags up to at least 32767.
    const int64_t tag_count = found ? int64_t{*tag_upper_bound} + 1 : 32768;
    tags_per_instance_ = static_cast<int>(tag_count / kInstanceSlots);
    first_tag_ = (communicators_created++ % kInstanceSlots) * tags_per_instance_;
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  const Topology& topology() const override { return topology_; }
  void set_algorithm(CollectiveAlgorithm algorithm) override { algorithm_ = algorithm; }
  const CommCounters& counters() const override { return counters_; }
  void reset_counters() override { counters_ = {}; }

  void all_reduce_sum(float* data, const Partition& partition, const Group& group) override {
    annotate::Range range("all_reduce_sum");
    const Operation op = start("all_reduce_sum", group);
    const int me = position_in(group, op);
    check_partition(partition, group, op);
    if (algorithm_ == CollectiveAlgorithm::flat) {
      ring_all_reduce(op, data, partition, group, me);
      return;
    }
    const NodeSplit split = split_by_node(group);
    sum_on_leaders(op, data, partition.total(), group, split);
    const uint64_t bytes = partition.total() * sizeof(float);
    PendingMessages messages(rank_, op, timeout_);
    if (leads(split, me, group)) {
      for (int position : local_members(split)) send(messages, data, bytes, group[position]);
    } else {
      receive(messages, data, bytes, split.leaders[split.my_node]);
    }
    messages.wait();
  }

  void reduce_scatter_sum(float* data, float* shard, const Partition& partition, const Group& group) override {
    annotate::Range range("reduce_scatter_sum");
    const Operation op = start("reduce_scatter_sum", group);
    const int me = position_in(group, op);
    check_partition(partition, group, op);
    const uint64_t my_bytes = partition.size(me) * sizeof(float);
    if (algorithm_ == CollectiveAlgorithm::flat) {
      ring_reduce_scatter(op, data, partition, group, me);
      copy_bytes(shard, data + partition.begin(me), my_bytes);
      return;
    }
    const NodeSplit split = split_by_node(group);
    sum_on_leaders(op, data, partition.total(), group, split);
    PendingMessages messages(rank_, op, timeout_);
    if (leads(split, me, group)) {
      for (int position : local_members(split)) {
        send(messages, data + partition.begin(position), partition.size(position) * sizeof(float), group[position]);
      }
      copy_bytes(shard, data + partition.begin(me), my_bytes);
    } else {
      receive(messages, shard, my_bytes, split.leaders[split.my_node]);
    }
    messages.wait();
  }

  void all_gather(const float* shard, float* full, const Partition& partition, const Group& group) override {
    annotate::Range range("all_gather");
    const Operation op = start("all_gather", group);
    const int me = position_in(group, op);
    check_partition(partition, group, op);
    if (algorithm_ == CollectiveAlgorithm::flat) {
      copy_bytes(full + partition.begin(me), shard, partition.size(me) * sizeof(float));
      ring_all_gather(op, float_blocks(full, partition), group, me);
      return;
    }
    const NodeSplit split = split_by_node(group);
    const int leader = split.leaders[split.my_node];
    if (!leads(split, me, group)) {
      // One after the other: shard may lie inside full, and a send's buffer
      // must not be written while the send is pending.
      PendingMessages shard_sent(rank_, op, timeout_);
      send(shard_sent, shard, partition.size(me) * sizeof(float), leader);
      shard_sent.wait();
      PendingMessages full_received(rank_, op, timeout_);
      receive(full_received, full, partition.total() * sizeof(float), leader);
      full_received.wait();
      return;
    }
    // Leaders collect their node's shards into one contiguous block per node
    // (node by node, members in ascending rank order), circulate the blocks
    // around the leaders' ring, and place every shard where it belongs.
    Buffer staging = arena_.allocate_array<float>(partition.total(), MemCategory::comm, "comm.all_gather.node_blocks");
    std::vector<std::vector<uint64_t>> staged_at(split.members.size());  // float offset of each member's shard in staging
    std::vector<Block> node_blocks;
    uint64_t offset = 0;
    for (size_t node = 0; node < split.members.size(); ++node) {
      const uint64_t node_begin = offset;
      for (int position : split.members[node]) {
        staged_at[node].push_back(offset);
        offset += partition.size(position);
      }
      node_blocks.push_back({staging.as<std::byte>() + node_begin * sizeof(float), (offset - node_begin) * sizeof(float)});
    }
    {
      PendingMessages messages(rank_, op, timeout_);
      const std::vector<int>& mine = split.members[split.my_node];
      for (size_t k = 0; k < mine.size(); ++k) {
        float* place = staging.as<float>() + staged_at[split.my_node][k];
        const uint64_t bytes = partition.size(mine[k]) * sizeof(float);
        if (mine[k] == me) {
          copy_bytes(place, shard, bytes);
        } else {
          receive(messages, place, bytes, group[mine[k]]);
        }
      }
      messages.wait();
    }
    ring_all_gather(op, node_blocks, split.leaders, split.my_node);
    for (size_t node = 0; node < split.members.size(); ++node) {
      for (size_t k = 0; k < split.members[node].size(); ++k) {
        const int position = split.members[node][k];
        copy_bytes(full + partition.begin(position), staging.as<float>() + staged_at[node][k],
                   partition.size(position) * sizeof(float));
      }
    }
    PendingMessages messages(rank_, op, timeout_);
    for (int position : local_members(split)) send(messages, full, partition.total() * sizeof(float), group[position]);
    messages.wait();
  }

  std::vector<Buffer> all_gather_bytes(const void* payload, uint64_t bytes, const Group& group) override {
    annotate::Range range("all_gather_bytes");
    const Operation op = start("all_gather_bytes", group);
    const int me = position_in(group, op);
    const size_t members = group.size();
    std::vector<uint64_t> sizes(members, 0);
    sizes[me] = bytes;
    std::vector<Block> size_blocks;
    for (uint64_t& size : sizes) size_blocks.push_back({reinterpret_cast<std::byte*>(&size), sizeof size});
    ring_all_gather(op, size_blocks, group, me);

    std::vector<Buffer> received;
    std::vector<Block> payload_blocks;
    for (size_t i = 0; i < members; ++i) {
      received.push_back(arena_.allocate(sizes[i], MemCategory::comm, "comm.all_gather_bytes"));
      payload_blocks.push_back({received.back().as<std::byte>(), sizes[i]});
    }
    copy_bytes(received[me].data(), payload, bytes);
    ring_all_gather(op, payload_blocks, group, me);
    return received;
  }

  std::vector<Buffer> all_to_all_bytes(const std::vector<std::pair<const void*, uint64_t>>& payloads,
                                       const Group& group) override {
    annotate::Range range("all_to_all_bytes");
    const Operation op = start("all_to_all_bytes", group);
    const int me = position_in(group, op);
    const int members = static_cast<int>(group.size());
    if (static_cast<int>(payloads.size()) != members) {
      throw std::invalid_argument(context(op) + "got " + std::to_string(payloads.size()) + " payloads for a group of " +
                                  std::to_string(members));
    }
    // Round k pairs me with the member k places after me (whom I send to) and
    // the one k places before (who sends to me): every pair meets once.
    std::vector<uint64_t> outgoing_sizes(members), incoming_sizes(members);
    for (int i = 0; i < members; ++i) outgoing_sizes[i] = payloads[i].second;
    incoming_sizes[me] = payloads[me].second;
    {
      PendingMessages messages(rank_, op, timeout_);
      for (int k = 1; k < members; ++k) {
        const int to = wrap(me + k, members), from = wrap(me - k, members);
        receive(messages, &incoming_sizes[from], sizeof(uint64_t), group[from]);
        send(messages, &outgoing_sizes[to], sizeof(uint64_t), group[to]);
      }
      messages.wait();
    }
    std::vector<Buffer> received;
    for (int i = 0; i < members; ++i) {
      received.push_back(arena_.allocate(incoming_sizes[i], MemCategory::comm, "comm.all_to_all_bytes"));
    }
    copy_bytes(received[me].data(), payloads[me].first, payloads[me].second);
    for (int k = 1; k < members; ++k) {
      const int to = wrap(me + k, members), from = wrap(me - k, members);
      PendingMessages messages(rank_, op, timeout_);
      receive(messages, received[from].data(), incoming_sizes[from], group[from]);
      send(messages, payloads[to].first, payloads[to].second, group[to]);
      messages.wait();
    }
    return received;
  }

  // Binomial tree from the root: in round k the members that already hold the
  // data (2^k of them, counted from the root along the group) each send it
  // 2^k places further on.
  void broadcast(float* data, uint64_t n, int root, const Group& group) override {
    annotate::Range range("broadcast");
    const Operation op = start("broadcast", group);
    const int me = position_in(group, op);
    const auto root_entry = std::find(group.begin(), group.end(), root);
    if (root_entry == group.end()) {
      throw std::invalid_argument(context(op) + "the root, rank " + std::to_string(root) + ", is not in the group");
    }
    const int members = static_cast<int>(group.size());
    const int root_position = static_cast<int>(root_entry - group.begin());
    const int distance_from_root = wrap(me - root_position, members);
    for (int reach = 1; reach < members; reach *= 2) {
      PendingMessages messages(rank_, op, timeout_);
      if (distance_from_root < reach && distance_from_root + reach < members) {
        send(messages, data, n * sizeof(float), group[wrap(me + reach, members)]);
      } else if (distance_from_root >= reach && distance_from_root < 2 * reach) {
        receive(messages, data, n * sizeof(float), group[wrap(me - reach, members)]);
      }
      messages.wait();
    }
  }

  // Dissemination barrier over the world: in round k every rank signals the
  // rank 2^k after it and waits for the one 2^k before it; after ceil(log2 W)
  // rounds each rank has heard, indirectly, from every other.
  void barrier() override {
    annotate::Range range("barrier");
    const Operation op = start("barrier", world_group());
    for (int distance = 1; distance < world_; distance *= 2) {
      PendingMessages messages(rank_, op, timeout_);
      post_receive(messages, nullptr, 0, wrap(rank_ - distance, world_));
      post_send(messages, nullptr, 0, wrap(rank_ + distance, world_));
      messages.wait();
    }
  }

 private:
  Operation start(const char* name, const Group& group) {
    const uint64_t sequence = calls_by_group_[group]++;
    return {name, first_tag_ + static_cast<int>(sequence % static_cast<uint64_t>(tags_per_instance_))};
  }

  std::string context(const Operation& op) const { return "rank " + std::to_string(rank_) + ": " + op.name + ": "; }

  int position_in(const Group& group, const Operation& op) const {
    const auto entry = std::find(group.begin(), group.end(), rank_);
    if (entry == group.end()) throw std::invalid_argument(context(op) + "this rank is not in the group");
    for (int member : group) {
      if (member < 0 || member >= world_) {
        throw std::invalid_argument(context(op) + "group member " + std::to_string(member) + " is not a rank of world=" +
                                    std::to_string(world_));
      }
    }
    return static_cast<int>(entry - group.begin());
  }

  void check_partition(const Partition& partition, const Group& group, const Operation& op) const {
    if (partition.shards() != static_cast<int>(group.size())) {
      throw std::invalid_argument(context(op) + "the partition has " + std::to_string(partition.shards()) +
                                  " shards for a group of " + std::to_string(group.size()));
    }
  }

  static void copy_bytes(void* to, const void* from, uint64_t bytes) {
    if (to != from && bytes > 0) std::memmove(to, from, bytes);
  }

  // --- point to point ------------------------------------------------------

  // A payload of zero bytes is not sent at all: both sides know its size.
  void receive(PendingMessages& messages, void* data, uint64_t bytes, int from) {
    if (bytes > 0) post_receive(messages, data, bytes, from);
  }
  void send(PendingMessages& messages, const void* data, uint64_t bytes, int to) {
    if (bytes > 0) post_send(messages, data, bytes, to);
  }

  void post_receive(PendingMessages& messages, void* data, uint64_t bytes, int from) {
    auto* at = static_cast<std::byte*>(data);
    uint64_t posted = 0;
    do {
      const int piece = static_cast<int>(std::min(bytes - posted, kMaxPieceBytes));
      MPI_Request request = MPI_REQUEST_NULL;
      MPI_Irecv(at + posted, piece, MPI_BYTE, from, messages.operation().tag, MPI_COMM_WORLD, &request);
      messages.add(request, from, true);
      posted += static_cast<uint64_t>(piece);
    } while (posted < bytes);
  }

  void post_send(PendingMessages& messages, const void* data, uint64_t bytes, int to) {
    const bool same_node = topology_.same_node(rank_, to);
    if (topology_.emulated && !same_node) {
      wait_for_emulated_link(topology_.link_latency_s + static_cast<double>(bytes) / topology_.link_bytes_per_s);
    }
    (same_node ? counters_.intra_node_bytes : counters_.inter_node_bytes) += bytes;
    counters_.messages += 1;
    const auto* at = static_cast<const std::byte*>(data);
    uint64_t posted = 0;
    do {
      const int piece = static_cast<int>(std::min(bytes - posted, kMaxPieceBytes));
      MPI_Request request = MPI_REQUEST_NULL;
      MPI_Isend(at + posted, piece, MPI_BYTE, to, messages.operation().tag, MPI_COMM_WORLD, &request);
      messages.add(request, to, false);
      posted += static_cast<uint64_t>(piece);
    } while (posted < bytes);
  }

  // --- flat rings ----------------------------------------------------------

  // The classic ring: in step s member i sends chunk i-s-1 to its successor
  // and adds chunk i-s-2, received from its predecessor, into its own copy.
  // After W-1 steps member i holds the sum of chunk i, in place in data; every
  // chunk c was summed in the same order, starting at member c+1.
  void ring_reduce_scatter(const Operation& op, float* data, const Partition& partition, const Group& ring, int me) {
    const int members = static_cast<int>(ring.size());
    if (members == 1) return;
    const int successor = ring[wrap(me + 1, members)], predecessor = ring[wrap(me - 1, members)];
    uint64_t largest_chunk = 0;
    for (int chunk = 0; chunk < members; ++chunk) largest_chunk = std::max(largest_chunk, partition.size(chunk));
    Buffer incoming = arena_.allocate_array<float>(largest_chunk, MemCategory::comm, "comm.reduce_scatter.chunk");
    for (int step = 0; step < members - 1; ++step) {
      const int outgoing_chunk = wrap(me - step - 1, members), incoming_chunk = wrap(me - step - 2, members);
      PendingMessages messages(rank_, op, timeout_);
      receive(messages, incoming.data(), partition.size(incoming_chunk) * sizeof(float), predecessor);
      send(messages, data + partition.begin(outgoing_chunk), partition.size(outgoing_chunk) * sizeof(float), successor);
      messages.wait();
      add_into(data + partition.begin(incoming_chunk), incoming.as<float>(), partition.size(incoming_chunk));
    }
  }

  // Blocks circulate around the ring: in step s member i passes block i-s on
  // to its successor and receives block i-s-1 from its predecessor, straight
  // into place. blocks[me] must hold my contribution; blocks may differ in size.
  void ring_all_gather(const Operation& op, const std::vector<Block>& blocks, const Group& ring, int me) {
    const int members = static_cast<int>(ring.size());
    const int successor = ring[wrap(me + 1, members)], predecessor = ring[wrap(me - 1, members)];
    for (int step = 0; step < members - 1; ++step) {
      const Block& outgoing = blocks[wrap(me - step, members)];
      const Block& incoming = blocks[wrap(me - step - 1, members)];
      PendingMessages messages(rank_, op, timeout_);
      receive(messages, incoming.data, incoming.bytes, predecessor);
      send(messages, outgoing.data, outgoing.bytes, successor);
      messages.wait();
    }
  }

  void ring_all_reduce(const Operation& op, float* data, const Partition& partition, const Group& ring, int me) {
    ring_reduce_scatter(op, data, partition, ring, me);
    ring_all_gather(op, float_blocks(data, partition), ring, me);
  }

  // --- hierarchical --------------------------------------------------------

  NodeSplit split_by_node(const Group& group) const { return memfront::split_by_node(topology_, group, rank_); }

  bool leads(const NodeSplit& split, int me, const Group& group) const {
    return split.leaders[split.my_node] == group[me];
  }

  // The group positions on my node other than its leader.
  static std::vector<int> local_members(const NodeSplit& split) {
    const std::vector<int>& mine = split.members[split.my_node];
    return {mine.begin() + 1, mine.end()};
  }

  // Steps 1 and 2 of the hierarchical reductions: every member sends its data
  // to its node's leader, which sums them in ascending rank order (its own
  // first), then the leaders all-reduce their sums around their ring. On
  // return every leader's data holds the group's sum; other members' data is
  // unchanged.
  void sum_on_leaders(const Operation& op, float* data, uint64_t n, const Group& group, const NodeSplit& split) {
    const int leader = split.leaders[split.my_node];
    if (leader != rank_) {
      PendingMessages messages(rank_, op, timeout_);
      send(messages, data, n * sizeof(float), leader);
      messages.wait();
      return;
    }
    const std::vector<int> members = local_members(split);
    if (!members.empty()) {
      Buffer incoming = arena_.allocate_array<float>(n, MemCategory::comm, "comm.node_reduce.incoming");
      for (int position : members) {
        PendingMessages messages(rank_, op, timeout_);
        receive(messages, incoming.data(), n * sizeof(float), group[position]);
        messages.wait();
        add_into(data, incoming.as<float>(), n);
      }
    }
    const int leader_count = static_cast<int>(split.leaders.size());
    ring_all_reduce(op, data, Partition::even(n, leader_count), split.leaders, split.my_node);
  }

  Topology topology_;
  Arena& arena_;
  std::chrono::milliseconds timeout_;
  int rank_ = 0;
  int world_ = 1;
  int first_tag_ = 0;
  int tags_per_instance_ = 1;
  std::map<Group, uint64_t> calls_by_group_;  // collectives called so far, per group
  CollectiveAlgorithm algorithm_ = CollectiveAlgorithm::flat;
  CommCounters counters_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const Topology& topology, Arena& arena,
                                                    std::chrono::milliseconds timeout) {
  // Collective (communicator_topology), which also keeps every rank's count
  // of communicators, and so their tags, in step.
  return std::make_unique<MpiCommunicator>(communicator_topology(topology, "make_mpi_communicator"), arena, timeout);
}

}  // namespace memfront
