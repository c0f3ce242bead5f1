// The closed forms of core/closed_forms.h on their own. That the kernels
// allocate and send exactly what they say is held elsewhere, against the
// arena and the communicators' counters: test_ops (param layout, wire
// formats), test_model (saved activations), test_comm and test_distributed
// (shards, collectives), test_cost_model (predicted == measured).
#include <algorithm>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "core/closed_forms.h"
#include "core/config.h"

using namespace memfront;

TEST(ClosedForms, ShardsSplitEvenlyWithoutPadding) {
  // 10 over 4: [0,2) [2,5) [5,7) [7,10).
  EXPECT_EQ(shard_offset(10, 4, 0), 0u);
  EXPECT_EQ(shard_offset(10, 4, 1), 2u);
  EXPECT_EQ(shard_offset(10, 4, 2), 5u);
  EXPECT_EQ(shard_offset(10, 4, 4), 10u);
  EXPECT_EQ(largest_shard(10, 4), 3u);
  for (uint64_t n : {0ull, 1ull, 7ull, 2541ull, 13497ull}) {
    for (uint64_t g : {1ull, 2ull, 3ull, 4ull, 8ull}) {
      uint64_t sum = 0, largest = 0, larger = 0;
      for (uint64_t i = 0; i < g; ++i) {
        const uint64_t size = shard_size(n, g, i);
        EXPECT_TRUE(size == n / g || size == n / g + 1) << n << " over " << g;
        larger += size == n / g + 1;
        largest = std::max(largest, size);
        sum += size;
      }
      EXPECT_EQ(sum, n);
      EXPECT_EQ(larger, n % g);
      EXPECT_EQ(largest, largest_shard(n, g));
      EXPECT_EQ(sum_over_shards(n, g, [](uint64_t size) { return 3 * size + 1; }), 3 * n + g);
    }
  }
  const uint64_t huge = uint64_t{1} << 62;  // i*n would overflow 64 bits
  EXPECT_EQ(shard_size(huge, 3, 0), huge / 3);
  EXPECT_EQ(shard_offset(huge, 3, 3), huge);
}

// hybrid shards within groups of shard.group ranks; every other strategy over the world.
TEST(ClosedForms, ShardGroupIsTheWorldExceptUnderHybrid) {
  Config c;
  c.world = 8;
  c.shard.group = 2;
  for (const StrategyTraits& t : kShardStrategies) {
    c.shard.strategy = t.strategy;
    EXPECT_EQ(shard_group_size(c), t.strategy == ShardStrategy::hybrid ? 2 : 8) << t.name;
  }
}

TEST(ClosedForms, ParamUnitsCountEveryTensor) {
  ModelShape shape;
  shape.vocab = 61;
  shape.seq = 16;
  shape.width = 33;
  shape.layers = 3;
  const ParamUnits units(shape);
  const uint64_t C = 33;
  EXPECT_EQ(units.embedding, 61 * C + 16 * C);  // wte, wpe
  // LayerNorm 1, QKV, projection, LayerNorm 2, FC, FC projection.
  EXPECT_EQ(units.block, 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C));
  EXPECT_EQ(units.final_norm, 2 * C);
  EXPECT_EQ(units.count(), 5);
  EXPECT_EQ(units.size(0), units.embedding);
  EXPECT_EQ(units.size(2), units.block);
  EXPECT_EQ(units.size(4), units.final_norm);
  EXPECT_EQ(units.total, units.embedding + 3 * units.block + units.final_norm);
  EXPECT_EQ(units.largest(), units.block);
}

// The textbook ring bytes, for four members: reduce-scatter and all-gather
// send (N-1)/N of the payload per member, all-reduce twice that, and a
// broadcast (N-1)/N on average (the root's predecessor sends nothing).
TEST(ClosedForms, RingFormulasGiveTheTextbookBytes) {
  const std::vector<uint64_t> even = {400, 400, 400, 400};
  const std::vector<uint64_t> uneven = {400, 404, 0, 396};
  auto nonempty = [](const std::vector<uint64_t>& blocks, int skipped) {
    uint64_t count = 0;
    for (size_t block = 0; block < blocks.size(); ++block) {
      if (static_cast<int>(block) != skipped && blocks[block] > 0) count += 1;
    }
    return count;
  };
  for (int me = 0; me < 4; ++me) {
    EXPECT_EQ(ring::reduce_scatter(even, me).bytes, 1200u);
    EXPECT_EQ(ring::all_gather(even, me).bytes, 1200u);
    EXPECT_EQ(ring::all_reduce(even, me).bytes, 2400u);
    EXPECT_EQ(ring::all_reduce(even, me).messages, 6u);
    EXPECT_EQ(ring::reduce_scatter(uneven, me).bytes, 1200 - uneven[me]);
    EXPECT_EQ(ring::all_gather(uneven, me).bytes, 1200 - uneven[(me + 1) % 4]);
    EXPECT_EQ(ring::reduce_scatter(uneven, me).messages, nonempty(uneven, me));
  }
  uint64_t broadcast_bytes = 0, reduce_bytes = 0;
  for (int me = 0; me < 4; ++me) {
    broadcast_bytes += ring::broadcast(1000, me, 2, 4).bytes;
    reduce_bytes += ring::reduce(1000, me, 2).bytes;
  }
  EXPECT_EQ(broadcast_bytes, 3000u);
  EXPECT_EQ(ring::broadcast(1000, 1, 2, 4).bytes, 0u) << "the root's predecessor ends the chain";
  EXPECT_EQ(reduce_bytes, 3000u);
  EXPECT_EQ(ring::reduce(1000, 2, 2).bytes, 0u) << "the root keeps the sum";
  EXPECT_EQ(ring::broadcast(0, 0, 2, 4).messages, 0u);

  // The fp32 shards of 10 elements over 4: 2, 3, 2, 3 floats.
  EXPECT_EQ(float_shard_bytes(10, 4), (std::vector<uint64_t>{8, 12, 8, 12}));
}

// The checkpoint schedule: L = 5 blocks, every k = 2 keeps the inputs of
// blocks 0, 2 and 4; the longest recomputed segment is 2 blocks, its first
// adopting the checkpoint.
TEST(ClosedForms, SavedActivationsFollowTheCheckpointSchedule) {
  Config c;
  c.model.layers = 5;
  c.precision.activations = DType::int8;
  const SavedActivationBytes dense = saved_activation_bytes(c);
  EXPECT_EQ(dense.checkpoints, 0u);
  EXPECT_EQ(dense.activations_peak, 5 * dense.block + dense.head);
  EXPECT_EQ(dense.recompute_peak, 0u);
  const uint64_t N = uint64_t(c.batch.micro) * c.model.seq, C = c.model.width;
  EXPECT_EQ(dense.block_input, N * C + N * 4) << "int8 codes and one fp32 scale per row";
  EXPECT_EQ(dense.head_values, 2 * N * C);
  EXPECT_EQ(dense.block_values, 16 * N * C + uint64_t(c.batch.micro) * c.model.heads * c.model.seq * c.model.seq);

  c.checkpoint.every = 2;
  const SavedActivationBytes checkpointed = saved_activation_bytes(c);
  EXPECT_EQ(checkpointed.checkpoints, 3u);
  EXPECT_EQ(checkpointed.activations_peak, 3 * checkpointed.block_input + checkpointed.head);
  EXPECT_EQ(checkpointed.recompute_peak, 2 * checkpointed.block - checkpointed.block_input);
  EXPECT_EQ(checkpointed.block, dense.block);
}
