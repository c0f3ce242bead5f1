// The cost model (cost_model.h). The tuner never links the kernels: the sizes
// both compute (shards, parameter units, wire formats, ring traffic, saved
// activations) come from core/closed_forms.h, and what is derived here (the
// moments memory peaks, the messages of each collective, FLOPs) names the
// kernel code whose behaviour it states (kernels/model.cpp, shard.cpp,
// comm_mpi.cpp, cpu/ops.cpp), so that a change there is easy to follow here.
//
// Memory. A rank's arena holds, for the whole step, its parameters, gradients
// and AdamW moments (per strategy), the error-feedback residual, the model's
// workspace and the input tokens. On top of that come, at known moments,
// saved activations, recomputed segments, gathered units, whole-unit gradient
// buffers and the buffers of one collective at a time. The model lists those
// moments as snapshots of live bytes by category; a category's peak is its
// largest value over the snapshots, the total's peak the largest sum. The
// snapshots are those that can hold a maximum: the start of backward (all
// activations saved, the head's units gathered), the top block of every
// backward segment, the last gradient reduction, every collective of the
// optimizer step, the evaluation's logits and zero3's initialization. Other
// moments are dominated by one of these (the forward pass holds a subset of
// what the start of backward holds; evaluation gathers the same units as
// training with fewer tensors live).
//
// Bytes. memfront's collectives are point-to-point algorithms whose every
// message is known from the group, the partition and the topology, so the
// bytes each rank sends, and whether they cross nodes, are counted here
// message by message, exactly as comm_mpi.cpp sends them.
//
// Time. FLOPs per rank at the calibrated GEMM and attention rates, the bytes of
// the memory-bound ops at the calibrated streaming bandwidth, and for each
// message a rank waits on, latency + bytes / bandwidth of its link.
#include "tuner/cost_model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/closed_forms.h"
#include "core/step_calls.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/topology.h"

namespace memfront {

using nlohmann::json;

// ---------------------------------------------------------------------------
// Calibration files
// ---------------------------------------------------------------------------

std::filesystem::path default_calibration_path() {
  if (const char* explicit_path = std::getenv("MEMFRONT_CALIBRATION"); explicit_path && *explicit_path) {
    return explicit_path;
  }
  std::filesystem::path cache;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    cache = xdg;
  } else {
    const char* home = std::getenv("HOME");
    cache = std::filesystem::path(home && *home ? home : ".") / ".cache";
  }
  return cache / "memfront" / "calibration.json";
}

Calibration load_calibration(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return Calibration{};
  const json j = read_json_file(path, "calibration file");
  return calibration_from_json(j, path.string());
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

namespace {

constexpr uint64_t kFloat = 4;

// The step's reusable buffers (Gpt::Workspace in kernels/model.cpp) and the
// trial's input and target tokens (two int32 B x T arrays, kernels/trial.cpp):
// 36 float arrays of N x C (the residual stream and its gradient, two each;
// x_in, ln1, att_out, att_proj, x_mid, ln2, fc_proj, dln, dx_mid, datt; qkv and
// dqkv of 3C; fc, gelu, dgelu, dfc of 4C), 5 of N (two LayerNorms' mean and
// rstd, the losses), the attention buffer (dense: B*H*T*T floats; Top-K:
// B*H*T*K floats and as many uint16 indices) with its scratch
// (Ops::attention_scratch_floats: on the CPU T*T floats dense, 2*T*T Top-K; on the
// GPU B*H*T floats, kernels/cuda/attention.cu) and the tokens.
uint64_t workspace_bytes(const Config& c) {
  const uint64_t B = c.batch.micro, T = c.model.seq, C = c.model.width, H = c.model.heads;
  const uint64_t K = c.topk.attention, N = B * T;
  const uint64_t scratch = c.backend == Backend::cuda ? B * H * T : K == 0 ? T * T : 2 * T * T;
  const uint64_t attention =
      (K == 0 ? B * H * T * T * kFloat : B * H * T * K * (kFloat + sizeof(uint16_t))) + scratch * kFloat;
  return (36 * N * C + 5 * N) * kFloat + attention + 2 * N * sizeof(int32_t);
}

// ---------------------------------------------------------------------------
// Groups and how the collectives see them
// ---------------------------------------------------------------------------

using Group = std::vector<int>;  // world ranks in ascending order: the ring order

// The shard groups (kernels/shard.cpp): consecutive ranks.
std::vector<Group> shard_groups(const Config& c) {
  const int G = shard_group_size(c);
  std::vector<Group> groups(c.world / G);
  for (int r = 0; r < c.world; ++r) groups[r / G].push_back(r);
  return groups;
}

// hybrid's replica groups: the ranks that hold the same shard, r, r+G, r+2G,
// ...; none when one shard group spans the world.
std::vector<Group> replica_groups(const Config& c) {
  std::vector<Group> groups;
  const int G = shard_group_size(c);
  if (G == c.world) return groups;
  groups.resize(G);
  for (int r = 0; r < c.world; ++r) groups[r % G].push_back(r);
  return groups;
}

// A group as comm_mpi.cpp's algorithms see it: its ring edges, and its split
// by node for the hierarchical algorithms (the lowest-ranked member of each
// node leads it; leaders form a ring across nodes in ascending rank order).
struct GroupLinks {
  GroupLinks(const Group& group, const Topology& topology) : ranks(group) {
    const int m = static_cast<int>(group.size());
    std::vector<int> node_index(topology.node_count(), -1);
    for (int position = 0; position < m; ++position) {
      int& index = node_index[topology.node_of(group[position])];
      if (index < 0) {
        index = static_cast<int>(nodes.size());
        nodes.emplace_back();
      }
      nodes[index].push_back(position);
      node_of_position.push_back(index);
    }
    for (int position = 0; position < m; ++position) {
      successor_inter.push_back(node_of_position[position] != node_of_position[(position + 1) % m]);
      ring_crosses = ring_crosses || successor_inter.back();
    }
    // all_to_all_bytes: round k pairs every member with the one k places on;
    // a round waits on its slowest pair.
    for (int k = 1; k < m && nodes.size() > 1; ++k) {
      for (int position = 0; position < m; ++position) {
        if (node_of_position[position] != node_of_position[(position + k) % m]) {
          ++inter_rounds;
          break;
        }
      }
    }
  }

  int members() const { return static_cast<int>(ranks.size()); }
  int node_mates(int position) const { return static_cast<int>(nodes[node_of_position[position]].size()) - 1; }
  bool leads(int position) const { return nodes[node_of_position[position]].front() == position; }
  int largest_node() const {
    size_t largest = 0;
    for (const auto& node : nodes) largest = std::max(largest, node.size());
    return static_cast<int>(largest);
  }

  Group ranks;
  std::vector<std::vector<int>> nodes;  // positions on each node, ascending; nodes by their lowest rank
  std::vector<int> node_of_position;
  std::vector<bool> successor_inter;    // does position i's ring edge to i+1 cross nodes
  bool ring_crosses = false;
  int inter_rounds = 0;
};

// How one rank takes part in one kind of group, for its transient buffers.
struct Role {
  int members = 1;
  int position = 0;    // shard index
  bool leads = false;  // hierarchical: collects and redistributes its node's data
  int node_mates = 0;  // the other members on its node
  int nodes = 1;       // nodes the group spans
};

std::vector<Role> roles(const std::vector<GroupLinks>& groups, int world) {
  std::vector<Role> by_rank(world);
  for (const GroupLinks& g : groups) {
    for (int position = 0; position < g.members(); ++position) {
      by_rank[g.ranks[position]] = {g.members(), position, g.leads(position), g.node_mates(position),
                                    static_cast<int>(g.nodes.size())};
    }
  }
  return by_rank;
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

// The strategy's choices (kernels/shard.cpp TrainingState).
struct Strategy {
  explicit Strategy(const Config& c) {
    const StrategyTraits& s = traits(c.shard.strategy);
    shards_optimizer = s.shards_optimizer;
    shards_grads = s.shards_grads;
    shards_params = s.shards_params;
    sparse_grads = c.topk.grad < 1.0;
    quantized_grads = c.quant.grad != DType::fp32;
    // The residual keeps, for every parameter, what compression did not send.
    residual = (quantized_grads && c.quant.error_feedback) || (sparse_grads && c.topk.error_feedback);
  }
  bool shards_optimizer, shards_grads, shards_params, sparse_grads, quantized_grads, residual;
};

// The comm buffers one collective of a unit of n elements holds at its
// fullest on a rank (comm_mpi.cpp and shard.cpp), by what the step does.
class Transients {
 public:
  Transients(const Config& c, bool hierarchical) : c_(c), hierarchical_(hierarchical) {}

  // Flat reduce-scatter: the ring's incoming chunk, the largest shard.
  // Hierarchical: a leader with node-mates receives their whole data (n), then
  // all-reduces across leaders with a chunk of n / nodes; other members only send.
  uint64_t float_reduction(uint64_t n, const Role& role) const {
    if (role.members == 1) return 0;
    if (!hierarchical_) return largest_shard(n, role.members) * kFloat;
    if (!role.leads) return 0;
    const uint64_t from_mates = role.node_mates > 0 ? n * kFloat : 0;
    const uint64_t ring_chunk = role.nodes > 1 ? largest_shard(n, role.nodes) * kFloat : 0;
    return std::max(from_mates, ring_chunk);
  }

  // zero3's parameter gather of a unit (acquire_params). fp32: the flat ring
  // gathers in place; a hierarchical leader stages the whole unit. Compressed:
  // my encoded shard and every member's received one (a group of one keeps
  // only its own payload).
  uint64_t gather(uint64_t n, const Role& role) const {
    const DType format = c_.quant.weights;
    if (format == DType::fp32) return hierarchical_ && role.members > 1 && role.leads ? n * kFloat : 0;
    return encoded_all_gather(n, role, format);
  }

  // A gradient reduction into my shard (release_grads, and zero1's optimizer
  // step): the reduced shard, plus fp32: the reduce-scatter's buffers;
  // compressed: my encoded parts for every member and, from a group of more
  // than one, the part of mine every member sent.
  uint64_t reduction(uint64_t n, const Role& role) const {
    const uint64_t mine = shard_size(n, role.members, role.position);
    return mine * kFloat + reduction_buffers(n, role);
  }

  // ddp's all-reduce of a unit (optimizer_step). Top-K: my payload and every
  // member's; quantized: the reduced shard beside the compressed
  // reduce-scatter, then beside the compressed all-gather of the sums; fp32:
  // the all-reduce's reduce-scatter half.
  uint64_t all_reduce(uint64_t n, const Role& role) const {
    if (c_.topk.grad < 1.0) return sparse_payloads(n, role);
    if (c_.quant.grad != DType::fp32) {
      const uint64_t mine = shard_size(n, role.members, role.position);
      return mine * kFloat + std::max(reduction_buffers(n, role), encoded_all_gather(n, role, c_.quant.grad));
    }
    return float_reduction(n, role);
  }

  // Top-K's all-gather of index/value payloads (ddp, and zero1 with Top-K):
  // mine and, from a group of more than one, every member's, mine included.
  uint64_t sparse_payloads(uint64_t n, const Role& role) const {
    const uint64_t payload = topk_bytes(topk_count(n, c_.topk.grad));
    return payload * (role.members > 1 ? 1 + role.members : 1);
  }

  // zero1/zero2 bring every rank's parameters up to date: my shard, copied
  // out, and for a hierarchical leader the staged unit.
  uint64_t parameter_update(uint64_t n, const Role& role) const {
    const uint64_t mine = shard_size(n, role.members, role.position) * kFloat;
    return mine + (hierarchical_ && role.leads ? n * kFloat : 0);
  }

 private:
  uint64_t reduction_buffers(uint64_t n, const Role& role) const {
    const DType format = c_.quant.grad;
    if (format == DType::fp32) return float_reduction(n, role);
    const int block = c_.quant.block;
    const uint64_t sent = sum_over_shards(n, role.members, [&](uint64_t size) { return blockwise_bytes(size, format, block); });
    const uint64_t mine = blockwise_bytes(shard_size(n, role.members, role.position), format, block);
    return sent + (role.members > 1 ? role.members * mine : 0);
  }

  uint64_t encoded_all_gather(uint64_t n, const Role& role, DType format) const {
    const int block = c_.quant.block;
    const uint64_t mine = blockwise_bytes(shard_size(n, role.members, role.position), format, block);
    if (role.members == 1) return mine;
    return mine + sum_over_shards(n, role.members, [&](uint64_t size) { return blockwise_bytes(size, format, block); });
  }

  const Config& c_;
  bool hierarchical_;
};

// Largest live bytes per category and in total over a rank's snapshots.
struct Peaks {
  void see(const BytesByCategory& live) {
    uint64_t total = 0;
    for (int i = 0; i < kMemCategoryCount; ++i) {
      peak[i] = std::max(peak[i], live[i]);
      total += live[i];
    }
    peak_total = std::max(peak_total, total);
  }
  BytesByCategory peak{};
  uint64_t peak_total = 0;
};

uint64_t& at(BytesByCategory& bytes, MemCategory category) { return bytes[static_cast<int>(category)]; }

// One rank's peaks, from the snapshots listed at the top of this file.
Peaks rank_peaks(const Config& c, const ParamUnits& units, const Strategy& s, const SavedActivationBytes& saved,
                 const Transients& transients, const Role& shard, const Role& replica) {
  using M = MemCategory;
  const uint64_t psi = units.total, U0 = units.embedding, Ub = units.block, Un = units.final_norm;
  uint64_t owned = 0;  // every unit's shard of this rank (the whole model when nothing is sharded)
  for (int u = 0; u < units.count(); ++u) owned += shard_size(units.size(u), shard.members, shard.position);

  BytesByCategory persistent{};
  at(persistent, M::params) = (s.shards_params ? owned : psi) * kFloat;
  at(persistent, M::grads) = (s.shards_grads ? owned : psi) * kFloat;
  at(persistent, M::optimizer) = 2 * (s.shards_optimizer ? owned : psi) * kFloat;  // AdamW m and v
  at(persistent, M::comm) = s.residual ? psi * kFloat : 0;

  Peaks peaks;
  // zero3 builds each unit whole in a workspace buffer and keeps its shard,
  // before the model (and its workspace) exists.
  if (s.shards_params) {
    BytesByCategory live = persistent;
    at(live, M::workspace) = units.largest() * kFloat;
    peaks.see(live);
  }
  at(persistent, M::workspace) = workspace_bytes(c);

  // A snapshot of training: persistent state, then what is live on top of it.
  // `gathered` are zero3's whole units of parameters, `whole_grads` zero2/3's
  // whole-unit gradient buffers; both are absent under the other strategies.
  auto see = [&](uint64_t activations, uint64_t recompute, uint64_t gathered, uint64_t whole_grads, uint64_t comm,
                 uint64_t workspace) {
    BytesByCategory live = persistent;
    at(live, M::activations) += activations;
    at(live, M::recompute) += recompute;
    at(live, M::params) += s.shards_params ? gathered * kFloat : 0;
    at(live, M::grads) += s.shards_grads ? whole_grads * kFloat : 0;
    at(live, M::comm) += comm;
    at(live, M::workspace) += workspace;
    peaks.see(live);
  };
  auto gather = [&](uint64_t n) { return s.shards_params ? transients.gather(n, shard) : 0; };
  auto reduce = [&](uint64_t n) { return s.shards_grads ? transients.reduction(n, shard) : 0; };

  // Start of backward, in head_backward: every activation saved, the
  // embedding's whole gradient held for the whole backward (the tied LM head
  // and the lookup both add to it); the embedding, then the final LayerNorm
  // gathered; the final LayerNorm's gradient reduced while both are gathered.
  const int L = c.model.layers, k = c.checkpoint.every;
  const uint64_t checkpoints = saved.checkpoints;
  const uint64_t head_time = (k == 0 ? L * saved.block : checkpoints * saved.block_input) + saved.head;
  see(head_time, 0, U0, U0, gather(U0), 0);
  see(head_time, 0, U0 + Un, U0, gather(Un), 0);
  see(head_time, 0, U0 + Un, U0 + Un, reduce(Un), 0);

  // The top block of each backward segment, when all of the segment's saved
  // tensors are live: gathering its parameters, then reducing its gradient.
  // Without checkpointing the one segment is all L blocks, saved as
  // activations. With checkpointing, segment i keeps checkpoints 0..i
  // (activations) and recomputes its blocks (recompute), the first of which
  // adopts its checkpoint instead of storing its input again.
  auto block_top = [&](uint64_t activations, uint64_t recompute) {
    see(activations, recompute, Ub, U0, gather(Ub), 0);
    see(activations, recompute, Ub, U0 + Ub, reduce(Ub), 0);
  };
  if (k == 0) {
    block_top(L * saved.block, 0);
  } else {
    for (uint64_t segment = 0; segment < checkpoints; ++segment) {
      const uint64_t blocks = std::min<uint64_t>(k, L - segment * k);
      block_top((segment + 1) * saved.block_input, blocks * saved.block - saved.block_input);
    }
  }
  // End of backward: the embedding's gradient reduced, nothing else held.
  see(0, 0, 0, U0, reduce(U0), 0);

  // The optimizer step's collectives, one unit at a time.
  for (int u = 0; u < units.count(); ++u) {
    const uint64_t n = units.size(u);
    if (!s.shards_grads) {
      if (c.shard.strategy == ShardStrategy::ddp || s.sparse_grads) {
        see(0, 0, 0, 0, transients.all_reduce(n, shard), 0);
      } else {
        see(0, 0, 0, 0, transients.reduction(n, shard), 0);
      }
      // Top-K encodes from an n-float workspace scratch, beside its payload.
      if (s.sparse_grads) see(0, 0, 0, 0, topk_bytes(topk_count(n, c.topk.grad)), n * kFloat);
    }
    if (replica.members > 1) {
      see(0, 0, 0, 0, transients.float_reduction(shard_size(n, shard.members, shard.position), replica), 0);
    }
    if (s.shards_optimizer && !s.shards_params && shard.members > 1) {
      see(0, 0, 0, 0, transients.parameter_update(n, shard), 0);
    }
  }

  // Evaluation keeps its (N,V) probabilities as workspace, beside the
  // gathered embedding and final LayerNorm.
  const uint64_t logits = uint64_t(c.batch.micro) * c.model.seq * c.model.vocab * kFloat;
  see(0, 0, U0 + Un, 0, 0, logits);
  return peaks;
}

// ---------------------------------------------------------------------------
// Bytes and time of communication
// ---------------------------------------------------------------------------

struct Link {
  double latency_s;
  double bytes_per_s;
  double seconds(uint64_t bytes) const { return latency_s + static_cast<double>(bytes) / bytes_per_s; }
};

// The bytes one collective call sends, all members of one group together, by
// link class, and the seconds its members wait.
struct Cost {
  uint64_t intra = 0, inter = 0;
  double seconds = 0;
  void send(bool crosses, uint64_t bytes) { (crosses ? inter : intra) += bytes; }
};

class Traffic {
 public:
  Traffic(const Topology& topology, Link intra, Link inter) : topology_(topology), intra_(intra), inter_(inter) {}

  // The inter-node link of a config is emulated (comm_mpi.cpp): the sender
  // waits the link's wire time before it posts the message, which then
  // travels between the processes like any other. (On a cluster, where the
  // nodes are real, that counts one local transfer too many.)
  double message_s(bool crosses, uint64_t bytes) const {
    return intra_.seconds(bytes) + (crosses ? inter_.seconds(bytes) : 0.0);
  }
  // A ring step waits on its slowest edge.
  double ring_step_s(const GroupLinks& g, uint64_t bytes) const { return message_s(g.ring_crosses, bytes); }

  // ring_reduce_scatter: in m-1 steps member i sends every chunk but its own,
  // chunk j being shard j of the partition, to its successor.
  Cost ring_reduce_scatter(const GroupLinks& g, uint64_t n) const {
    Cost cost;
    const int m = g.members();
    const std::vector<uint64_t> chunks = float_shard_bytes(n, m);
    for (int i = 0; i < m; ++i) cost.send(g.successor_inter[i], ring::reduce_scatter(chunks, i).bytes);
    cost.seconds = (m - 1) * ring_step_s(g, largest_shard(n, m) * kFloat);
    return cost;
  }

  // ring_all_gather: blocks circulate; member i sends every block but its
  // successor's (which the successor already has).
  Cost ring_all_gather(const GroupLinks& g, const std::function<uint64_t(int)>& block_bytes) const {
    Cost cost;
    std::vector<uint64_t> blocks;
    for (int i = 0; i < g.members(); ++i) blocks.push_back(block_bytes(i));
    for (int i = 0; i < g.members(); ++i) cost.send(g.successor_inter[i], ring::all_gather(blocks, i).bytes);
    cost.seconds = (g.members() - 1) * ring_step_s(g, *std::max_element(blocks.begin(), blocks.end()));
    return cost;
  }

  Cost float_all_gather_ring(const GroupLinks& g, uint64_t n) const {
    const int m = g.members();
    return ring_all_gather(g, [&](int i) { return shard_size(n, m, i) * kFloat; });
  }

  // all_gather_bytes: a ring all-gather of the 8-byte payload sizes, then of the payloads.
  Cost all_gather_bytes(const GroupLinks& g, const std::function<uint64_t(int)>& payload_bytes) const {
    Cost cost = ring_all_gather(g, [](int) { return uint64_t{8}; });
    add(cost, ring_all_gather(g, payload_bytes));
    return cost;
  }

  // all_to_all_bytes: every member sends every other its 8-byte size, all at
  // once, then in m-1 rounds the payloads, round k to the member k places on.
  // Here what member i receives from each other member is to_member(i) bytes.
  Cost all_to_all_bytes(const GroupLinks& g, const std::function<uint64_t(int)>& to_member) const {
    Cost cost;
    const int m = g.members();
    uint64_t largest = 0;
    for (int j = 0; j < m; ++j) {
      const uint64_t mates = g.node_mates(j), others = m - 1 - mates;
      cost.intra += mates * (8 + to_member(j));
      cost.inter += others * (8 + to_member(j));
      largest = std::max(largest, to_member(j));
    }
    cost.seconds = message_s(g.inter_rounds > 0, 8) +
                   g.inter_rounds * message_s(true, largest) +
                   (m - 1 - g.inter_rounds) * message_s(false, largest);
    return cost;
  }

  // Hierarchical, steps 1 and 2 (sum_on_leaders): every member sends its n
  // floats to its node's leader, which receives them one after the other; the
  // leaders all-reduce around their ring (partition even over the leaders).
  Cost sum_on_leaders(const GroupLinks& g, uint64_t n) const {
    Cost cost;
    const int nodes = static_cast<int>(g.nodes.size());
    for (const auto& node : g.nodes) cost.intra += (node.size() - 1) * n * kFloat;
    for (int j = 0; j < nodes; ++j) {
      const bool crosses = topology_.node_of(g.ranks[g.nodes[j].front()]) !=
                           topology_.node_of(g.ranks[g.nodes[(j + 1) % nodes].front()]);
      if (nodes > 1) {
        cost.send(crosses, (2 * n - shard_size(n, nodes, j) - shard_size(n, nodes, (j + 1) % nodes)) * kFloat);
      }
    }
    cost.seconds = (g.largest_node() - 1) * message_s(false, n * kFloat) +
                   2 * (nodes - 1) * message_s(nodes > 1, largest_shard(n, nodes) * kFloat);
    return cost;
  }

  // all_reduce_sum: flat is the ring reduce-scatter then all-gather;
  // hierarchical sums on the leaders, which send the sum to their node-mates.
  Cost all_reduce(const GroupLinks& g, uint64_t n, bool hierarchical) const {
    if (!hierarchical) {
      Cost cost = ring_reduce_scatter(g, n);
      add(cost, float_all_gather_ring(g, n));
      return cost;
    }
    Cost cost = sum_on_leaders(g, n);
    return down_to_mates(g, cost, [&](int) { return n * kFloat; });
  }

  // reduce_scatter_sum: hierarchical leaders send each node-mate its shard of the sum.
  Cost reduce_scatter(const GroupLinks& g, uint64_t n, bool hierarchical) const {
    if (!hierarchical) return ring_reduce_scatter(g, n);
    Cost cost = sum_on_leaders(g, n);
    const int m = g.members();
    return down_to_mates(g, cost, [&](int position) { return shard_size(n, m, position) * kFloat; });
  }

  // all_gather (floats): hierarchical members send their shard to the leader,
  // leaders circulate one block per node (its members' shards) around their
  // ring, and send the whole result to each node-mate.
  Cost all_gather(const GroupLinks& g, uint64_t n, bool hierarchical) const {
    if (!hierarchical) return float_all_gather_ring(g, n);
    const int m = g.members(), nodes = static_cast<int>(g.nodes.size());
    Cost cost;
    uint64_t largest_shard_bytes = 0;
    std::vector<uint64_t> node_bytes(nodes, 0);
    for (int j = 0; j < nodes; ++j) {
      for (int position : g.nodes[j]) {
        const uint64_t bytes = shard_size(n, m, position) * kFloat;
        node_bytes[j] += bytes;
        if (position != g.nodes[j].front()) cost.intra += bytes;
        largest_shard_bytes = std::max(largest_shard_bytes, bytes);
      }
    }
    uint64_t largest_block = 0;
    for (int j = 0; j < nodes; ++j) {
      const bool crosses = topology_.node_of(g.ranks[g.nodes[j].front()]) !=
                           topology_.node_of(g.ranks[g.nodes[(j + 1) % nodes].front()]);
      if (nodes > 1) cost.send(crosses, n * kFloat - node_bytes[(j + 1) % nodes]);
      largest_block = std::max(largest_block, node_bytes[j]);
    }
    cost.seconds = (g.largest_node() > 1 ? message_s(false, largest_shard_bytes) : 0.0) +
                   (nodes - 1) * message_s(nodes > 1, largest_block);
    return down_to_mates(g, cost, [&](int) { return n * kFloat; });
  }

 private:
  static void add(Cost& into, const Cost& more) {
    into.intra += more.intra;
    into.inter += more.inter;
    into.seconds += more.seconds;
  }

  // The leaders' last step: each sends its node-mates their result, all at once.
  Cost down_to_mates(const GroupLinks& g, Cost cost, const std::function<uint64_t(int)>& bytes_for) const {
    uint64_t largest = 0;
    for (const auto& node : g.nodes) {
      for (size_t k = 1; k < node.size(); ++k) {
        cost.intra += bytes_for(node[k]);
        largest = std::max(largest, bytes_for(node[k]));
      }
    }
    if (g.largest_node() > 1) cost.seconds += message_s(false, largest);
    return cost;
  }

  const Topology& topology_;
  Link intra_, inter_;
};

struct StepComm {
  uint64_t intra = 0, inter = 0;
  double seconds = 0;
};

// Every collective of one optimizer step (accum micro-batches and the
// optimizer), in kernels/shard.cpp's order, on every group at once: bytes add
// up over groups, and the step waits for the slowest group.
StepComm step_comm(const Config& c, const ParamUnits& units, const Strategy& s, const Traffic& traffic,
                   const std::vector<GroupLinks>& shard, const std::vector<GroupLinks>& replica) {
  StepComm total;
  const bool hierarchical = c.placement.collectives == CollectiveAlgo::hierarchical;
  const int G = shard.front().members();
  auto on_every = [&](const std::vector<GroupLinks>& groups, uint64_t times,
                      const std::function<Cost(const GroupLinks&, int)>& call) {
    double slowest = 0;
    for (size_t i = 0; i < groups.size(); ++i) {
      const Cost cost = call(groups[i], static_cast<int>(i));
      total.intra += times * cost.intra;
      total.inter += times * cost.inter;
      slowest = std::max(slowest, cost.seconds);
    }
    total.seconds += times * slowest;
  };
  // A reduction of every member's unit gradient into the owners' shards.
  auto reduce_unit = [&](uint64_t n, uint64_t times) {
    if (!s.quantized_grads) {
      on_every(shard, times, [&](const GroupLinks& g, int) { return traffic.reduce_scatter(g, n, hierarchical); });
    } else {
      // Compressed: member j receives its part from every other member.
      on_every(shard, times, [&](const GroupLinks& g, int) {
        return traffic.all_to_all_bytes(g, [&](int j) { return blockwise_bytes(shard_size(n, G, j), c.quant.grad, c.quant.block); });
      });
    }
  };

  const uint64_t accum = c.batch.accum;
  const int k = c.checkpoint.every;
  for (int u = 0; u < units.count(); ++u) {
    const uint64_t n = units.size(u);
    const bool embedding = u == 0, final_norm = u == units.count() - 1;
    if (G > 1 && s.shards_params) {
      // Gathers per micro-batch: the embedding for the lookup, the LM head and
      // its backward; the final LayerNorm for the head and its backward; a
      // block for forward and backward, and once more when recomputed.
      const uint64_t gathers = embedding ? 3 : final_norm ? 2 : (k > 0 ? 3 : 2);
      if (c.quant.weights == DType::fp32) {
        on_every(shard, accum * gathers, [&](const GroupLinks& g, int) { return traffic.all_gather(g, n, hierarchical); });
      } else {
        on_every(shard, accum * gathers, [&](const GroupLinks& g, int) {
          return traffic.all_gather_bytes(g, [&](int i) { return blockwise_bytes(shard_size(n, G, i), c.quant.weights, c.quant.block); });
        });
      }
    }
    // zero2/3 reduce each unit as soon as a micro-batch's backward is done with it.
    if (G > 1 && s.shards_grads) reduce_unit(n, accum);

    // The optimizer step.
    if (G > 1 && !s.shards_grads) {
      if (s.sparse_grads) {
        const uint64_t payload = topk_bytes(topk_count(n, c.topk.grad));
        on_every(shard, 1, [&](const GroupLinks& g, int) { return traffic.all_gather_bytes(g, [&](int) { return payload; }); });
      } else if (c.shard.strategy == ShardStrategy::zero1) {
        reduce_unit(n, 1);
      } else if (s.quantized_grads) {
        // ddp compressed: the compressed reduce-scatter, then each owner's sum, compressed, to every member.
        reduce_unit(n, 1);
        on_every(shard, 1, [&](const GroupLinks& g, int) {
          return traffic.all_gather_bytes(g, [&](int i) { return blockwise_bytes(shard_size(n, G, i), c.quant.grad, c.quant.block); });
        });
      } else {
        on_every(shard, 1, [&](const GroupLinks& g, int) { return traffic.all_reduce(g, n, hierarchical); });
      }
    }
    // hybrid: replica group i all-reduces shard i of the unit.
    if (!replica.empty()) {
      on_every(replica, 1, [&](const GroupLinks& g, int i) { return traffic.all_reduce(g, shard_size(n, G, i), hierarchical); });
    }
    // zero1/zero2: every rank gathers the updated shards into its whole parameters.
    if (G > 1 && s.shards_optimizer && !s.shards_params) {
      on_every(shard, 1, [&](const GroupLinks& g, int) { return traffic.all_gather(g, n, hierarchical); });
    }
  }
  return total;
}

}  // namespace

Prediction predict(const Config& c, const Calibration& calibration) {
  const ParamUnits units(c.model);
  const Strategy strategy(c);
  const SavedActivationBytes saved = saved_activation_bytes(c);
  const Topology topology = Topology::from_config(c);
  const bool hierarchical = c.placement.collectives == CollectiveAlgo::hierarchical;

  std::vector<GroupLinks> shard, replica;
  for (const Group& g : shard_groups(c)) shard.emplace_back(g, topology);
  for (const Group& g : replica_groups(c)) replica.emplace_back(g, topology);
  const std::vector<Role> shard_roles = roles(shard, c.world);
  const std::vector<Role> replica_roles = replica.empty() ? std::vector<Role>(c.world) : roles(replica, c.world);

  Prediction p;
  p.calibrated = calibration.measured;
  const Transients transients(c, hierarchical);
  for (int r = 0; r < c.world; ++r) {
    const Peaks peaks = rank_peaks(c, units, strategy, saved, transients, shard_roles[r], replica_roles[r]);
    for (int i = 0; i < kMemCategoryCount; ++i) p.peak[i] = std::max(p.peak[i], peaks.peak[i]);
    p.peak_total = std::max(p.peak_total, peaks.peak_total);
  }

  // Intra-node messages at the calibrated rates; inter-node ones over the
  // config's link as well.
  const Link intra{calibration.link_latency_s, calibration.link_bytes_per_s};
  const Link inter{c.placement.link_latency_us * 1e-6, c.placement.link_bandwidth_gbps * 1e9};
  const StepComm comm = step_comm(c, units, strategy, Traffic(topology, intra, inter), shard, replica);
  p.bytes_intra_node = comm.intra;
  p.bytes_inter_node = comm.inter;
  p.comm_s = comm.seconds;

  const StepCalls calls = step_calls(c);
  for (const StepCall& e : calls) {
    const double seconds = e.times * op_seconds(calibration, e.call);
    p.phase_s[e.phase] += seconds;
    p.compute_s += seconds;
    if (step_op_counts_flops(e.call.op)) p.flops_per_step += c.world * e.times * e.call.work();
  }
  if (p.comm_s > 0) p.phase_s["comm"] = p.comm_s;
  p.step_time_s = p.compute_s + p.comm_s;
  return p;
}

}  // namespace memfront
