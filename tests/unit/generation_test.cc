// The denoising state machine without a model: schedules, candidates, commits, validation.
#include "model/generation.h"

#include <gtest/gtest.h>

#include "common/rng.h"
#include "model/remasking/selection.h"
#include "tests/support/small_config.h"

namespace sculpt {
namespace {

constexpr int32_t kMask = 9;

std::vector<int32_t> ToVector(std::span<const int32_t> values) {
  return std::vector<int32_t>(values.begin(), values.end());
}

TEST(NumTransferTokensTest, SpreadsEvenlyWithTheRemainderFirst) {
  EXPECT_EQ(NumTransferTokens(10, 4), (std::vector<int>{3, 3, 2, 2}));
  EXPECT_EQ(NumTransferTokens(8, 8), (std::vector<int>(8, 1)));
  EXPECT_EQ(NumTransferTokens(3, 8), (std::vector<int>{1, 1, 1, 0, 0, 0, 0, 0}));
  EXPECT_EQ(NumTransferTokens(32, 1), (std::vector<int>{32}));
}

TEST(ValidateGenerationParamsTest, EachBadParameterIsNamed) {
  const ModelConfig config = testing::SmallConfig();
  const std::vector<int32_t> prompt = {1, 2};
  struct Case {
    GenerationParams params;
    std::vector<int32_t> prompt;
    const char* named;
  };
  const std::vector<Case> cases = {
      {{.gen_length = 0, .steps = 1, .block_length = 1}, prompt, "gen_length"},
      {{.gen_length = 4, .steps = 0, .block_length = 4}, prompt, "steps"},
      {{.gen_length = 4, .steps = 4, .block_length = 0}, prompt, "block_length"},
      {{.gen_length = 6, .steps = 6, .block_length = 4}, prompt, "block_length"},
      {{.gen_length = 6, .steps = 4, .block_length = 2}, prompt, "steps"},
      {{.gen_length = 4, .steps = 4, .block_length = 4, .temperature = -1}, prompt, "temperature"},
      {{.gen_length = 4, .steps = 4, .block_length = 4, .temperature = NAN}, prompt, "temperature"},
      {{.gen_length = 4, .steps = 4, .block_length = 4, .cfg_scale = -0.5}, prompt, "cfg_scale"},
      {{.gen_length = 31, .steps = 31, .block_length = 31}, prompt, "max_sequence_length"},
      {{.gen_length = 4, .steps = 4, .block_length = 4}, {1, 10}, "prompt token 1"},
      {{.gen_length = 4, .steps = 4, .block_length = 4}, {-3}, "prompt token 0"},
  };
  for (const Case& c : cases) {
    const absl::Status status = ValidateGenerationParams(c.params, config, c.prompt);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.named;
    EXPECT_NE(status.message().find(c.named), std::string::npos) << status;
  }
  EXPECT_TRUE(
      ValidateGenerationParams({.gen_length = 14, .steps = 7, .block_length = 2}, config, prompt)
          .ok());
}

TEST(GenerationTest, CommitsTheMostConfidentWithinTheCurrentBlockOnly) {
  // prompt [1 2], two blocks of 2, two steps per block: one commit per step.
  auto generation =
      Generation::Create(std::vector<int32_t>{1, 2},
                         {.gen_length = 4, .steps = 4, .block_length = 2}, testing::SmallConfig());
  ASSERT_TRUE(generation.ok()) << generation.status();
  EXPECT_EQ(ToVector(generation->canvas()),
            (std::vector<int32_t>{1, 2, kMask, kMask, kMask, kMask}));
  EXPECT_EQ(generation->candidate_positions(), (std::vector<int32_t>{2, 3}));

  generation->Commit(std::vector<int32_t>{5, 6}, std::vector<double>{0.1, 0.9});
  EXPECT_EQ(ToVector(generation->canvas()), (std::vector<int32_t>{1, 2, kMask, 6, kMask, kMask}));
  EXPECT_EQ(generation->candidate_positions(), (std::vector<int32_t>{2}));

  generation->Commit(std::vector<int32_t>{7}, std::vector<double>{0.01});
  EXPECT_EQ(generation->candidate_positions(), (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(generation->global_step(), 2u);

  // Equal confidence: the earlier position commits first.
  generation->Commit(std::vector<int32_t>{3, 4}, std::vector<double>{0.5, 0.5});
  EXPECT_EQ(ToVector(generation->canvas()), (std::vector<int32_t>{1, 2, 7, 6, 3, kMask}));
  generation->Commit(std::vector<int32_t>{8}, std::vector<double>{0.2});
  EXPECT_TRUE(generation->finished());
  EXPECT_EQ(ToVector(generation->answer()), (std::vector<int32_t>{7, 6, 3, 8}));
  EXPECT_EQ(generation->steps_run(), 4);
}

TEST(GenerationTest, StepsBeyondTheMasksCommitNothing) {
  auto generation =
      Generation::Create(std::vector<int32_t>{1}, {.gen_length = 2, .steps = 4, .block_length = 2},
                         testing::SmallConfig());
  ASSERT_TRUE(generation.ok());
  generation->Commit(std::vector<int32_t>{4, 5}, std::vector<double>{0.3, 0.6});
  generation->Commit(std::vector<int32_t>{4}, std::vector<double>{0.3});
  EXPECT_EQ(ToVector(generation->answer()), (std::vector<int32_t>{4, 5}));
  EXPECT_FALSE(generation->finished());
  generation->Commit({}, {});
  generation->Commit({}, {});
  EXPECT_TRUE(generation->finished());
}

TEST(GenerationTest, RandomRemaskingRanksByTheCounterBasedDraws) {
  const uint64_t seed = 1234;
  auto generation = Generation::Create(std::vector<int32_t>{1, 2, 3},
                                       {.gen_length = 3,
                                        .steps = 3,
                                        .block_length = 3,
                                        .remasking = Remasking::kRandom,
                                        .seed = seed},
                                       testing::SmallConfig());
  ASSERT_TRUE(generation.ok());
  int best = 3;
  for (int32_t position = 3; position < 6; ++position) {
    if (UniformOpen01(seed, 0, position, 0, RngStream::kRandomRemasking) >
        UniformOpen01(seed, 0, best, 0, RngStream::kRandomRemasking)) {
      best = position;
    }
  }
  // The model's confidences are ignored: the most confident one is not the drawn one.
  std::vector<double> confidences = {0.0, 0.0, 0.0};
  confidences[(best - 3 + 1) % 3] = 1.0;
  generation->Commit(std::vector<int32_t>{4, 5, 6}, confidences);
  const std::vector<int32_t> canvas = ToVector(generation->canvas());
  for (int32_t position = 3; position < 6; ++position) {
    EXPECT_EQ(canvas[position] != kMask, position == best) << position;
  }
}

TEST(GenerationTest, MasksInThePromptAreCandidatesLikeTheReference) {
  auto generation =
      Generation::Create(std::vector<int32_t>{1, kMask, 3},
                         {.gen_length = 2, .steps = 2, .block_length = 2}, testing::SmallConfig());
  ASSERT_TRUE(generation.ok());
  EXPECT_EQ(generation->candidate_positions(), (std::vector<int32_t>{1, 3, 4}));
  // The unconditional canvas masks the real prompt tokens only.
  std::vector<int32_t> unconditional = {7};  // reused storage: overwritten
  generation->UnconditionalCanvas(unconditional);
  EXPECT_EQ(unconditional, (std::vector<int32_t>{kMask, kMask, kMask, kMask, kMask}));
}

}  // namespace
}  // namespace sculpt
