// The CUDA backend's arena bookkeeping, checked on the CPU against a byte-map model.
#include "common/range_allocator.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace sculpt {
namespace {

TEST(RangeAllocatorTest, AlignsAndFailsWhenFull) {
  RangeAllocator allocator(1000, 256);  // 768 usable bytes
  EXPECT_EQ(allocator.capacity(), 768u);
  EXPECT_EQ(allocator.Allocate(1), 0u);
  EXPECT_EQ(allocator.Allocate(0), 256u);  // zero bytes still get a distinct address
  EXPECT_EQ(allocator.Allocate(257), std::nullopt);
  EXPECT_EQ(allocator.Allocate(256), 512u);
  EXPECT_EQ(allocator.Allocate(1), std::nullopt);
  EXPECT_EQ(allocator.bytes_in_use(), 768u);
}

TEST(RangeAllocatorTest, FreedNeighboursMergeIntoOneRange) {
  RangeAllocator allocator(4096, 256);
  const auto a = allocator.Allocate(1024);
  const auto b = allocator.Allocate(1024);
  const auto c = allocator.Allocate(1024);
  ASSERT_TRUE(a && b && c);
  allocator.Free(*a);
  allocator.Free(*c);
  EXPECT_EQ(allocator.largest_free_range(), 2048u);  // c merged with the tail
  EXPECT_EQ(allocator.Allocate(3000), std::nullopt);
  allocator.Free(*b);
  EXPECT_EQ(allocator.largest_free_range(), 4096u);
  EXPECT_EQ(allocator.Allocate(4096), 0u);
}

TEST(RangeAllocatorTest, RandomAllocationsNeverOverlap) {
  constexpr size_t kCapacity = 1 << 16;
  RangeAllocator allocator(kCapacity, 64);
  std::vector<int> owner(kCapacity, -1);
  std::vector<std::pair<size_t, size_t>> live;  // offset, bytes
  std::mt19937 random(7);
  for (int i = 0; i < 5000; ++i) {
    if (!live.empty() && random() % 2 == 0) {
      const size_t pick = random() % live.size();
      for (size_t j = 0; j < live[pick].second; ++j) owner[live[pick].first + j] = -1;
      allocator.Free(live[pick].first);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(pick));
      continue;
    }
    const size_t bytes = 1 + random() % 3000;
    const auto offset = allocator.Allocate(bytes);
    if (!offset) {
      EXPECT_LT(allocator.largest_free_range(), bytes);
      continue;
    }
    EXPECT_EQ(*offset % 64, 0u);
    ASSERT_LE(*offset + bytes, kCapacity);
    for (size_t j = 0; j < bytes; ++j) {
      ASSERT_EQ(owner[*offset + j], -1) << "overlap at " << *offset + j;
      owner[*offset + j] = i;
    }
    live.emplace_back(*offset, bytes);
  }
  for (const auto& [offset, bytes] : live) allocator.Free(offset);
  EXPECT_EQ(allocator.bytes_in_use(), 0u);
  EXPECT_EQ(allocator.largest_free_range(), kCapacity);
}

}  // namespace
}  // namespace sculpt
