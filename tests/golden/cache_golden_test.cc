// Fast-dLLM's prefix and dual KV caches on a LLaDA and a Dream model against the independent
// PyTorch reference (tools/llada_reference.py, fixtures from tools/gen_golden.py): identical
// answers, step counts (a block's refresh counts as a step) and forward passes, for the policies
// users combine with the cache, guidance, sampling and several blocks.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "model/denoiser.h"
#include "tests/support/fixture_params.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

TEST(CacheGoldenTest, BothCachesMatchTheReferenceTokenForToken) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/golden/data/cache.json");
  ASSERT_GE(fixture["cases"].size(), 30u);
  testing::TestModels models;
  std::map<std::string, int> modes, families;
  // The cache is approximate: on some cases it must commit other tokens than no cache does,
  // or these cases would not tell a cached step from a full one.
  int differ_from_no_cache = 0;
  for (const nlohmann::json& c : fixture["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    Transformer* model = models.Get(c["model"]);
    ASSERT_NE(model, nullptr);
    ++modes[c["cache"]];
    ++families[c["family"]];
    const std::vector<int32_t> prompt = c["prompt_ids"];
    const GenerationParams params = testing::ParamsFromFixture(c);
    ASSERT_NE(params.cache, KvCacheMode::kNone);
    auto result = Generate(*model, prompt, params);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->token_ids, c["token_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(result->steps, c["executed_steps"].get<int>());
    EXPECT_EQ(result->forward_passes, c["forward_passes"].get<int>());
    EXPECT_EQ(result->finish_reason == FinishReason::kStop, c["finished_early"].get<bool>());

    GenerationParams uncached = params;
    uncached.cache = KvCacheMode::kNone;
    auto full = Generate(*model, prompt, uncached);
    ASSERT_TRUE(full.ok()) << full.status();
    if (full->token_ids != result->token_ids) ++differ_from_no_cache;
  }
  EXPECT_GE(modes["prefix"], 12);
  EXPECT_GE(modes["dual"], 12);
  EXPECT_GE(families["llada"], 10);
  EXPECT_GE(families["dream"], 4);
  EXPECT_GE(differ_from_no_cache, 3);
}

}  // namespace
}  // namespace sculpt
