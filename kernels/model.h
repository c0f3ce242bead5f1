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
// The exact bytes saved are given by saved_activation_bytes() below, and tests
// hold the arena's measured peaks to them.
#include <cstdint>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/config.h"
#include "core/dtype.h"

namespace memfront {

// Parameters of one block, as pointers into the flat parameter (or gradient) array.
struct BlockParams {
  float* ln1w;     // (C)
  float* ln1b;     // (C)
  float* qkvw;     // (3C, C)
  float* qkvb;     // (3C)
  float* projw;    // (C, C)
  float* projb;    // (C)
  float* ln2w;     // (C)
  float* ln2b;     // (C)
  float* fcw;      // (4C, C)
  float* fcb;      // (4C)
  float* fcprojw;  // (C, 4C)
  float* fcprojb;  // (C)
};

// Where each tensor lives in the flat array: [wte, wpe][block 0]...[block L-1][lnfw, lnfb].
// Blocks are contiguous so that later work can shard and gather them one at a time.
struct ParamLayout {
  explicit ParamLayout(const ModelShape& shape);
  uint64_t wte, wpe;        // offsets: wte (V,C), wpe (T,C)
  uint64_t first_block;     // offset of block 0
  uint64_t block_size;      // 12C^2 + 13C
  uint64_t lnfw, lnfb;      // (C) each
  uint64_t total;           // parameter count Psi
  BlockParams block(float* base, int layer, int C) const;
};

// Bytes of one saved tensor of rows x cols values in `format` (codes + scales).
uint64_t saved_tensor_bytes(DType format, uint64_t rows, uint64_t cols);

// The exact closed forms of the saved-activation memory for this model (the
// arena is held to them by the tests):
struct SavedActivationBytes {
  uint64_t block;       // what one block keeps for its backward
  uint64_t block_input; // one checkpointed block input (B*T x C)
  uint64_t head;        // final LayerNorm input and output, its statistics, fp32 probabilities
  uint64_t activations_peak;  // the peak of category activations in a step
  uint64_t recompute_peak;    // the peak of category recompute (0 without checkpointing)
};
SavedActivationBytes saved_activation_bytes(const Config& config);

class Gpt {
 public:
  // Allocates parameters (params), gradients (grads), AdamW moments (optimizer)
  // and the step's reusable buffers (workspace); initializes parameters GPT-2
  // style from config.train.seed.
  Gpt(const Config& config, Arena& arena);
  ~Gpt();
  Gpt(const Gpt&) = delete;
  Gpt& operator=(const Gpt&) = delete;

  // Forward and backward of one micro-batch: inputs, targets (B,T). Adds
  // loss_weight * d(mean loss)/d(params) into the gradients and returns the
  // mean loss. Saved activations live only inside this call.
  float forward_backward(const int32_t* inputs, const int32_t* targets, float loss_weight);
  // Mean loss of one micro-batch, forward only, nothing saved.
  float evaluate(const int32_t* inputs, const int32_t* targets);

  void zero_grads();
  // One AdamW step; t counts optimizer steps from 1.
  void optimizer_step(int t);

  const ParamLayout& layout() const { return layout_; }
  float* params() { return params_.as<float>(); }
  float* grads() { return grads_.as<float>(); }
  uint64_t param_count() const { return layout_.total; }
  // Floating-point operations of the kernels run since construction.
  double flops() const { return flops_; }

 private:
  struct SavedBlock;
  struct SavedHead;
  struct Workspace;

  // Runs block `layer` on x (N,C) into y (N,C). When `saved` is non-null, keeps
  // what backward needs in it, allocated under `category`.
  void block_forward(int layer, const float* x, float* y, SavedBlock* saved, MemCategory category);
  // dx (N,C) = gradient of the block input, given dy (N,C); adds parameter gradients.
  void block_backward(int layer, SavedBlock& saved, const float* dy, float* dx);
  // Final LayerNorm, LM head, loss; returns the mean loss. Keeps what backward
  // needs in `saved` (probabilities under `probs_category`).
  float head_forward(const float* x, const int32_t* targets, SavedHead& saved, MemCategory probs_category);
  void head_backward(SavedHead& saved, const int32_t* targets, float loss_weight, float* dx);

  Config config_;
  Arena& arena_;
  ParamLayout layout_;
  int B_, T_, C_, NH_, L_, V_, K_;
  Buffer params_, grads_, adam_m_, adam_v_;
  std::unique_ptr<Workspace> ws_;
  double flops_ = 0;
};

}  // namespace memfront
