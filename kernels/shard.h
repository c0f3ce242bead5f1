#pragma once
// TrainingState: where one rank's parameters, gradients and optimizer state
// live under a sharding strategy, and the communication that keeps the ranks
// consistent (DESIGN.md, shard.strategy):
//
//   strategy  parameters        gradients           optimizer state
//   ddp       whole             whole, all-reduced  whole
//   zero1     whole             whole, reduced      my shard
//   zero2     whole             my shard            my shard
//   zero3     my shard          my shard            my shard
//   hybrid    zero3 inside a shard group of shard.group ranks; the groups are
//             replicas whose gradient shards are all-reduced across groups.
//
// Each parameter unit (ParamLayout: embedding, blocks, final LayerNorm) is
// partitioned evenly over the shard group; member i owns shard i of every
// unit. The model asks for a unit's parameters and gradients while it works
// on that unit (acquire/release): zero3 gathers a unit's parameters then and
// frees them after; zero2/zero3 give backward a whole-unit gradient buffer and,
// on release, reduce-scatter it into the shard and free it. All memory comes
// from the arena: parameters and gathered units in params, gradients and
// whole-unit gradient buffers in grads, AdamW moments in optimizer, buffers on
// the wire and error-feedback residuals in comm.
//
// Compression on the wire:
// - quant.grad (bf16, int8, int4): gradient reductions send blockwise-quantized
//   shards (all-to-all, then each owner sums what it received); ddp then
//   all-gathers the quantized sums. With error feedback each rank keeps what
//   its quantization lost and adds it to the next step's gradient.
// - topk.grad < 1 (ddp, zero1): each rank sends the largest entries of each
//   unit's gradient (all-gather of index/value pairs) and every rank adds all
//   of them up; the unsent rest is kept as the error-feedback residual.
// - quant.weights (zero3, hybrid): parameter gathers send blockwise-quantized
//   shards; every rank, the owner too, computes with the dequantized values.
//   The fp32 shard stays the optimizer's master copy.
#include <cstdint>
#include <map>
#include <vector>

#include "core/arena.h"
#include "core/config.h"
#include "kernels/comm.h"
#include "kernels/ops.h"
#include "kernels/param_layout.h"

namespace memfront {

class TrainingState {
 public:
  // comm may be null only when config.world == 1. Every array lives in
  // `arena` and is computed on by `ops`: both of the same device, and comm's
  // collectives must take that device's pointers (MPI: host; NCCL: GPU).
  TrainingState(const Config& config, const ParamLayout& layout, Arena& arena, Communicator* comm,
                Ops& ops = cpu_ops());
  ~TrainingState();
  TrainingState(const TrainingState&) = delete;
  TrainingState& operator=(const TrainingState&) = delete;

  // The whole unit's parameters, valid until the matching release (acquires
  // nest). The model only reads them.
  float* acquire_params(int unit);
  void release_params(int unit);
  // The whole unit's gradient, for backward to add into, until the matching
  // release. Releasing the last hold ends this micro-batch's work on the unit.
  float* acquire_grads(int unit);
  void release_grads(int unit);

  Ops& ops() { return ops_; }

  void zero_grads();
  // After all micro-batches: reduce the gradients across ranks (averaging over
  // the world), take one AdamW step (t from 1) on what this rank owns, and
  // bring the parameters every rank holds up to date.
  void optimizer_step(int t);

  // This rank's gradient after the last release: whole under ddp/zero1, its
  // shards (unit by unit, layout order) under zero2/zero3/hybrid. Like the
  // two below, in the backend's memory.
  const float* local_grads() const { return grads_.as<float>(); }
  uint64_t local_grad_count() const;
  // The whole flat arrays, where this rank stores them whole (std::logic_error
  // under zero3/hybrid for parameters, zero2/zero3/hybrid for gradients).
  float* whole_params();
  float* whole_grads();

 private:
  struct Unit {
    Partition partition;       // over the shard group
    uint64_t begin = 0;        // in the flat array
    uint64_t size = 0;
    uint64_t owned_begin = 0;  // my shard, relative to the unit
    uint64_t owned_size = 0;
    uint64_t local_offset = 0; // where my shard sits in the sharded buffers
    Buffer gathered;           // zero3: the whole unit while acquired
    int param_holds = 0;
    Buffer whole_grads;        // zero2/zero3: the whole unit's gradient while acquired
    int grad_holds = 0;
  };

  float* local_params(int unit);  // the unit's parameters this rank stores (whole or shard)
  float* local_grads_of(int unit);
  void gather_unit(int unit, float* out);
  // Sums `whole` (the unit's gradient on this rank) over the shard group into
  // `shard` (my part), honouring quant.grad and error feedback.
  void reduce_scatter_unit(int unit, float* whole, float* shard);
  // Sums `whole` over the world in place (ddp), honouring quant.grad / topk.grad.
  void all_reduce_unit(int unit, float* whole);
  // Every shard-group member's payload (mine included), exchanged by all-gather.
  std::vector<Buffer> gather_payloads(Buffer payload, const Group& group);
  // The compressed all-gather: each member sends its shard (partition.size(i)
  // floats) blockwise-encoded in `format`; every member decodes all into whole.
  void all_gather_encoded(const float* shard, float* whole, const Partition& partition, DType format);

  Config config_;
  const ParamLayout& layout_;
  Arena& arena_;
  Communicator* comm_;
  Ops& ops_;
  bool shard_optimizer_, shard_grads_, shard_params_;
  Group shard_group_;    // ranks that partition the units among themselves
  Group replica_group_;  // hybrid: ranks holding the same shard in the other groups
  int shard_index_ = 0;  // my position in shard_group_
  std::vector<Unit> units_;
  uint64_t owned_total_ = 0;
  Buffer params_, grads_, adam_m_, adam_v_;
  Buffer residual_;  // error feedback of compressed gradients, whole (comm)
};

}  // namespace memfront
