#pragma once
// The GPT-style decoder of DESIGN.md and its training step on the CPU:
// token + position embedding, L blocks of [LayerNorm, causal multi-head
// attention, residual, LayerNorm, MLP (4C, GELU), residual], final LayerNorm,
// tied LM head, softmax cross-entropy, AdamW.
//
// Every tensor comes from the Arena, under the category that says what it is.
// What the forward pass keeps for backward ("saved activations") follows the
// knobs:
// - precision.activations: saved tensors are stored as fp32, bf16, fp8e4m3 or
//   int8 (per-row scales) and dequantized for backward;
// - checkpoint.every = k > 0: only the input of blocks 0, k, 2k, ... is kept
//   (category activations); backward recomputes each segment's forward, keeping
//   its saved tensors under category recompute, then frees them;
// - topk.attention = K > 0: attention keeps K weights and key indices per query
//   instead of the T x T probabilities.
// The exact bytes saved are given by saved_activation_bytes() (core/closed_forms.h,
// which the cost model predicts with too), and tests hold the arena's measured
// peaks to them.
#include <cstdint>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/closed_forms.h"
#include "core/config.h"
#include "core/dtype.h"
#include "kernels/ops.h"
#include "kernels/param_layout.h"
#include "kernels/shard.h"

namespace memfront {

class Gpt {
 public:
  // Parameters, gradients and optimizer state live in `state` (kernels/shard.h),
  // which also does the communication of distributed strategies, and whose
  // Ops (the backend) the model computes with. Without one, the model keeps a
  // single-rank CPU state of its own (config.world must be 1). The step's
  // reusable buffers come from the arena (workspace), which must hold memory
  // of the backend's device.
  Gpt(const Config& config, Arena& arena, TrainingState* state = nullptr);
  ~Gpt();
  Gpt(const Gpt&) = delete;
  Gpt& operator=(const Gpt&) = delete;

  // Forward and backward of one micro-batch: inputs, targets (B,T), in the
  // backend's memory (on the GPU: device arrays from the arena). Adds
  // loss_weight * d(mean loss)/d(params) into this rank's gradients (which the
  // state may reduce across ranks as each unit finishes) and returns the mean
  // loss. Saved activations live only inside this call.
  float forward_backward(const int32_t* inputs, const int32_t* targets, float loss_weight);
  // Summed token loss of the micro-batch's first `sequences` sequences (the
  // rest are computed and left out), forward only, nothing saved.
  double evaluate(const int32_t* inputs, const int32_t* targets, int sequences);

  void zero_grads() { state_->zero_grads(); }
  // Reduces gradients across ranks and takes one AdamW step; t counts from 1.
  void optimizer_step(int t) { state_->optimizer_step(t); }

  const ParamLayout& layout() const { return layout_; }
  TrainingState& state() { return *state_; }
  // Whole parameters and gradients, where this rank stores them whole (ddp).
  float* params() { return state_->whole_params(); }
  float* grads() { return state_->whole_grads(); }
  uint64_t param_count() const { return layout_.total; }
  // Floating-point operations of the kernels run since construction.
  double flops() const { return flops_; }

 private:
  struct SavedBlock;
  struct SavedHead;
  struct Workspace;

  // x (B,T,C) = token + position embeddings of inputs (B,T).
  void embedding_forward(const int32_t* inputs, float* x);
  // Runs block `layer` on x (N,C) into y (N,C). When `saved` is non-null, keeps
  // what backward needs in it, allocated under `category`.
  void block_forward(int layer, const float* x, float* y, SavedBlock* saved, MemCategory category);
  // dx (N,C) = gradient of the block input, given dy (N,C); adds parameter gradients.
  void block_backward(int layer, SavedBlock& saved, const float* dy, float* dx);
  // Final LayerNorm, LM head, loss; returns the mean loss. Keeps what backward
  // needs in `saved` (probabilities under `probs_category`).
  float head_forward(const float* x, const int32_t* targets, SavedHead& saved, MemCategory probs_category);
  // dwte: the embedding unit's gradient, held by the caller until the
  // embedding's own backward has added to it too (the LM head is tied to wte).
  void head_backward(SavedHead& saved, const int32_t* targets, float loss_weight, float* dwte, float* dx);

  Config config_;
  Arena& arena_;
  ParamLayout layout_;
  int B_, T_, C_, NH_, L_, V_, K_;
  std::unique_ptr<TrainingState> own_state_;
  TrainingState* state_;
  Ops* ops_;
  std::unique_ptr<Workspace> ws_;
  double flops_ = 0;
};

}  // namespace memfront
