// Whole generations against the PyTorch reference of LLaDA's generate(): identical token ids.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "model/denoiser.h"
#include "tests/support/fixture_params.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

TEST(GenerateGoldenTest, TokenIdsMatchTheReference) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/golden/data/generate.json");
  ASSERT_GE(fixture["cases"].size(), 8u);
  std::map<std::string, testing::LoadedModel> models;
  for (const nlohmann::json& test_case : fixture["cases"]) {
    const std::string name = test_case["name"];
    SCOPED_TRACE(name);
    const std::string model_name = test_case["model"];
    if (!models.count(model_name)) models[model_name] = testing::LoadTestModel(model_name);
    Transformer* model = models[model_name].model.get();
    ASSERT_NE(model, nullptr);

    const GenerationParams params = testing::ParamsFromFixture(test_case);
    const std::vector<int32_t> prompt = test_case["prompt_ids"];
    auto result = Generate(*model, prompt, params);
    ASSERT_TRUE(result.ok()) << result.status();
    const std::vector<int32_t> expected = test_case["token_ids"];
    EXPECT_EQ(result->token_ids, expected);
    EXPECT_EQ(result->steps, params.steps);
    EXPECT_EQ(result->forward_passes, params.steps * (params.cfg_scale > 0 ? 2 : 1));
  }
}

}  // namespace
}  // namespace sculpt
