// Every remasking policy on a LLaDA and a Dream model against the independent PyTorch
// reference (tools/gen_golden.py): identical answers, step counts and forward passes, including
// sampling, filters, guidance, early stops and EOS suppression; plus alg_temp's position
// distribution against the reference's exact probabilities.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "model/denoiser.h"
#include "model/remasking/selection.h"
#include "tests/support/fixture_params.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

TEST(PoliciesGoldenTest, EveryPolicyMatchesTheReferenceOnBothFamilies) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/golden/data/policies.json");
  ASSERT_GE(fixture["cases"].size(), 50u);
  testing::TestModels models;
  std::map<std::string, int> families;
  for (const nlohmann::json& c : fixture["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    Transformer* model = models.Get(c["model"]);
    ASSERT_NE(model, nullptr);
    ++families[c["family"]];
    const std::vector<int32_t> prompt = c["prompt_ids"];
    auto result = Generate(*model, prompt, testing::ParamsFromFixture(c));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->token_ids, c["token_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(result->steps, c["executed_steps"].get<int>());
    EXPECT_EQ(result->forward_passes, c["forward_passes"].get<int>());
    EXPECT_EQ(result->finish_reason == FinishReason::kStop, c["finished_early"].get<bool>());
  }
  EXPECT_GE(families["llada"], 20);
  EXPECT_GE(families["dream"], 20);
}

TEST(PoliciesGoldenTest, SameRequestAndSeedTwiceGivesTheSameOutput) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/golden/data/policies.json");
  testing::TestModels models;
  int sampled = 0;
  for (const nlohmann::json& c : fixture["cases"]) {
    if (c["temperature"].get<double>() == 0.0 && c["alg_temp"].get<double>() == 0.0) continue;
    ++sampled;
    Transformer* model = models.Get(c["model"]);
    const std::vector<int32_t> prompt = c["prompt_ids"];
    auto first = Generate(*model, prompt, testing::ParamsFromFixture(c));
    auto second = Generate(*model, prompt, testing::ParamsFromFixture(c));
    ASSERT_TRUE(first.ok() && second.ok());
    EXPECT_EQ(first->token_ids, second->token_ids) << c["name"];
  }
  EXPECT_GE(sampled, 8);
}

TEST(PoliciesGoldenTest, AlgTempDrawsPositionsWithTheReferenceProbabilities) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/golden/data/policies.json");
  const nlohmann::json& pick = fixture["alg_temp_first_pick"];
  testing::TestModels models;
  Transformer* model = models.Get(pick["model"]);
  ASSERT_NE(model, nullptr);
  nlohmann::json params_json = pick["params"];
  const GenerationParams params = testing::ParamsFromFixture(params_json);
  const std::vector<int32_t> prompt = pick["prompt_ids"];

  // The engine's step-0 confidences equal the reference's.
  auto generation = Generation::Create(prompt, params, model->config());
  ASSERT_TRUE(generation.ok());
  const std::vector<int32_t> positions = pick["candidate_positions"];
  ASSERT_EQ(generation->candidate_positions(), positions);
  std::vector<int32_t> rows = positions;
  for (int32_t& row : rows) row = std::max(row - 1, 0);  // Dream's shift
  const SequenceInput sequence{generation->canvas(), rows};
  auto logits = model->Forward({&sequence, 1});
  ASSERT_TRUE(logits.ok());
  std::vector<int32_t> tokens(positions.size());
  std::vector<double> confidences(positions.size());
  const TokenChoiceGroup group{.style = TokenChoiceStyle::kDream,
                               .positions = positions,
                               .tokens = tokens,
                               .confidences = confidences};
  ASSERT_TRUE(model->backend().ChooseTokens({*logits, {&group, 1}}).ok());
  const std::vector<double> expected_confidences = pick["confidences"];
  for (size_t i = 0; i < positions.size(); ++i) {
    EXPECT_NEAR(confidences[i], expected_confidences[i], 1e-5 * std::fabs(expected_confidences[i]));
  }

  // The first pick over many seeds follows softmax(confidence / alg_temp).
  const std::vector<double> probabilities = pick["probabilities"];
  std::vector<int> counts(positions.size(), 0);
  const int draws = 40000;
  for (int seed = 0; seed < draws; ++seed) {
    SelectionContext context;
    context.seed = static_cast<uint64_t>(seed);
    ++counts[GumbelTopK(context, positions, confidences, 1, params.alg_temp)[0]];
  }
  for (size_t i = 0; i < positions.size(); ++i) {
    const double tolerance =
        4.0 * std::sqrt(probabilities[i] * (1 - probabilities[i]) / draws) + 1e-3;
    EXPECT_NEAR(counts[i] / double(draws), probabilities[i], tolerance)
        << "position " << positions[i];
  }
}

}  // namespace
}  // namespace sculpt
