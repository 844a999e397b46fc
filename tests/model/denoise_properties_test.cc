// Properties of decoding on real (tiny) models that no single fixture shows: threshold decoding
// stays inside its block and always progresses; infilling never touches given text and fills
// exactly the masked spans; events account for every commit; log-probabilities come from the
// distribution of the step that committed each token.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

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

// Replays every step's canvas through a separate forward and takes the log-softmax in long
// double: the recorded figures must be that step's distribution at that position (Dream's shifted
// row included), untouched by temperature and stop-token suppression, and the result must hold
// the same records as the events.
TEST(DenoisePropertiesTest, LogprobsAreTheCommitStepsDistribution) {
  for (const char* name : {"tiny-llada", "tiny-dream"}) {
    auto loaded = testing::LoadTestModel(name);
    ASSERT_NE(loaded.model, nullptr);
    const ModelConfig& config = loaded.model->config();
    const std::vector<int32_t> prompt = {11, 12, 13, 14, 15};
    GenerationParams params{.gen_length = 16, .steps = 8, .block_length = 8};
    params.remasking =
        config.shifted_predictions() ? Remasking::kEntropy : Remasking::kLowConfidence;
    params.temperature = 0.7;
    params.seed = 5;
    params.logits_eos_inf = true;
    params.logprobs = 4;
    auto generation = Generation::Create(prompt, params, config);
    ASSERT_TRUE(generation.ok()) << generation.status();
    struct Replay {
      std::vector<int32_t> canvas_before;
      StepEvent event;
    };
    std::vector<Replay> replays;
    std::vector<int32_t> before(generation->canvas().begin(), generation->canvas().end());
    auto result = RunToCompletion(*loaded.model, *generation,
                                  [&](const StepEvent& event, std::span<const int32_t> canvas) {
                                    replays.push_back({before, event});
                                    before.assign(canvas.begin(), canvas.end());
                                  });
    ASSERT_TRUE(result.ok()) << result.status();

    int checked = 0;
    for (const Replay& replay : replays) {
      ASSERT_EQ(replay.event.committed_logprobs.size(), replay.event.committed.size());
      for (size_t i = 0; i < replay.event.committed.size(); ++i) {
        const auto [position, token] = replay.event.committed[i];
        const TokenLogprob& record = replay.event.committed_logprobs[i];
        const int32_t row = config.shifted_predictions() ? std::max(position - 1, 0) : position;
        const SequenceInput input{replay.canvas_before, std::span(&row, 1)};
        auto logits = loaded.model->Forward({&input, 1});
        ASSERT_TRUE(logits.ok()) << logits.status();
        const float* values = logits->f32();
        const int vocab = config.vocab_size;
        const long double max = *std::max_element(values, values + vocab);
        long double sum = 0;
        for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<long double>(values[v]) - max);
        const auto logprob = [&](int32_t id) {
          return static_cast<double>(static_cast<long double>(values[id]) - max - std::log(sum));
        };
        EXPECT_EQ(record.token, token);
        EXPECT_EQ(record.step, replay.event.step);
        EXPECT_NEAR(record.logprob, logprob(token), 1e-9) << name << " position " << position;
        std::vector<int32_t> order(vocab);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](int32_t a, int32_t b) { return values[a] > values[b]; });
        ASSERT_EQ(record.top.size(), 4u);
        for (size_t k = 0; k < record.top.size(); ++k) {
          EXPECT_EQ(record.top[k].first, order[k]) << name << " position " << position;
          EXPECT_NEAR(record.top[k].second, logprob(order[k]), 1e-9);
        }
        ++checked;
      }
    }
    EXPECT_EQ(checked, 16) << name;
    // The result holds the events' records, position for position.
    ASSERT_EQ(result->logprobs.size(), result->token_ids.size());
    const int region = static_cast<int>(prompt.size());
    for (const Replay& replay : replays) {
      for (size_t i = 0; i < replay.event.committed.size(); ++i) {
        const int index = replay.event.committed[i].first - region;
        if (index >= static_cast<int>(result->logprobs.size())) continue;
        ASSERT_TRUE(result->logprobs[index].has_value());
        EXPECT_EQ(result->logprobs[index]->logprob, replay.event.committed_logprobs[i].logprob);
        EXPECT_EQ(result->logprobs[index]->step, replay.event.committed_logprobs[i].step);
      }
    }
  }
}

}  // namespace
}  // namespace sculpt
