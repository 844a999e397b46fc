// Properties of decoding on real (tiny) models that no single fixture shows: threshold decoding
// stays inside its block and always progresses; infilling never touches given text and fills
// exactly the masked spans; events account for every commit.
#include <gtest/gtest.h>

#include "model/denoiser.h"
#include "model/text_io.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

TEST(DenoisePropertiesTest, ThresholdCommitsOnlyInItsBlockAndAlwaysProgresses) {
  for (const char* name : {"tiny-llada", "tiny-dream"}) {
    auto loaded = testing::LoadTestModel(name);
    ASSERT_NE(loaded.model, nullptr);
    const std::vector<int32_t> prompt = {11, 12, 13, 14, 15};
    for (double threshold : {0.0, 0.3, 0.99}) {
      GenerationParams params{.gen_length = 24, .steps = 3, .block_length = 8};
      params.remasking = Remasking::kThreshold;
      params.confidence_threshold = threshold;
      auto generation = Generation::Create(prompt, params, loaded.model->config());
      ASSERT_TRUE(generation.ok());
      int committed = 0;
      const StepObserver observer = [&](const StepEvent& event, std::span<const int32_t>) {
        EXPECT_GE(event.committed.size(), 1u) << name << " step " << event.step;
        for (const auto& [position, token] : event.committed) {
          EXPECT_GE(position, 5 + 8 * event.block);
          EXPECT_LT(position, 5 + 8 * (event.block + 1));
        }
        committed += static_cast<int>(event.committed.size());
      };
      auto result = RunToCompletion(*loaded.model, *generation, observer);
      ASSERT_TRUE(result.ok());
      EXPECT_EQ(committed, 24) << name;
      // threshold 0 commits a whole block per step: 3 steps for 3 blocks.
      if (threshold == 0.0) {
        EXPECT_EQ(result->steps, 3) << name;
      }
    }
  }
}

TEST(DenoisePropertiesTest, InfillKeepsGivenTextAndFillsExactlyTheMasks) {
  auto loaded = testing::LoadTestModel("tiny-llada-text");
  ASSERT_NE(loaded.model, nullptr);
  auto tokenizer = Tokenizer::Load(testing::TestModelDir("tiny-llada-text"));
  ASSERT_TRUE(tokenizer.ok());
  const ModelConfig& config = loaded.model->config();
  auto segments = ParseInfillTemplate("def mean(xs):\n<|mask:5|>\n    return total / <|mask:2|>\n");
  ASSERT_TRUE(segments.ok());
  auto canvas = BuildInfillCanvas(**tokenizer, config, *segments);
  ASSERT_TRUE(canvas.ok());
  for (Remasking policy :
       {Remasking::kLowConfidence, Remasking::kMaskgitPlus, Remasking::kThreshold}) {
    GenerationParams params;
    params.remasking = policy;
    params.block_length = 0;
    params.steps = 0;
    auto generation = Generation::CreateInfill(*canvas, params, config);
    ASSERT_TRUE(generation.ok()) << generation.status();
    int events_committed = 0;
    auto result = RunToCompletion(*loaded.model, *generation,
                                  [&](const StepEvent& event, std::span<const int32_t>) {
                                    events_committed += static_cast<int>(event.committed.size());
                                  });
    ASSERT_TRUE(result.ok());
    ASSERT_EQ(result->canvas.size(), canvas->size());
    for (size_t i = 0; i < canvas->size(); ++i) {
      if ((*canvas)[i] != config.mask_token_id) {
        EXPECT_EQ(result->canvas[i], (*canvas)[i]) << "given token " << i << " changed";
      }
    }
    EXPECT_EQ(events_committed, 7);
    auto spans = FilledSpans(tokenizer->get(), config.mask_token_id, *canvas, result->canvas);
    ASSERT_TRUE(spans.ok());
    ASSERT_EQ(spans->size(), 2u);
    EXPECT_EQ((*spans)[0].tokens.size(), 5u);
    EXPECT_EQ((*spans)[1].tokens.size(), 2u);
  }
}

}  // namespace
}  // namespace sculpt
