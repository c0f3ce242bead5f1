#pragma once
// The closed forms of memfront's own step, in one place: the kernels size
// their buffers and count their bytes through them, and the cost model
// (tuner/cost_model.cpp), which never links the kernels, predicts through
// them. Tests hold the arena and the communicators' counters to them.
//
// - shards: how n elements split over g ranks (uneven shards included);
// - parameter units: the pieces of the flat parameter array that strategies
//   partition, gather and reduce one at a time;
// - wire formats: blockwise-quantized payloads with their scales, Top-K
//   counts and index/value payloads;
// - ring collectives: the bytes each member of a ring sends;
// - saved activations: the bytes one block and the head keep for backward,
//   by format, and the checkpoint schedule's peaks.
#include <cstdint>
#include <functional>
#include <vector>

#include "core/config.h"
#include "core/dtype.h"

namespace memfront {

// ---------------------------------------------------------------------------
// Shards. Shard i of n elements over g shards is [i*n/g, (i+1)*n/g) (integer
// division): sizes are q = n/g or q + 1, exactly n % g shards have q + 1, and
// nothing is padded. Requires g >= 1.
// ---------------------------------------------------------------------------

// i*n/g, computed as i*q + i*r/g (n = q*g + r) so that i*n cannot overflow.
uint64_t shard_offset(uint64_t n, uint64_t shards, uint64_t i);
uint64_t shard_size(uint64_t n, uint64_t shards, uint64_t i);
uint64_t largest_shard(uint64_t n, uint64_t shards);
// The sum over the g shards of f(shard size), from the two sizes there are.
uint64_t sum_over_shards(uint64_t n, uint64_t shards, const std::function<uint64_t(uint64_t)>& f);

// The ranks each parameter unit is partitioned over: under hybrid, groups of
// shard.group consecutive ranks that replicate each other; under every other
// strategy, the whole world.
int shard_group_size(const Config& config);

// ---------------------------------------------------------------------------
// Parameter units: unit 0 is the embedding [wte (V,C), wpe (T,C)], units
// 1..L the blocks, unit L+1 the final LayerNorm [weight, bias]. A block is
// 12C^2 + 13C: QKV 3C^2 + 3C, projection C^2 + C, FC 4C^2 + 4C, FC
// projection 4C^2 + C, two LayerNorms 4C. (Where each tensor lies inside its
// unit is kernels/param_layout.h's business.)
// ---------------------------------------------------------------------------

struct ParamUnits {
  explicit ParamUnits(const ModelShape& shape);

  int count() const { return layers + 2; }
  uint64_t size(int unit) const { return unit == 0 ? embedding : unit == layers + 1 ? final_norm : block; }
  uint64_t largest() const;

  int layers;
  uint64_t embedding, block, final_norm;  // elements of each kind of unit
  uint64_t total;                          // Psi, the parameter count
};

// ---------------------------------------------------------------------------
// Wire formats
// ---------------------------------------------------------------------------

// Blockwise quantization of n values in blocks of `block` (the last may be
// shorter): for the scaled formats (int8, int4) one fp32 scale per block,
// then the codes (fp32 4 bytes, bf16 2, int8 1, int4 two per byte over the
// whole payload). Throws std::invalid_argument for block < 1 or fp8e4m3,
// which blockwise quantization does not support.
void check_blockwise_format(DType format, int block);
uint64_t blockwise_block_count(uint64_t n, int block);
uint64_t blockwise_bytes(uint64_t n, DType format, int block);

// Top-K: ceil(density * n) entries, at least one when n > 0, sent as
// (uint32 index, fp32 value) pairs. Throws std::invalid_argument for a
// density outside (0, 1].
inline constexpr uint64_t kTopkEntryBytes = sizeof(uint32_t) + sizeof(float);
uint64_t topk_count(uint64_t n, double density);
uint64_t topk_bytes(uint64_t k);  // k * kTopkEntryBytes

// ---------------------------------------------------------------------------
// Ring collectives: what one member of a ring of |block_bytes| members sends
// (to its successor), the members' blocks being block_bytes in ring order.
// memfront's own rings send exactly this; library collectives (NCCL) are
// counted by it. With S the sum of the blocks and equal blocks, a
// reduce-scatter and an all-gather send (N-1)/N·S each, an all-reduce
// 2(N-1)/N·S.
// ---------------------------------------------------------------------------

struct RingTraffic {
  uint64_t bytes = 0;
  uint64_t messages = 0;  // non-empty blocks sent
};

namespace ring {

// Every block but the member's own, which it receives last and keeps: S - s_i.
RingTraffic reduce_scatter(const std::vector<uint64_t>& block_bytes, int position);
// Every block but its successor's, the last to come round to it: S - s_(i+1).
RingTraffic all_gather(const std::vector<uint64_t>& block_bytes, int position);
// Reduce-scatter then all-gather: 2S - s_i - s_(i+1).
RingTraffic all_reduce(const std::vector<uint64_t>& block_bytes, int position);
// A chain from the root around the ring: every member but the root's
// predecessor passes the S bytes on (S(N-1)/N per member on average).
RingTraffic broadcast(uint64_t bytes, int position, int root_position, int members);
// A chain around the ring that ends at the root: every member but the root
// sends the S bytes of its partial sum.
RingTraffic reduce(uint64_t bytes, int position, int root_position);

}  // namespace ring

// The fp32 blocks of n elements split into `shards` even shards (above), in bytes.
std::vector<uint64_t> float_shard_bytes(uint64_t n, int shards);

// ---------------------------------------------------------------------------
// Saved activations
// ---------------------------------------------------------------------------

// A saved tensor of rows x cols values: each row's codes packed into whole
// bytes, and for the scaled formats (fp8e4m3, int8) one fp32 scale per row.
uint64_t row_quantized_data_bytes(DType format, uint64_t rows, uint64_t cols);
uint64_t row_quantized_scale_bytes(DType format, uint64_t rows);
uint64_t saved_tensor_bytes(DType format, uint64_t rows, uint64_t cols);  // codes + scales

// What forward keeps for backward (kernels/model.cpp), with N = B*T rows, in
// precision.activations' format unless said otherwise:
// - a block: its input x_in, LayerNorm 1's output, qkv (3C), the attention
//   weights, the attention output, x_mid (LayerNorm 2's input), LayerNorm 2's
//   output, the FC output and the GELU output (4C each), and the two
//   LayerNorms' mean and rstd (fp32, N each). Dense attention keeps the T x T
//   probabilities of every (b, head, query); Top-K keeps K weights per query
//   and K uint16 key indices.
// - the head: the final LayerNorm's input and output, its mean and rstd, and
//   the (N,V) probabilities in fp32 whatever the format.
// - checkpoint.every = k > 0: the input of blocks 0, k, 2k, ... (activations);
//   backward recomputes one segment of up to k blocks at a time (recompute),
//   its first block adopting the checkpointed input instead of storing it again.
struct SavedActivationBytes {
  uint64_t block;             // what one block keeps for its backward
  uint64_t block_input;       // one checkpointed block input (N x C)
  uint64_t head;              // final LayerNorm input and output, its statistics, fp32 probabilities
  uint64_t checkpoints;       // block inputs kept under checkpointing: ceil(L/k); 0 without
  uint64_t activations_peak;  // the peak of category activations in a step
  uint64_t recompute_peak;    // the peak of category recompute (0 without checkpointing)
  uint64_t block_values;      // values a block stores (the (de)quantization traffic of the cost model)
  uint64_t head_values;       // values the head stores in the activation format
};
SavedActivationBytes saved_activation_bytes(const Config& config);

// ---------------------------------------------------------------------------
// FLOPs, as the kernels count them (kernels/cpu/ops.h) and the cost model and
// the calibration size their work by. A GEMM of (N,C) by (C,OC) is 2*N*C*OC
// forward and twice that backward. Attention counts its dot products and
// weighted sums over the causal entries, 2C FLOPs each over the heads: with
// E(limit) = sum over queries t < T of min(limit, t+1), dense forward is
// 4BC*E(T) and backward 8BC*E(T); Top-K forward scores every causal key and
// then weighs its kept ones, 2BC*(E(T) + E(K)), and backward works on the
// kept ones only, 8BC*E(K).
// ---------------------------------------------------------------------------

double causal_entries(int T, int limit);
double matmul_forward_flops(int N, int C, int OC);
double matmul_backward_flops(int N, int C, int OC);
double attention_forward_flops(int B, int T, int C);
double attention_backward_flops(int B, int T, int C);
double attention_topk_forward_flops(int B, int T, int C, int K);
double attention_topk_backward_flops(int B, int T, int C, int K);

}  // namespace memfront
