// Rank-to-node placement from the config.
#include <gtest/gtest.h>

#include "core/config.h"
#include "core/topology.h"

using namespace memfront;

namespace {
Topology placed(const char* json) { return Topology::from_config(parse_config_text(json, "t")); }
}  // namespace

TEST(Topology, BlockCyclicAndExplicitOrders) {
  Topology block = placed(R"({"world": 4, "placement": {"ranks_per_node": 2}})");
  EXPECT_EQ(block.node_of_rank, (std::vector<int>{0, 0, 1, 1}));
  EXPECT_TRUE(block.emulated);
  EXPECT_EQ(block.node_count(), 2);
  EXPECT_EQ(block.ranks_on(1), (std::vector<int>{2, 3}));
  EXPECT_EQ(block.leader(1), 2);
  EXPECT_TRUE(block.same_node(0, 1));
  EXPECT_FALSE(block.same_node(1, 2));

  Topology cyclic = placed(R"({"world": 4, "placement": {"ranks_per_node": 2, "order": "cyclic"}})");
  EXPECT_EQ(cyclic.node_of_rank, (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(cyclic.leader(1), 1);

  Topology listed = placed(R"({"world": 4, "placement": {"ranks_per_node": 2, "order": [1, 0, 0, 1]}})");
  EXPECT_EQ(listed.ranks_on(0), (std::vector<int>{1, 2}));
  EXPECT_EQ(listed.leader(0), 1);
}

TEST(Topology, OneNodeIsNotEmulated) {
  Topology one = placed(R"({"world": 3})");
  EXPECT_EQ(one.node_count(), 1);
  EXPECT_FALSE(one.emulated);
}

TEST(Topology, LinkFromTheConfig) {
  Topology t = placed(R"({"world": 2, "placement": {"ranks_per_node": 1, "link_latency_us": 20,
                          "link_bandwidth_gigabytes_per_s": 2.5}})");
  EXPECT_DOUBLE_EQ(t.link_latency_s, 20e-6);
  EXPECT_DOUBLE_EQ(t.link_bytes_per_s, 2.5e9);
  EXPECT_EQ(t.describe(), "2 nodes [0 1] (virtual nodes, emulated link)");
}
