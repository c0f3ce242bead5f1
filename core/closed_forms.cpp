#include "core/closed_forms.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace memfront {

// ---------------------------------------------------------------------------
// Shards
// ---------------------------------------------------------------------------

uint64_t shard_offset(uint64_t n, uint64_t shards, uint64_t i) { return i * (n / shards) + i * (n % shards) / shards; }

uint64_t shard_size(uint64_t n, uint64_t shards, uint64_t i) {
  return shard_offset(n, shards, i + 1) - shard_offset(n, shards, i);
}

uint64_t largest_shard(uint64_t n, uint64_t shards) { return (n + shards - 1) / shards; }

uint64_t sum_over_shards(uint64_t n, uint64_t shards, const std::function<uint64_t(uint64_t)>& f) {
  const uint64_t q = n / shards, r = n % shards;
  return (shards - r) * f(q) + (r > 0 ? r * f(q + 1) : 0);
}

int shard_group_size(const Config& config) {
  return config.shard.strategy == ShardStrategy::hybrid ? config.shard.group : config.world;
}

// ---------------------------------------------------------------------------
// Parameter units
// ---------------------------------------------------------------------------

ParamUnits::ParamUnits(const ModelShape& m)
    : layers(m.layers),
      embedding(uint64_t(m.vocab) * m.width + uint64_t(m.seq) * m.width),
      block(12 * uint64_t(m.width) * m.width + 13 * uint64_t(m.width)),
      final_norm(2 * uint64_t(m.width)),
      total(embedding + uint64_t(m.layers) * block + final_norm) {}

uint64_t ParamUnits::largest() const { return std::max({embedding, block, final_norm}); }

// ---------------------------------------------------------------------------
// Wire formats
// ---------------------------------------------------------------------------

void check_blockwise_format(DType format, int block) {
  if (block < 1) {
    throw std::invalid_argument("blockwise quantization needs a block size >= 1, got " + std::to_string(block));
  }
  if (format == DType::fp8e4m3) {
    throw std::invalid_argument("blockwise quantization does not support format " + std::string(to_string(format)));
  }
}

uint64_t blockwise_block_count(uint64_t n, int block) {
  const auto size = static_cast<uint64_t>(block);
  return (n + size - 1) / size;
}

uint64_t blockwise_bytes(uint64_t n, DType format, int block) {
  check_blockwise_format(format, block);
  const uint64_t scale_bytes = dtype_is_scaled(format) ? blockwise_block_count(n, block) * sizeof(float) : 0;
  // int4: two codes per byte; with n odd the last byte's high nibble is padding.
  const uint64_t code_bytes = format == DType::int4 ? (n + 1) / 2 : n * static_cast<uint64_t>(dtype_bits(format) / 8);
  return scale_bytes + code_bytes;
}

uint64_t topk_count(uint64_t n, double density) {
  if (!(density > 0.0 && density <= 1.0)) {
    throw std::invalid_argument("Top-K density must be in (0, 1], got " + std::to_string(density));
  }
  if (n == 0) return 0;
  // density comes from a decimal knob value, which binary cannot hold exactly: 0.07 * 100
  // is 7.000000000000001 in doubles, and ceil would send 8 entries instead of the 7 meant.
  // Taking off a relative 1e-12 absorbs that error, far below any real fraction of an entry.
  const double wanted = density * static_cast<double>(n);
  const auto k = static_cast<uint64_t>(std::ceil(wanted * (1.0 - 1e-12)));
  return std::clamp<uint64_t>(k, 1, n);
}

uint64_t topk_bytes(uint64_t k) { return k * kTopkEntryBytes; }

// ---------------------------------------------------------------------------
// Ring collectives
// ---------------------------------------------------------------------------

namespace ring {

namespace {

// Every block but `kept` passes once.
RingTraffic every_block_but(const std::vector<uint64_t>& block_bytes, int kept) {
  RingTraffic sent;
  for (size_t block = 0; block < block_bytes.size(); ++block) {
    if (static_cast<int>(block) == kept || block_bytes[block] == 0) continue;
    sent.bytes += block_bytes[block];
    sent.messages += 1;
  }
  return sent;
}

}  // namespace

RingTraffic reduce_scatter(const std::vector<uint64_t>& block_bytes, int position) {
  return every_block_but(block_bytes, position);
}

RingTraffic all_gather(const std::vector<uint64_t>& block_bytes, int position) {
  return every_block_but(block_bytes, (position + 1) % static_cast<int>(block_bytes.size()));
}

RingTraffic all_reduce(const std::vector<uint64_t>& block_bytes, int position) {
  RingTraffic sent = reduce_scatter(block_bytes, position);
  const RingTraffic gathered = all_gather(block_bytes, position);
  sent.bytes += gathered.bytes;
  sent.messages += gathered.messages;
  return sent;
}

RingTraffic broadcast(uint64_t bytes, int position, int root_position, int members) {
  const bool ends_the_chain = (position + 1) % members == root_position;
  if (ends_the_chain || bytes == 0) return {};
  return {bytes, 1};
}

RingTraffic reduce(uint64_t bytes, int position, int root_position) {
  if (position == root_position || bytes == 0) return {};
  return {bytes, 1};
}

}  // namespace ring

std::vector<uint64_t> float_shard_bytes(uint64_t n, int shards) {
  std::vector<uint64_t> bytes;
  for (int i = 0; i < shards; ++i) bytes.push_back(shard_size(n, shards, i) * sizeof(float));
  return bytes;
}

// ---------------------------------------------------------------------------
// Saved activations
// ---------------------------------------------------------------------------

uint64_t row_quantized_data_bytes(DType format, uint64_t rows, uint64_t cols) {
  // Sub-byte formats pack a row into whole bytes.
  return rows * ((cols * static_cast<uint64_t>(dtype_bits(format)) + 7) / 8);
}

uint64_t row_quantized_scale_bytes(DType format, uint64_t rows) {
  return dtype_is_scaled(format) ? rows * sizeof(float) : 0;
}

uint64_t saved_tensor_bytes(DType format, uint64_t rows, uint64_t cols) {
  return row_quantized_data_bytes(format, rows, cols) + row_quantized_scale_bytes(format, rows);
}

SavedActivationBytes saved_activation_bytes(const Config& config) {
  const DType f = config.precision.activations;
  const uint64_t B = config.batch.micro, T = config.model.seq, C = config.model.width;
  const uint64_t NH = config.model.heads, L = config.model.layers, V = config.model.vocab;
  const uint64_t K = config.topk.attention;
  const uint64_t N = B * T;
  const uint64_t stats = N * sizeof(float);  // one LayerNorm mean or rstd

  // Attention keeps the T x T probabilities of every (b, h, query), or for Top-K
  // the K kept weights and their uint16 key indices.
  const uint64_t attention_values = B * NH * T * (K == 0 ? T : K);
  const uint64_t attention = K == 0 ? saved_tensor_bytes(f, B * NH * T, T)
                                    : saved_tensor_bytes(f, B * NH * T, K) + B * NH * T * K * sizeof(uint16_t);
  SavedActivationBytes s{};
  s.block_input = saved_tensor_bytes(f, N, C);
  s.block = s.block_input                       // x_in: LayerNorm 1 input
            + saved_tensor_bytes(f, N, C)       // LayerNorm 1 output: QKV GEMM input
            + 2 * stats                         // LayerNorm 1 mean, rstd (fp32)
            + saved_tensor_bytes(f, N, 3 * C)   // qkv
            + attention                         // probabilities
            + saved_tensor_bytes(f, N, C)       // attention output: projection GEMM input
            + saved_tensor_bytes(f, N, C)       // x_mid: LayerNorm 2 input
            + saved_tensor_bytes(f, N, C)       // LayerNorm 2 output: FC GEMM input
            + 2 * stats                         // LayerNorm 2 mean, rstd
            + saved_tensor_bytes(f, N, 4 * C)   // FC output: GELU input
            + saved_tensor_bytes(f, N, 4 * C);  // GELU output: FC-projection GEMM input
  s.block_values = 16 * N * C + attention_values;
  s.head = saved_tensor_bytes(f, N, C)          // final LayerNorm input
           + saved_tensor_bytes(f, N, C)        // final LayerNorm output: LM-head GEMM input
           + 2 * stats                          // its mean, rstd
           + N * V * sizeof(float);             // probabilities, fp32 whatever the format
  s.head_values = 2 * N * C;
  const uint64_t k = config.checkpoint.every;
  if (k == 0) {
    s.checkpoints = 0;
    s.activations_peak = L * s.block + s.head;
    s.recompute_peak = 0;
  } else {
    s.checkpoints = (L + k - 1) / k;
    const uint64_t longest_segment = std::min(k, L);
    s.activations_peak = s.checkpoints * s.block_input + s.head;
    // A recomputed segment keeps everything of its blocks, but its first block
    // adopts the checkpointed input instead of storing it again.
    s.recompute_peak = longest_segment * s.block - s.block_input;
  }
  return s;
}

double causal_entries(int T, int limit) {
  const double t = T, k = std::min(limit, T);
  return k * (k + 1) / 2 + (t - k) * k;  // queries t < k use t+1 keys, the rest k
}

double matmul_forward_flops(int N, int C, int OC) { return 2.0 * N * C * OC; }
double matmul_backward_flops(int N, int C, int OC) { return 4.0 * N * C * OC; }
double attention_forward_flops(int B, int T, int C) { return 4.0 * B * C * causal_entries(T, T); }
double attention_backward_flops(int B, int T, int C) { return 8.0 * B * C * causal_entries(T, T); }
double attention_topk_forward_flops(int B, int T, int C, int K) {
  return 2.0 * B * C * (causal_entries(T, T) + causal_entries(T, K));
}
double attention_topk_backward_flops(int B, int T, int C, int K) { return 8.0 * B * C * causal_entries(T, K); }

}  // namespace memfront
