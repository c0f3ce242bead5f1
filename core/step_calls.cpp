#include "core/step_calls.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "core/closed_forms.h"

namespace memfront {

namespace {

struct CallList {
  StepCalls entries;
  void add(const char* phase, StepOp op, std::vector<int64_t> dims, double times = 1, DType format = DType::fp32) {
    if (times > 0) entries.push_back({phase, OpCall{op, std::move(dims), format}, times});
  }
};

}  // namespace

// What the calls are, in order of the step. Forward per micro-batch: the embedding; per block two
// LayerNorms, four GEMMs, attention (dense, or Top-K), two residual adds and
// GELU, then storing what it keeps in the activation format (quantize_rows,
// a copy for fp32 only where a tensor is not written in place: a block's
// input and the head's input); the head's LayerNorm, LM-head GEMM and
// softmax/cross-entropy. Backward mirrors it, with the gradient buffers
// zeroed first and the saved tensors loaded back (dequantize_rows, nothing for
// fp32). Checkpointing stores one block input per segment in forward and runs
// the blocks' forward again, keeping everything, in recompute. Per step: the
// local gradients zeroed, the reductions' encoders and decoders (phase
// quantize or topk; the bytes they send are comm's), and AdamW with its
// averaging over the owned parameters.
StepCalls step_calls(const Config& c) {
  const ParamUnits units(c.model);
  const StrategyTraits& s = traits(c.shard.strategy);
  const bool quantized_grads = c.quant.grad != DType::fp32, sparse_grads = c.topk.grad < 1.0;
  const int G = shard_group_size(c);
  const int64_t B = c.batch.micro, T = c.model.seq, C = c.model.width, H = c.model.heads, V = c.model.vocab;
  const int64_t K = c.topk.attention, N = B * T, NC = N * C, L = c.model.layers;
  const int k = c.checkpoint.every;
  const DType f = c.precision.activations;
  const bool fp32 = f == DType::fp32;
  const double accum = c.batch.accum;
  const int64_t att_rows = B * H * T, att_cols = K == 0 ? T : K;
  CallList calls;

  // One block's forward, in `phase`, `times` times; `keeps`: it stores its
  // tensors for backward (not under checkpointing's first forward).
  auto block_forward = [&](const char* phase, double times, bool keeps) {
    calls.add(phase, StepOp::layernorm_forward, {N, C}, 2 * times);
    calls.add(phase, StepOp::matmul_forward, {N, C, 3 * C}, times);
    if (K == 0) {
      calls.add(phase, StepOp::attention_forward, {B, T, C, H}, times);
    } else {
      calls.add(phase, StepOp::attention_topk_forward, {B, T, C, H, K}, times);
    }
    calls.add(phase, StepOp::matmul_forward, {N, C, C}, times);
    calls.add(phase, StepOp::residual_forward, {NC}, 2 * times);
    calls.add(phase, StepOp::matmul_forward, {N, C, 4 * C}, times);
    calls.add(phase, StepOp::gelu_forward, {4 * NC}, times);
    calls.add(phase, StepOp::matmul_forward, {N, 4 * C, C}, times);
    if (!keeps || fp32) return;
    for (int64_t cols : {C, 3 * C, C, C, C, 4 * C, 4 * C}) {  // ln1, qkv, att_out, x_mid, ln2, fc, gelu
      calls.add(phase, StepOp::quantize_rows, {N, cols}, times, f);
    }
    calls.add(phase, StepOp::quantize_rows, {att_rows, att_cols}, times, f);
  };
  const double per_micro = accum;
  const double blocks = per_micro * L;

  // Forward.
  calls.add("forward", StepOp::embedding_forward, {B, T, C}, per_micro);
  block_forward("forward", blocks, k == 0);
  const double stored_inputs = k == 0 ? blocks : per_micro * ((L + k - 1) / k);  // x_in, or the checkpoints
  calls.add("forward", StepOp::quantize_rows, {N, C}, stored_inputs, f);
  calls.add("forward", StepOp::layernorm_forward, {N, C}, per_micro);
  calls.add("forward", StepOp::matmul_forward, {N, C, V}, per_micro);
  calls.add("forward", StepOp::softmax_crossentropy_forward, {N, V}, per_micro);
  calls.add("forward", StepOp::quantize_rows, {N, C}, per_micro * (fp32 ? 1 : 2), f);  // head input (and lnf)

  // Recompute: each segment loads its checkpoint, copies it into the stream
  // and runs its blocks' forward again, keeping everything.
  if (k > 0) {
    const double segments = per_micro * ((L + k - 1) / k);
    if (!fp32) calls.add("recompute", StepOp::dequantize_rows, {N, C}, segments, f);
    calls.add("recompute", StepOp::copy, {NC}, segments);
    block_forward("recompute", blocks, true);
    // A segment's first block adopts its checkpoint instead of storing x_in again.
    calls.add("recompute", StepOp::quantize_rows, {N, C}, blocks - segments, f);
  }

  // Backward: the head, every block, the embedding.
  calls.add("backward", StepOp::softmax_crossentropy_backward, {N, V}, per_micro);
  calls.add("backward", StepOp::fill, {NC}, 2 * per_micro);
  calls.add("backward", StepOp::matmul_backward, {N, C, V}, per_micro);
  calls.add("backward", StepOp::layernorm_backward, {N, C}, per_micro);
  if (!fp32) {
    calls.add("backward", StepOp::dequantize_rows, {N, C}, 2 * per_micro, f);
    for (int64_t cols : {C, C, 3 * C, C, C, C, 4 * C, 4 * C}) {  // x_in, ln1, qkv, att_out, x_mid, ln2, fc, gelu
      calls.add("backward", StepOp::dequantize_rows, {N, cols}, blocks, f);
    }
    calls.add("backward", StepOp::dequantize_rows, {att_rows, att_cols}, blocks, f);
  }
  calls.add("backward", StepOp::fill, {4 * NC}, 2 * blocks);
  calls.add("backward", StepOp::fill, {NC}, 3 * blocks);
  calls.add("backward", StepOp::fill, {3 * NC}, blocks);
  calls.add("backward", StepOp::copy, {NC}, 2 * blocks);
  calls.add("backward", StepOp::matmul_backward, {N, 4 * C, C}, blocks);
  calls.add("backward", StepOp::gelu_backward, {4 * NC}, blocks);
  calls.add("backward", StepOp::matmul_backward, {N, C, 4 * C}, blocks);
  calls.add("backward", StepOp::layernorm_backward, {N, C}, 2 * blocks);
  calls.add("backward", StepOp::matmul_backward, {N, C, C}, blocks);
  if (K == 0) {
    calls.add("backward", StepOp::attention_backward, {B, T, C, H}, blocks);
  } else {
    calls.add("backward", StepOp::attention_topk_backward, {B, T, C, H, K}, blocks);
  }
  calls.add("backward", StepOp::matmul_backward, {N, C, 3 * C}, blocks);
  calls.add("backward", StepOp::embedding_backward, {B, T, C}, per_micro);

  // The parameter units, each with its size and my (largest) shard of it.
  struct UnitSize {
    int64_t size, shard;
    double count;
  };
  const std::vector<UnitSize> unit_sizes = {
      {int64_t(units.embedding), int64_t(largest_shard(units.embedding, G)), 1},
      {int64_t(units.block), int64_t(largest_shard(units.block, G)), double(L)},
      {int64_t(units.final_norm), int64_t(largest_shard(units.final_norm, G)), 1}};
  const DType grad_format = c.quant.grad;

  // zero3/hybrid gather every unit where it is used (weights encoded when
  // quantized, a copy within a group of one): the embedding three times per
  // micro-batch, the final norm twice, every block in forward, recompute and
  // backward.
  if (s.shards_params) {
    const double block_uses = per_micro * (k > 0 ? 3 : 2);
    const double uses[] = {3 * per_micro, block_uses, 2 * per_micro};
    for (int i = 0; i < 3; ++i) {
      const UnitSize& u = unit_sizes[i];
      const double times = u.count * uses[i];
      if (c.quant.weights != DType::fp32) {
        calls.add("quantize", StepOp::encode_weights, {u.shard}, times, c.quant.weights);
        calls.add("quantize", StepOp::decode_weights, {u.shard}, times * G, c.quant.weights);
      } else if (G == 1) {
        calls.add("forward", StepOp::copy, {u.size}, times);
      }
    }
  }

  // A compressed reduce-scatter of a unit: my parts encoded for every member
  // with error feedback, and the parts I own decoded from every member.
  auto compressed_reduce_scatter = [&](const UnitSize& u, double times) {
    calls.add("quantize", StepOp::encode_grad, {u.shard}, times * G, grad_format);
    calls.add("quantize", StepOp::fill, {u.shard}, times);
    calls.add("quantize", StepOp::add_decoded, {u.shard}, times * G, grad_format);
  };
  for (const UnitSize& u : unit_sizes) {
    if (s.shards_grads) {
      // Every micro-batch: each unit's whole gradient zeroed when backward
      // takes it, reduced into my shard when it lets it go.
      const double times = u.count * per_micro;
      calls.add("backward", StepOp::fill, {u.size}, times);
      if (quantized_grads) {
        compressed_reduce_scatter(u, times);
      } else if (G == 1) {
        calls.add("backward", StepOp::copy, {u.size}, times);
      }
      calls.add("backward", StepOp::add, {u.shard}, times);
    } else if (sparse_grads) {
      const int64_t kept = int64_t(topk_count(uint64_t(u.size), c.topk.grad));
      calls.add("topk", StepOp::encode_topk, {u.size, kept}, u.count);
      calls.add("topk", StepOp::fill, {u.size}, u.count);
      calls.add("topk", StepOp::add_topk, {u.size, kept}, u.count * G);
    } else if (quantized_grads) {
      compressed_reduce_scatter(u, u.count);
      if (!s.shards_optimizer) {  // ddp sends its sums compressed too
        calls.add("quantize", StepOp::encode_weights, {u.shard}, u.count, grad_format);
        calls.add("quantize", StepOp::decode_weights, {u.shard}, u.count * G, grad_format);
      } else {
        calls.add("optimizer", StepOp::copy, {u.shard}, u.count);
      }
    } else if (s.shards_optimizer) {
      if (G == 1) calls.add("optimizer", StepOp::copy, {u.size}, u.count);
      calls.add("optimizer", StepOp::copy, {u.shard}, u.count);
    }
    // AdamW over what I own, its gradient averaged over the world first.
    const int64_t owned = s.shards_optimizer ? u.shard : u.size;
    if (c.world > 1) calls.add("optimizer", StepOp::add, {owned}, u.count);
    calls.add("optimizer", StepOp::adamw, {owned}, u.count);
    // zero1/zero2 keep whole parameters: my updated shard is copied out to be gathered.
    if (s.shards_optimizer && !s.shards_params && G > 1) calls.add("optimizer", StepOp::copy, {u.shard}, u.count);
  }
  // The local gradients are zeroed once per step.
  const int64_t local_grads = int64_t(s.shards_grads ? largest_shard(units.block, G) * L +
                                                           largest_shard(units.embedding, G) +
                                                           largest_shard(units.final_norm, G)
                                                     : units.total);
  calls.add("step", StepOp::fill, {local_grads}, 1);
  return calls.entries;
}

std::vector<OpCall> distinct_calls(const std::vector<Config>& configs) {
  std::vector<OpCall> distinct;
  for (const Config& config : configs) {
    for (const StepCall& c : step_calls(config)) {
      if (std::find(distinct.begin(), distinct.end(), c.call) == distinct.end()) distinct.push_back(c.call);
    }
  }
  return distinct;
}


}  // namespace memfront
