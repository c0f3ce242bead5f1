#include "kernels/shard.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "core/annotate.h"
#include "core/closed_forms.h"
#include "kernels/compress.h"

namespace memfront {

using annotate::Phase;
using annotate::Range;

TrainingState::TrainingState(const Config& config, const ParamLayout& layout, Arena& arena, Communicator* comm,
                             Ops& ops)
    : config_(config), layout_(layout), arena_(arena), comm_(comm), ops_(ops) {
  const ShardStrategy s = config.shard.strategy;
  shard_optimizer_ = traits(s).shards_optimizer;
  shard_grads_ = traits(s).shards_grads;
  shard_params_ = traits(s).shards_params;
  const int W = config.world;
  if (W > 1 && !comm) throw std::logic_error("TrainingState: world > 1 needs a communicator");
  const int me = comm ? comm->rank() : 0;

  // The shard group partitions the units; under hybrid the other groups hold
  // replicas of the same shards.
  const int G = shard_group_size(config);
  const int first = me / G * G;
  for (int r = first; r < first + G; ++r) shard_group_.push_back(r);
  shard_index_ = me - first;
  for (int r = me % G; r < W; r += G) replica_group_.push_back(r);

  units_.resize(layout.unit_count());
  for (int u = 0; u < layout.unit_count(); ++u) {
    Unit& unit = units_[u];
    unit.begin = layout.unit_begin(u);
    unit.size = layout.unit_size(u);
    unit.partition = Partition::even(unit.size, G);
    unit.owned_begin = shard_optimizer_ ? unit.partition.begin(shard_index_) : 0;
    unit.owned_size = shard_optimizer_ ? unit.partition.size(shard_index_) : unit.size;
    unit.local_offset = owned_total_;
    owned_total_ += unit.owned_size;
  }

  const uint64_t P = layout.total;
  params_ = arena_.allocate_array<float>(shard_params_ ? owned_total_ : P, MemCategory::params, "params");
  grads_ = arena_.allocate_array<float>(shard_grads_ ? owned_total_ : P, MemCategory::grads, "grads");
  const uint64_t optimizer_count = shard_optimizer_ ? owned_total_ : P;
  adam_m_ = arena_.allocate_array<float>(optimizer_count, MemCategory::optimizer, "adam.m");
  adam_v_ = arena_.allocate_array<float>(optimizer_count, MemCategory::optimizer, "adam.v");
  ops_.fill(adam_m_.as<float>(), optimizer_count, 0.0f);
  ops_.fill(adam_v_.as<float>(), optimizer_count, 0.0f);
  zero_grads();

  const bool quantized_grads = config.quant.grad != DType::fp32 && config.quant.error_feedback;
  const bool sparse_grads = config.topk.grad < 1.0 && config.topk.error_feedback;
  if (quantized_grads || sparse_grads) {
    residual_ = arena_.allocate_array<float>(P, MemCategory::comm, "feedback.residual");
    ops_.fill(residual_.as<float>(), P, 0.0f);
  }

  // Every rank initializes from the same per-unit streams; a shard holder
  // builds each unit once and keeps its part. The streams run on the host:
  // each unit is built in a host staging vector (outside the arena, which
  // holds the backend's memory) and uploaded.
  for (int u = 0; u < layout.unit_count(); ++u) {
    const Unit& unit = units_[u];
    std::vector<float> host(unit.size);
    init_unit_params(host.data(), u, layout, config.train.seed);
    if (!shard_params_) {
      ops_.upload(params_.as<float>() + unit.begin, host.data(), unit.size * sizeof(float));
      continue;
    }
    Buffer whole = arena_.allocate_array<float>(unit.size, MemCategory::workspace, "init");
    ops_.upload(whole.as<float>(), host.data(), unit.size * sizeof(float));
    ops_.copy(local_params(u), whole.as<float>() + unit.owned_begin, unit.owned_size * sizeof(float));
  }
}

TrainingState::~TrainingState() = default;

float* TrainingState::local_params(int u) {
  const Unit& unit = units_[u];
  return shard_params_ ? params_.as<float>() + unit.local_offset : params_.as<float>() + unit.begin;
}

float* TrainingState::local_grads_of(int u) {
  const Unit& unit = units_[u];
  return shard_grads_ ? grads_.as<float>() + unit.local_offset : grads_.as<float>() + unit.begin;
}

uint64_t TrainingState::local_grad_count() const { return shard_grads_ ? owned_total_ : layout_.total; }

float* TrainingState::acquire_params(int u) {
  Unit& unit = units_[u];
  if (!shard_params_) return local_params(u);
  if (unit.param_holds++ == 0) {
    unit.gathered = arena_.allocate_array<float>(unit.size, MemCategory::params, "gathered");
    gather_unit(u, unit.gathered.as<float>());
  }
  return unit.gathered.as<float>();
}

void TrainingState::release_params(int u) {
  Unit& unit = units_[u];
  if (shard_params_ && --unit.param_holds == 0) unit.gathered.reset();
}

float* TrainingState::acquire_grads(int u) {
  Unit& unit = units_[u];
  if (!shard_grads_) return local_grads_of(u);
  if (unit.grad_holds++ == 0) {
    unit.whole_grads = arena_.allocate_array<float>(unit.size, MemCategory::grads, "unit.grads");
    ops_.fill(unit.whole_grads.as<float>(), unit.size, 0.0f);
  }
  return unit.whole_grads.as<float>();
}

void TrainingState::release_grads(int u) {
  Unit& unit = units_[u];
  if (!shard_grads_ || --unit.grad_holds > 0) return;
  // This micro-batch is done with the unit: reduce it into my shard now, as
  // ZeRO-2 does, so that only one unit's whole gradient is ever held.
  Buffer reduced = arena_.allocate_array<float>(unit.owned_size, MemCategory::comm, "reduced.shard");
  reduce_scatter_unit(u, unit.whole_grads.as<float>(), reduced.as<float>());
  ops_.add(local_grads_of(u), reduced.as<float>(), unit.owned_size);
  unit.whole_grads.reset();
}

void TrainingState::zero_grads() { ops_.fill(grads_.as<float>(), local_grad_count(), 0.0f); }

void TrainingState::gather_unit(int u, float* out) {
  const Unit& unit = units_[u];
  const float* mine = local_params(u);
  const int G = static_cast<int>(shard_group_.size());
  const DType format = config_.quant.weights;
  if (format == DType::fp32) {
    Range range(Phase::comm);
    if (G == 1) {
      ops_.copy(out, mine, unit.size * sizeof(float));
    } else {
      comm_->all_gather(mine, out, unit.partition, shard_group_);
    }
    return;
  }
  all_gather_encoded(mine, out, unit.partition, format);
}

std::vector<Buffer> TrainingState::gather_payloads(Buffer payload, const Group& group) {
  std::vector<Buffer> received;
  if (group.size() == 1) {
    received.push_back(std::move(payload));  // a group of one sends nothing
    return received;
  }
  Range range(Phase::comm);
  return comm_->all_gather_bytes(payload.data(), payload.bytes(), group);
}

void TrainingState::all_gather_encoded(const float* shard, float* whole, const Partition& partition, DType format) {
  const int block = config_.quant.block;
  const uint64_t my_size = partition.size(shard_index_);
  Buffer payload = arena_.allocate(blockwise_bytes(my_size, format, block), MemCategory::comm, "payload");
  {
    Range range(Phase::quantize);
    ops_.encode_blockwise(payload.data(), shard, my_size, format, block);
  }
  std::vector<Buffer> received = gather_payloads(std::move(payload), shard_group_);
  Range range(Phase::quantize);
  for (int i = 0; i < partition.shards(); ++i) {
    ops_.decode_blockwise(whole + partition.begin(i), received[i].data(), partition.size(i), format, block);
  }
}

void TrainingState::reduce_scatter_unit(int u, float* whole, float* shard) {
  const Unit& unit = units_[u];
  const int G = static_cast<int>(shard_group_.size());
  const DType format = config_.quant.grad;
  const int block = config_.quant.block;
  if (format == DType::fp32) {
    Range range(Phase::comm);
    if (G == 1) {
      ops_.copy(shard, whole, unit.size * sizeof(float));
    } else {
      comm_->reduce_scatter_sum(whole, shard, unit.partition, shard_group_);
    }
    return;
  }
  // Compressed: each member's part of my gradient goes to it quantized; each
  // owner adds up the parts it receives, in member order.
  float* residual = residual_ ? residual_.as<float>() + unit.begin : nullptr;
  std::vector<Buffer> payloads;
  std::vector<std::pair<const void*, uint64_t>> outgoing;
  {
    Range range(Phase::quantize);
    for (int i = 0; i < G; ++i) {
      const uint64_t begin = unit.partition.begin(i), size = unit.partition.size(i);
      payloads.push_back(arena_.allocate(blockwise_bytes(size, format, block), MemCategory::comm, "grads.payload"));
      ops_.encode_blockwise_with_feedback(payloads.back().data(), whole + begin, residual ? residual + begin : nullptr,
                                     size, format, block);
      outgoing.emplace_back(payloads.back().data(), payloads.back().bytes());
    }
  }
  std::vector<Buffer> received;
  if (G > 1) {
    Range range(Phase::comm);
    received = comm_->all_to_all_bytes(outgoing, shard_group_);
  } else {
    received = std::move(payloads);
  }
  // My part of the partition: under ddp that is one shard of the unit (the
  // compressed all-reduce gathers the others next), not the whole unit I own.
  Range range(Phase::quantize);
  const uint64_t mine = unit.partition.size(shard_index_);
  ops_.fill(shard, mine, 0.0f);
  for (int i = 0; i < G; ++i) ops_.add_decoded_blockwise(shard, received[i].data(), mine, format, block);
}

void TrainingState::all_reduce_unit(int u, float* whole) {
  const Unit& unit = units_[u];
  const int W = static_cast<int>(shard_group_.size());  // ddp: the whole world
  if (config_.topk.grad < 1.0) {
    const uint64_t k = topk_count(unit.size, config_.topk.grad);
    Buffer payload = arena_.allocate(topk_bytes(k), MemCategory::comm, "topk.payload");
    {
      Buffer scratch = arena_.allocate(ops_.topk_scratch_bytes(unit.size), MemCategory::workspace, "topk.scratch");
      Range range(Phase::topk);
      float* residual = residual_ ? residual_.as<float>() + unit.begin : nullptr;
      ops_.encode_topk_with_feedback(payload.data(), whole, residual, unit.size, k, scratch.data());
    }
    std::vector<Buffer> received = gather_payloads(std::move(payload), shard_group_);
    Range range(Phase::topk);
    ops_.fill(whole, unit.size, 0.0f);
    for (const Buffer& part : received) ops_.add_topk(whole, part.data(), k, unit.size);
    return;
  }
  if (config_.quant.grad != DType::fp32) {
    // Reduce-scatter compressed, then every owner sends its sum compressed too.
    Buffer reduced = arena_.allocate_array<float>(unit.partition.size(shard_index_), MemCategory::comm, "reduced");
    reduce_scatter_unit(u, whole, reduced.as<float>());
    all_gather_encoded(reduced.as<float>(), whole, unit.partition, config_.quant.grad);
    return;
  }
  if (W > 1) {
    Range range(Phase::comm);
    comm_->all_reduce_sum(whole, unit.partition, shard_group_);
  }
}

void TrainingState::optimizer_step(int t) {
  // 1. Reduce what the backward passes have not reduced yet.
  if (!shard_grads_) {
    for (int u = 0; u < layout_.unit_count(); ++u) {
      const Unit& unit = units_[u];
      float* whole = local_grads_of(u);
      if (!shard_optimizer_ || config_.topk.grad < 1.0) {
        all_reduce_unit(u, whole);  // ddp, and zero1 with Top-K (sparse sums are whole anyway)
        continue;
      }
      // zero1: only my shard of the sum is needed; it goes where the optimizer reads it.
      Buffer reduced = arena_.allocate_array<float>(unit.owned_size, MemCategory::comm, "reduced.shard");
      reduce_scatter_unit(u, whole, reduced.as<float>());
      ops_.copy(whole + unit.owned_begin, reduced.as<float>(), unit.owned_size * sizeof(float));
    }
  }
  if (replica_group_.size() > 1) {
    // hybrid: the shard groups are replicas; sum the shards across them.
    Range range(Phase::comm);
    for (int u = 0; u < layout_.unit_count(); ++u) {
      const Partition partition = Partition::even(units_[u].owned_size, static_cast<int>(replica_group_.size()));
      comm_->all_reduce_sum(local_grads_of(u), partition, replica_group_);
    }
  }

  // 2. AdamW on what this rank owns, with the gradient averaged over the world.
  {
    Range range(Phase::optimizer);
    const float inverse_world = 1.0f / static_cast<float>(config_.world);
    const auto& tr = config_.train;
    for (int u = 0; u < layout_.unit_count(); ++u) {
      const Unit& unit = units_[u];
      float* params = shard_params_ ? local_params(u) : local_params(u) + unit.owned_begin;
      float* grads = shard_grads_ ? local_grads_of(u) : local_grads_of(u) + unit.owned_begin;
      if (config_.world > 1) ops_.scale(grads, unit.owned_size, inverse_world);
      ops_.adamw_update(params, grads, adam_m_.as<float>() + unit.local_offset,
                        adam_v_.as<float>() + unit.local_offset, unit.owned_size, static_cast<float>(tr.lr),
                        static_cast<float>(tr.beta1), static_cast<float>(tr.beta2), static_cast<float>(tr.eps),
                        static_cast<float>(tr.weight_decay), t);
    }
  }

  // 3. zero1/zero2 keep whole parameters: every rank gathers the updated shards.
  if (shard_optimizer_ && !shard_params_ && shard_group_.size() > 1) {
    Range range(Phase::comm);
    for (int u = 0; u < layout_.unit_count(); ++u) {
      const Unit& unit = units_[u];
      float* whole = local_params(u);
      Buffer mine = arena_.allocate_array<float>(unit.owned_size, MemCategory::comm, "params.shard");
      ops_.copy(mine.as<float>(), whole + unit.owned_begin, unit.owned_size * sizeof(float));
      comm_->all_gather(mine.as<float>(), whole, unit.partition, shard_group_);
    }
  }
}

float* TrainingState::whole_params() {
  if (shard_params_) throw std::logic_error("whole_params: parameters are sharded under zero3/hybrid");
  return params_.as<float>();
}

float* TrainingState::whole_grads() {
  if (shard_grads_) throw std::logic_error("whole_grads: gradients are sharded under zero2/zero3/hybrid");
  return grads_.as<float>();
}

}  // namespace memfront
