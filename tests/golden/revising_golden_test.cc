// The policies that revise committed tokens (edit_threshold after LLaDA 2.1 and SGLang's
// JointThreshold, remdm_remask after ReMDM's loop) on a LLaDA and a Dream model against the
// independent PyTorch reference (tools/llada_reference.py, fixtures from tools/gen_golden.py):
// every step commits, replaces and remasks exactly what the reference's did, and the answers,
// step counts and forward passes are identical; alone and batched with other generations.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/denoiser.h"
#include "tests/support/fixture_params.h"
#include "tests/support/small_config.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

using Pairs = std::vector<std::pair<int32_t, int32_t>>;

Pairs SortedPairs(std::vector<std::pair<int32_t, int32_t>> pairs) {
  std::sort(pairs.begin(), pairs.end());
  return pairs;
}

Pairs PairsOf(const nlohmann::json& list) {
  Pairs pairs;
  for (const nlohmann::json& pair : list) pairs.emplace_back(pair[0], pair[1]);
  return pairs;
}

absl::StatusOr<Generation> Prepare(const nlohmann::json& c, const ModelConfig& config) {
  const std::vector<int32_t> prompt = c["prompt_ids"];
  auto generation = Generation::Create(prompt, testing::ParamsFromFixture(c), config);
  if (generation.ok()) {
    const std::vector<int32_t> pinned = c.value("pinned", std::vector<int32_t>());
    generation->ProtectPositions(pinned);
  }
  return generation;
}

TEST(RevisingGoldenTest, EveryStepMatchesTheReference) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/golden/data/revising.json");
  ASSERT_GE(fixture["cases"].size(), 30u);
  testing::TestModels models;
  std::map<std::string, int> families;
  int edits = 0, remasks = 0, edit_only_steps = 0;
  for (const nlohmann::json& c : fixture["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    Transformer* model = models.Get(c["model"]);
    ASSERT_NE(model, nullptr);
    ++families[c["family"]];
    auto generation = Prepare(c, model->config());
    ASSERT_TRUE(generation.ok()) << generation.status();
    const nlohmann::json& trace = c["trace"];
    size_t step = 0;
    auto result = RunToCompletion(*model, *generation, [&](const StepEvent& event, auto) {
      ASSERT_LT(step, trace.size());
      const nlohmann::json& expected = trace[step++];
      SCOPED_TRACE(::testing::Message() << "step " << event.step);
      EXPECT_EQ(event.step, expected["step"].get<uint32_t>());
      EXPECT_EQ(event.block, expected["block"].get<int>());
      EXPECT_EQ(event.edit_only, expected["extra"].get<bool>());
      EXPECT_EQ(event.remask_window, expected["window"].get<bool>());
      EXPECT_EQ(SortedPairs(event.committed), PairsOf(expected["committed"]));
      EXPECT_EQ(SortedPairs(event.replaced), PairsOf(expected["replaced"]));
      EXPECT_EQ(event.remasked, expected["remasked"].get<std::vector<int32_t>>());
      edits += static_cast<int>(event.replaced.size());
      remasks += static_cast<int>(event.remasked.size());
      edit_only_steps += event.edit_only;
    });
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(step, trace.size());
    EXPECT_EQ(result->token_ids, c["token_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(result->canvas, c["canvas"].get<std::vector<int32_t>>());
    EXPECT_EQ(result->steps, c["executed_steps"].get<int>());
    EXPECT_EQ(result->forward_passes, c["forward_passes"].get<int>());
  }
  EXPECT_GE(families["llada"], 14);
  EXPECT_GE(families["dream"], 14);
  // The fixtures revise: a policy that did nothing could not pass them.
  EXPECT_GE(edits, 100);
  EXPECT_GE(remasks, 200);
  EXPECT_GE(edit_only_steps, 40);
}

// Batch invariance: each generation of a batch takes exactly the steps it takes alone.
TEST(RevisingGoldenTest, BatchedEqualsAlone) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/golden/data/revising.json");
  testing::TestModels models;
  for (const std::string family : {"llada", "dream"}) {
    SCOPED_TRACE(family);
    std::vector<Generation> batch;
    std::vector<const nlohmann::json*> cases;
    Transformer* model = nullptr;
    for (const nlohmann::json& c : fixture["cases"]) {
      // One model per batch; the cached cases need KV rows of their own, so they run alone.
      if (c["family"] != family || c["cache"] != "none") continue;
      model = models.Get(c["model"]);
      auto generation = Prepare(c, model->config());
      ASSERT_TRUE(generation.ok()) << generation.status();
      batch.push_back(std::move(*generation));
      cases.push_back(&c);
    }
    ASSERT_GE(batch.size(), 8u);
    std::vector<Generation*> pointers;
    for (Generation& generation : batch) pointers.push_back(&generation);
    ASSERT_TRUE(model->Reserve(WorkspaceFor(pointers)).ok());
    Denoiser denoiser(*model);
    while (std::any_of(batch.begin(), batch.end(), [](const auto& g) { return !g.finished(); })) {
      auto stepped = denoiser.Step(pointers);
      ASSERT_TRUE(stepped.ok()) << stepped.status();
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      SCOPED_TRACE((*cases[i])["name"].get<std::string>());
      EXPECT_EQ(batch[i].Result().token_ids, (*cases[i])["token_ids"].get<std::vector<int32_t>>());
      EXPECT_EQ(batch[i].steps_run(), (*cases[i])["executed_steps"].get<int>());
    }
  }
}

TEST(RevisingGoldenTest, RefusesWhatTheReferenceRefuses) {
  const ModelConfig config = testing::SmallConfig();
  const std::vector<int32_t> prompt = {1, 2, 3};
  const auto refused = [&](auto change) {
    GenerationParams params;
    params.gen_length = params.steps = params.block_length = 8;
    change(params);
    return Generation::Create(prompt, params, config).status();
  };
  EXPECT_TRUE(absl::IsInvalidArgument(refused([](auto& p) { p.edit_threshold = 1.0; })));
  EXPECT_TRUE(absl::IsInvalidArgument(refused([](auto& p) { p.max_edit_steps = -1; })));
  EXPECT_TRUE(absl::IsInvalidArgument(refused([](auto& p) { p.remdm_remask = -1; })));
  EXPECT_TRUE(absl::IsInvalidArgument(refused([](auto& p) {
    p.remdm_remask = 1;
    p.remdm_start = 0.9;
    p.remdm_end = 0.5;
  })));
  EXPECT_TRUE(absl::IsInvalidArgument(refused([](auto& p) {
    p.remdm_remask = 1;
    p.remasking = Remasking::kOrigin;
  })));
  const absl::Status both = refused([](auto& p) {
    p.remdm_remask = 1;
    p.edit_threshold = 0.5;
  });
  EXPECT_TRUE(absl::IsInvalidArgument(both));
  EXPECT_NE(both.message().find("cannot be combined"), std::string_view::npos);
  EXPECT_TRUE(refused([](auto& p) { p.edit_threshold = 0.0; }).ok());
}

}  // namespace
}  // namespace sculpt
