// The approximate KV cache in the engine: the row allocator, cached forwards against full ones,
// and sequences with and without a cache packed into one forward, each as if alone.
#include "model/kv_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/host_memory.h"
#include "model/denoiser.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

std::vector<float> CopyLogits(const TensorView& logits) {
  return std::vector<float>(logits.f32(), logits.f32() + logits.num_elements());
}

std::vector<int32_t> Range(int32_t first, int32_t last) {
  std::vector<int32_t> values;
  for (int32_t i = first; i < last; ++i) values.push_back(i);
  return values;
}

TEST(KvRowAllocatorTest, FirstFitRangesMergeWhenFreed) {
  KvRowAllocator allocator(100);
  const auto a = allocator.Allocate(30);
  const auto b = allocator.Allocate(30);
  const auto c = allocator.Allocate(30);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->first, 0);
  EXPECT_EQ(b->first, 30);
  EXPECT_EQ(c->first, 60);
  EXPECT_EQ(allocator.used(), 90);
  EXPECT_FALSE(allocator.Allocate(11));  // 10 rows left
  EXPECT_FALSE(allocator.Allocate(0));
  allocator.Free(*a);
  allocator.Free(*c);
  // 30 free at 0 and 40 at 60, but not 50 in one piece, until b goes.
  EXPECT_FALSE(allocator.Allocate(50));
  const auto low = allocator.Allocate(20);
  ASSERT_TRUE(low);
  EXPECT_EQ(low->first, 0);  // the lowest range that fits
  allocator.Free(*low);
  allocator.Free(*b);
  EXPECT_EQ(allocator.used(), 0);
  const auto all = allocator.Allocate(100);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->first, 0);
}

TEST(KvRowAllocatorTest, ALeaseReturnsItsRowsWhenDestroyedOrReset) {
  KvRowAllocator allocator(10);
  {
    KvCacheLease lease(&allocator, *allocator.Allocate(6));
    EXPECT_EQ(allocator.used(), 6);
    KvCacheLease moved = std::move(lease);
    EXPECT_FALSE(lease.held());  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(allocator.used(), 6);
  }
  EXPECT_EQ(allocator.used(), 0);
  KvCacheLease lease(&allocator, *allocator.Allocate(10));
  lease.reset();
  EXPECT_EQ(allocator.used(), 0);
}

TEST(KvCacheModeTest, ParsesTheThreeModesAndNamesTheChoicesOtherwise) {
  EXPECT_EQ(*ParseKvCacheMode("dual"), KvCacheMode::kDual);
  EXPECT_EQ(*ParseKvCacheMode("prefix"), KvCacheMode::kPrefix);
  EXPECT_EQ(*ParseKvCacheMode("none"), KvCacheMode::kNone);
  const auto bad = ParseKvCacheMode("Dual");
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("none, prefix or dual"), std::string::npos);
}

TEST(KvCacheRowsForTest, ReadsAutoFractionsAndBytesAndNeverExceedsWhatAStepCanUse) {
  const int64_t row = 1024;
  const uint64_t available = 100 << 20;  // 100 MiB
  EXPECT_EQ(*KvCacheRowsFor("auto", row, available, 8192), 8192);
  EXPECT_EQ(*KvCacheRowsFor("auto", row, 4 << 20, 8192), 2048);  // half of 4 MiB
  EXPECT_EQ(*KvCacheRowsFor("0.01", row, available, 1 << 20), 1024);
  EXPECT_EQ(*KvCacheRowsFor("0", row, available, 8192), 0);
  EXPECT_EQ(*KvCacheRowsFor("4MiB", row, available, 8192), 4096);
  EXPECT_EQ(*KvCacheRowsFor("2GB", row, available, 8192), 8192);
  EXPECT_EQ(*KvCacheRowsFor("1048576", row, available, 8192), 1024);
  EXPECT_EQ(*KvCacheRowsFor("1.5KiB", row, available, 8192), 1);
  for (const char* bad : {"", "-1", "1.0", "0.0", "half", "4 GiB", "4gib", "1.2.3", "MiB"}) {
    const auto refused = KvCacheRowsFor(bad, row, available, 8192);
    ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(refused.status().message().find("--kv-cache-memory"), std::string::npos);
  }
}

TEST(HostAvailableMemoryTest, IsSomeButNotMoreThanTheMachineHas) {
  const uint64_t physical =
      static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const size_t available = HostAvailableMemory();
  EXPECT_GT(available, 0u);
  EXPECT_LE(available, physical);
}

class CachedForwardTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    loaded_ = testing::LoadTestModel(GetParam());
    ASSERT_NE(loaded_.model, nullptr);
    ASSERT_TRUE(loaded_.model->ReserveKvCache(64).ok());
    mask_ = loaded_.model->config().mask_token_id;
  }
  Transformer& model() { return *loaded_.model; }

  std::vector<float> Forward(const std::vector<SequenceInput>& batch) {
    auto logits = model().Forward(batch);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return logits.ok() ? CopyLogits(*logits) : std::vector<float>();
  }

  testing::LoadedModel loaded_;
  int32_t mask_ = 0;
};

TEST_P(CachedForwardTest, AWindowOfAnUnchangedCanvasIsTheFullForwardsRows) {
  const std::vector<int32_t> canvas = {3,     14,    15,    92,    65,    35, mask_,
                                       mask_, mask_, mask_, mask_, mask_, 8,  9};
  const auto length = static_cast<int32_t>(canvas.size());
  const std::vector<int32_t> all = Range(0, length);
  SequenceInput fill{canvas, all, KvCacheUse::kFill, {5, length}};
  const std::vector<float> full = Forward({fill});
  // The fill forward is the plain forward, bitwise.
  EXPECT_EQ(full, Forward({SequenceInput{canvas, all}}));
  const int64_t vocab = model().config().embedding_size;
  for (const auto& [first, last] : {std::pair{6, 12}, std::pair{0, 4}, std::pair{6, length}}) {
    SCOPED_TRACE(::testing::Message() << "window [" << first << ", " << last << ")");
    const std::vector<int32_t> rows = Range(first, last);
    SequenceInput window{canvas, rows, KvCacheUse::kWindow, {5, length}, first, last};
    const std::vector<float> part = Forward({window});
    ASSERT_EQ(part.size(), static_cast<size_t>((last - first) * vocab));
    for (size_t i = 0; i < part.size(); ++i) {
      const float expected = full[first * vocab + i];
      ASSERT_NEAR(part[i], expected, 1e-4f * std::max(1.0f, std::fabs(expected))) << "at " << i;
    }
  }
}

TEST_P(CachedForwardTest, CachedAndUncachedSequencesInOneForwardAreBitwiseAsAlone) {
  const std::vector<int32_t> plain = {65, 35, 89, 79, 32, 38, mask_, mask_, 46, 26, mask_};
  std::vector<int32_t> first = {3, 14, 15, 92, mask_, mask_, mask_, mask_, mask_, 7};
  std::vector<int32_t> second = {1, 2, mask_, mask_, mask_, mask_, 5, 6, 7, 8, 9, 10, 11};
  const RowRange first_rows{0, 10}, second_rows{30, 13};
  const std::vector<int32_t> plain_positions = {0, 6, 7, 10};
  const std::vector<int32_t> first_all = Range(0, 10), second_all = Range(0, 13);
  const std::vector<int32_t> first_window = {4, 6, 8}, second_window = {2, 5};

  const SequenceInput plain_input{plain, plain_positions};
  const auto fill = [](const std::vector<int32_t>& tokens, const std::vector<int32_t>& positions,
                       RowRange rows) {
    return SequenceInput{tokens, positions, KvCacheUse::kFill, rows};
  };
  const auto window = [](const std::vector<int32_t>& tokens, const std::vector<int32_t>& positions,
                         RowRange rows, int32_t begin, int32_t end) {
    return SequenceInput{tokens, positions, KvCacheUse::kWindow, rows, begin, end};
  };
  // Alone: fill, then commit two tokens and recompute a window against the stale cache.
  std::vector<float> alone = Forward({plain_input});
  for (const auto& part : {Forward({fill(first, first_all, first_rows)}),
                           Forward({fill(second, second_all, second_rows)})}) {
    alone.insert(alone.end(), part.begin(), part.end());
  }
  first[5] = 77;
  second[3] = 88;
  std::vector<float> alone_windows = Forward({plain_input});
  for (const auto& part : {Forward({window(first, first_window, first_rows, 4, 9)}),
                           Forward({window(second, second_window, second_rows, 2, 6)})}) {
    alone_windows.insert(alone_windows.end(), part.begin(), part.end());
  }

  // Together, in an order that interleaves cached and uncached sequences.
  first[5] = mask_;
  second[3] = mask_;
  const std::vector<float> together_fill = Forward(
      {plain_input, fill(first, first_all, first_rows), fill(second, second_all, second_rows)});
  EXPECT_EQ(together_fill, alone);
  first[5] = 77;
  second[3] = 88;
  const std::vector<float> together =
      Forward({window(first, first_window, first_rows, 4, 9), plain_input,
               window(second, second_window, second_rows, 2, 6)});
  // The batch's order is the logits' order: bring the plain sequence's rows first.
  const int64_t vocab = model().config().embedding_size;
  const size_t first_size = first_window.size() * vocab,
               plain_size = plain_positions.size() * vocab;
  std::vector<float> reordered(together.begin() + first_size,
                               together.begin() + first_size + plain_size);
  reordered.insert(reordered.end(), together.begin(), together.begin() + first_size);
  reordered.insert(reordered.end(), together.begin() + first_size + plain_size, together.end());
  EXPECT_EQ(reordered, alone_windows);

  // The cache is approximate: the windows differ from full forwards of the changed canvases.
  const std::vector<float> exact = Forward({SequenceInput{first, first_window}});
  EXPECT_NE(exact, std::vector<float>(alone_windows.begin() + plain_size,
                                      alone_windows.begin() + plain_size + first_size));
  // Negative control: a window reading another sequence's rows changes, so the comparisons
  // above would see one sequence's cache leak into another's.
  ASSERT_EQ(Forward({fill(first, first_all, first_rows)}).size(), first_all.size() * vocab);
  const std::vector<float> leaked = Forward({window(first, first_window, {30, 10}, 4, 9)});
  EXPECT_NE(leaked, std::vector<float>(alone_windows.begin() + plain_size,
                                       alone_windows.begin() + plain_size + first_size));
}

TEST_P(CachedForwardTest, RefusesRowsAndWindowsThatDoNotFit) {
  const std::vector<int32_t> canvas = {1, 2, 3, mask_, mask_, mask_};
  const std::vector<int32_t> positions = {3, 4};
  const auto refused = [&](const SequenceInput& input, const char* why) {
    auto logits = model().Forward({&input, 1});
    EXPECT_EQ(logits.status().code(), absl::StatusCode::kInvalidArgument) << why;
  };
  refused({canvas, positions, KvCacheUse::kFill, {0, 5}}, "fewer rows than tokens");
  refused({canvas, positions, KvCacheUse::kFill, {60, 6}}, "rows past the arena");
  refused({canvas, positions, KvCacheUse::kWindow, {0, 6}, 3, 3}, "an empty window");
  refused({canvas, positions, KvCacheUse::kWindow, {0, 6}, 4, 7}, "a window past the canvas");
  refused({canvas, positions, KvCacheUse::kWindow, {0, 6}, 4, 6}, "a logit outside the window");
}

INSTANTIATE_TEST_SUITE_P(Models, CachedForwardTest,
                         ::testing::Values("tiny-llada", "tiny-llada-gqa", "tiny-dream"));

struct CachedRequest {
  std::vector<int32_t> prompt;
  GenerationParams params;
};

std::vector<CachedRequest> MixedCacheRequests() {
  std::vector<CachedRequest> requests(4);
  requests[0].prompt = {11, 22, 33, 44, 55, 66, 77};
  requests[0].params = {.gen_length = 16,
                        .steps = 16,
                        .block_length = 8,
                        .remasking = Remasking::kThreshold,
                        .confidence_threshold = 0.5,
                        .cache = KvCacheMode::kDual};
  requests[1].prompt = {5, 6, 7};
  requests[1].params = {.gen_length = 24, .steps = 12, .block_length = 8};  // no cache
  requests[2].prompt = {100, 200, 300, 400, 500, 600, 700, 800, 900};
  requests[2].params = {.gen_length = 16,
                        .steps = 8,
                        .block_length = 8,
                        .cfg_scale = 1.5,
                        .cache = KvCacheMode::kPrefix};
  requests[3].prompt = {9, 8, 7, 6};
  requests[3].params = {.gen_length = 12,
                        .steps = 6,
                        .block_length = 4,
                        .temperature = 0.7,
                        .seed = 7,
                        .cache = KvCacheMode::kDual};
  return requests;
}

TEST(CachedBatchInvarianceTest, GenerationsAtDifferentPhasesSteppedTogetherEqualThemAlone) {
  auto loaded = testing::LoadTestModel("tiny-llada");
  ASSERT_NE(loaded.model, nullptr);
  const std::vector<CachedRequest> requests = MixedCacheRequests();
  std::vector<std::vector<int32_t>> alone;
  for (const CachedRequest& request : requests) {
    auto result = Generate(*loaded.model, request.prompt, request.params);
    ASSERT_TRUE(result.ok()) << result.status();
    alone.push_back(result->token_ids);
  }

  std::vector<Generation> generations;
  for (const CachedRequest& request : requests) {
    auto generation = Generation::Create(request.prompt, request.params, loaded.model->config());
    ASSERT_TRUE(generation.ok()) << generation.status();
    generations.push_back(std::move(*generation));
  }
  ASSERT_TRUE(loaded.model->ReserveKvCache(200).ok());
  KvRowAllocator allocator(loaded.model->kv_cache_rows());
  std::vector<Generation*> batch;
  for (Generation& generation : generations) {
    if (generation.kv_cache_rows_needed() > 0) {
      const auto rows = allocator.Allocate(generation.kv_cache_rows_needed());
      ASSERT_TRUE(rows);
      generation.AttachKvCache(KvCacheLease(&allocator, *rows));
    }
    batch.push_back(&generation);
  }
  EXPECT_EQ(allocator.used(), (7 + 16) + 2 * (9 + 16) + (4 + 12));
  Denoiser denoiser(*loaded.model);
  std::vector<bool> mixed_phases;  // a step with a refresh, a window and no cache at once
  while (true) {
    bool fill = false, window = false, none = false, any = false;
    for (const Generation& generation : generations) {
      if (generation.finished()) continue;
      any = true;
      const KvCacheUse use = generation.next_cache_use();
      fill |= use == KvCacheUse::kFill;
      window |= use == KvCacheUse::kWindow;
      none |= use == KvCacheUse::kNone;
    }
    if (!any) break;
    mixed_phases.push_back(fill && window && none);
    auto forwarded = denoiser.Step(batch);
    ASSERT_TRUE(forwarded.ok()) << forwarded.status();
  }
  EXPECT_NE(std::count(mixed_phases.begin(), mixed_phases.end(), true), 0);
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto generated = generations[i].answer();
    EXPECT_EQ(std::vector<int32_t>(generated.begin(), generated.end()), alone[i])
        << "request " << i;
  }
  // Finished generations gave their rows back at once.
  EXPECT_EQ(allocator.used(), 0);
}

TEST(CachedBatchInvarianceTest, AGenerationWithACacheNeedsRowsToStep) {
  auto loaded = testing::LoadTestModel("tiny-llada");
  ASSERT_NE(loaded.model, nullptr);
  auto generation = Generation::Create(
      std::vector<int32_t>{1, 2, 3},
      {.gen_length = 8, .steps = 8, .block_length = 8, .cache = KvCacheMode::kDual},
      loaded.model->config());
  ASSERT_TRUE(generation.ok());
  EXPECT_EQ(generation->kv_cache_rows_needed(), 11);
  Generation* batch[] = {&*generation};
  Denoiser denoiser(*loaded.model);
  EXPECT_EQ(denoiser.Step(batch).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace sculpt
