// The Arena: exact live and peak bytes per category, capacity, events.
#include <gtest/gtest.h>

#include <memory>

#include "core/arena.h"

using namespace memfront;

TEST(Arena, TracksLiveAndPeakPerCategoryAndTotal) {
  Arena arena;
  {
    Buffer a = arena.allocate(1000, MemCategory::params, "a");
    Buffer b = arena.allocate(300, MemCategory::activations, "b");
    EXPECT_EQ(arena.live(MemCategory::params), 1000u);
    EXPECT_EQ(arena.live(MemCategory::activations), 300u);
    EXPECT_EQ(arena.live_total(), 1300u);
    b.reset();
    Buffer c = arena.allocate(200, MemCategory::activations, "c");
    EXPECT_EQ(arena.peak(MemCategory::activations), 300u);
    EXPECT_EQ(arena.peak_total(), 1300u);
    Buffer d = arena.allocate(500, MemCategory::workspace, "d");
    // The total's peak is its own high-water mark, not the sum of category peaks.
    EXPECT_EQ(arena.peak_total(), 1700u);
  }
  EXPECT_EQ(arena.live_total(), 0u);
  EXPECT_EQ(arena.peak(MemCategory::params), 1000u);
  EXPECT_EQ(arena.peak(MemCategory::workspace), 500u);
  EXPECT_EQ(arena.peak(MemCategory::grads), 0u);
  EXPECT_EQ(arena.allocation_count(), 4u);
}

TEST(Arena, MovedBufferIsReleasedOnce) {
  Arena arena;
  Buffer a = arena.allocate(64, MemCategory::comm, "a");
  Buffer b = std::move(a);
  EXPECT_FALSE(a);
  EXPECT_TRUE(b);
  EXPECT_EQ(arena.live(MemCategory::comm), 64u);
  Buffer c = arena.allocate(32, MemCategory::comm, "c");
  c = std::move(b);  // c's own 32 bytes are released first
  EXPECT_EQ(arena.live(MemCategory::comm), 64u);
  c.reset();
  EXPECT_EQ(arena.live_total(), 0u);
}

TEST(Arena, CapacityBreachThrowsAndLeavesCountsUnchanged) {
  Arena arena(1000);
  Buffer a = arena.allocate(600, MemCategory::params, "a");
  try {
    Buffer b = arena.allocate(500, MemCategory::activations, "l0.qkv");
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    EXPECT_STREQ(e.what(),
                 "out of memory: allocating 500 B of activations for 'l0.qkv' with 600 B live of a 1000 B capacity");
  }
  EXPECT_EQ(arena.live_total(), 600u);
  EXPECT_EQ(arena.peak(MemCategory::activations), 0u);
  Buffer exactly_full = arena.allocate(400, MemCategory::activations, "fits");
  EXPECT_EQ(arena.peak_total(), 1000u);
}

TEST(Arena, SubscribersSeeEveryAllocationAndRelease) {
  Arena arena;
  std::vector<MemEvent> events;
  std::vector<std::string> names;
  int handle = arena.subscribe([&](const MemEvent& e) {
    events.push_back(e);
    names.emplace_back(e.name);
  });
  {
    Buffer a = arena.allocate(10, MemCategory::grads, "g");
    Buffer b = arena.allocate(20, MemCategory::recompute, "r");
  }
  arena.unsubscribe(handle);
  Buffer c = arena.allocate(5, MemCategory::grads, "unseen");
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].delta_bytes, 10);
  EXPECT_EQ(events[1].live_total, 30u);
  EXPECT_EQ(events[2].delta_bytes, -20);  // b is destroyed first
  EXPECT_EQ(events[2].category, MemCategory::recompute);
  EXPECT_EQ(events[3].live_total, 0u);
  EXPECT_EQ(names, (std::vector<std::string>{"g", "r", "r", "g"}));
  EXPECT_LE(events[0].time_ns, events[3].time_ns);
}

TEST(Arena, CategoryNamesRoundTrip) {
  for (MemCategory c : kAllMemCategories) EXPECT_EQ(parse_mem_category(to_string(c)), c);
  EXPECT_FALSE(parse_mem_category("weights"));
}

TEST(Arena, FormatsBytesForPeople) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(12ull << 20), "12.0 MiB");
  EXPECT_EQ(format_bytes(3ull << 29), "1.50 GiB");
}

TEST(Arena, ParsesByteSizes) {
  EXPECT_EQ(parse_bytes("1048576"), 1048576u);
  EXPECT_EQ(parse_bytes("512MiB"), 512ull << 20);
  EXPECT_EQ(parse_bytes("1.5 GiB"), 3ull << 29);
  EXPECT_EQ(parse_bytes("16GB"), 16000000000ull);
  EXPECT_FALSE(parse_bytes("lots"));
  EXPECT_FALSE(parse_bytes("12 parsecs"));
  EXPECT_FALSE(parse_bytes("-5"));
}

TEST(HostMemory, KeepsFreedBlocksForTheNextRequestOfTheSameSize) {
  HostMemory memory;
  void* first = memory.allocate(1000);
  memory.deallocate(first, 1000);
  // 1000 and 1020 round to the same 1024-byte block: the kept one comes back.
  void* again = memory.allocate(1020);
  EXPECT_EQ(again, first);
  EXPECT_EQ(memory.reserved_bytes(), 1024u);
  void* other = memory.allocate(2000);  // another size: a new block
  EXPECT_NE(other, first);
  EXPECT_EQ(memory.reserved_bytes(), 1024u + 2048u);
  memory.deallocate(again, 1020);
  memory.deallocate(other, 2000);
  EXPECT_EQ(memory.reserved_bytes(), 3072u);  // kept, not given back
  EXPECT_EQ(memory.reserved_high_bytes(), 3072u);
}

TEST(Arena, RepeatedStepsReuseThePoolWhileCountingLogicalBytes) {
  auto memory = std::make_unique<HostMemory>();
  const HostMemory& pool = *memory;
  Arena arena(0, std::move(memory));
  Buffer params = arena.allocate(4000, MemCategory::params, "params");
  auto step = [&] {
    Buffer a = arena.allocate(1000, MemCategory::activations, "a");
    Buffer b = arena.allocate(3, MemCategory::activations, "b");
    a.reset();
    Buffer c = arena.allocate(1000, MemCategory::workspace, "c");  // a's block, reused
  };
  step();
  const uint64_t reserved_after_first_step = pool.reserved_bytes();
  EXPECT_EQ(reserved_after_first_step, 4032u + 1024u + 64u);
  for (int i = 0; i < 3; ++i) step();
  EXPECT_EQ(pool.reserved_bytes(), reserved_after_first_step);  // no new memory after the first step
  EXPECT_EQ(arena.memory().reserved_high_bytes(), reserved_after_first_step);
  // The arena counts the bytes asked for, not the pool's blocks.
  EXPECT_EQ(arena.peak(MemCategory::activations), 1003u);
  EXPECT_EQ(arena.peak_total(), 5003u);
  EXPECT_EQ(arena.live_total(), 4000u);
}
