// Remasking schedules and selections without a model: Dream's float32 timesteps against values
// torch.linspace produced, the Fast-dLLM rules, Gumbel-top-k's distribution, and the state
// machine's early stop, stop strings, suppression and infill.
#include "model/remasking/policies.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "model/generation.h"
#include "model/remasking/selection.h"
#include "model/text_io.h"
#include "tests/support/small_config.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

TEST(DreamScheduleTest, TimestepsAreTorchLinspaceBitForBit) {
  // torch.linspace(1, 1e-3, steps + 1) in float32, printed with float.hex().
  const std::vector<float> three = DreamTimesteps(3, kDreamEps);
  EXPECT_EQ(three, (std::vector<float>{1.0f, 0x1.558106p-1f, 0x1.560418p-2f, 0x1.0624dep-10f}));
  const std::vector<float> thirteen = DreamTimesteps(13, kDreamEps);
  EXPECT_EQ(thirteen[1], 0x1.d8a7a0p-1f);
  EXPECT_EQ(thirteen[5], 0x1.3b461cp-1f);
  EXPECT_EQ(thirteen[13], 0x1.0624dep-10f);
  // int(n * (1 - s/t)) as torch computes it in float32.
  EXPECT_EQ(DreamTransferCount(10, 0, 3, kDreamEps), 3);
  EXPECT_EQ(DreamTransferCount(10, 1, 3, kDreamEps), 4);
  EXPECT_EQ(DreamTransferCount(37, 0, 3, kDreamEps), 12);
  EXPECT_EQ(DreamTransferCount(128, 1, 3, kDreamEps), 63);
  EXPECT_EQ(DreamTransferCount(128, 0, 8, kDreamEps), 15);
  EXPECT_EQ(DreamTransferCount(10, 2, 13, kDreamEps), 0);
  EXPECT_EQ(DreamTransferCount(10, 2, 3, kDreamEps), 10);  // the last step takes all
}

TEST(SelectionTest, ThresholdAlwaysProgressesAndFactorFollowsTheReference) {
  const std::vector<int32_t> positions = {4, 5, 6, 7};
  SelectionContext context;
  context.confidence_threshold = 0.9;
  const std::vector<double> low = {0.2, 0.5, 0.3, 0.1};
  EXPECT_EQ(ThresholdRemasking().Select(context, positions, low), (std::vector<size_t>{1}));
  const std::vector<double> high = {0.95, 0.5, 0.91, 0.9};
  EXPECT_EQ(ThresholdRemasking().Select(context, positions, high), (std::vector<size_t>{0, 2, 3}));

  context.factor = 1.0;
  // Thresholds 1 - 1/(j+2): -, 0.667, 0.75, 0.8. Sorted: 0.99, 0.9, 0.7 (< 0.75 stops at j=2).
  const std::vector<double> mixed = {0.7, 0.99, 0.9, 0.1};
  EXPECT_EQ(FactorRemasking().Select(context, positions, mixed), (std::vector<size_t>{1, 2}));
  // Only the last fails: the reference's edge rule commits all of them.
  const std::vector<double> last_fails = {0.99, 0.98, 0.97, 0.1};
  EXPECT_EQ(FactorRemasking().Select(context, positions, last_fails).size(), 4u);
}

TEST(SelectionTest, GumbelTopKDrawsFromTheSoftmax) {
  const std::vector<int32_t> positions = {10, 11, 12};
  const std::vector<double> scores = {1.0, 0.0, -1.0};
  const double temperature = 0.5;
  std::map<size_t, int> first_picks;
  const int draws = 20000;
  for (int seed = 0; seed < draws; ++seed) {
    SelectionContext context;
    context.seed = static_cast<uint64_t>(seed);
    ++first_picks[GumbelTopK(context, positions, scores, 1, temperature)[0]];
  }
  double total = 0.0;
  for (double s : scores) total += std::exp(s / temperature);
  for (size_t i = 0; i < scores.size(); ++i) {
    const double expected = std::exp(scores[i] / temperature) / total;
    EXPECT_NEAR(first_picks[i] / double(draws), expected, 0.015) << i;
  }
}

TEST(GenerationStopsTest, EarlyStopTrimsOnceEverythingBeforeEosIsCommitted) {
  GenerationParams params{.gen_length = 6, .steps = 6, .block_length = 6};
  params.early_stop = true;
  auto generation = Generation::Create(std::vector<int32_t>{1}, params, testing::SmallConfig());
  ASSERT_TRUE(generation.ok());
  // Step 1 commits EOS at position 3 (candidates 1..6): positions 1, 2 still masked.
  std::vector<double> confidences = {0.1, 0.2, 0.9, 0.1, 0.1, 0.1};
  generation->Commit(std::vector<int32_t>{2, 3, 8, 4, 4, 4}, confidences);
  EXPECT_FALSE(generation->finished());
  generation->Commit(std::vector<int32_t>{2, 3, 4, 4, 4}, std::vector<double>{0.9, 0.1, 0, 0, 0});
  EXPECT_FALSE(generation->finished());
  const StepEvent& event =
      generation->Commit(std::vector<int32_t>{3, 4, 4, 4}, std::vector<double>{0.9, 0, 0, 0});
  EXPECT_TRUE(event.finished);
  EXPECT_TRUE(generation->finished());
  EXPECT_EQ(generation->finish_reason(), FinishReason::kStop);
  EXPECT_EQ(std::vector<int32_t>(generation->answer().begin(), generation->answer().end()),
            (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(generation->steps_run(), 3);  // of 6
}

TEST(GenerationStopsTest, EosConfidenceRanksLastAndSuppressionIsExposed) {
  GenerationParams params{.gen_length = 3, .steps = 3, .block_length = 3};
  params.confidence_eos_eot_inf = true;
  params.logits_eos_inf = true;
  params.stop_token_ids = {8, 7};
  auto generation = Generation::Create(std::vector<int32_t>{1}, params, testing::SmallConfig());
  ASSERT_TRUE(generation.ok());
  EXPECT_EQ(std::vector<int32_t>(generation->suppressed_tokens().begin(),
                                 generation->suppressed_tokens().end()),
            (std::vector<int32_t>{8, 7}));
  const StepEvent& event =
      generation->Commit(std::vector<int32_t>{8, 5, 7}, std::vector<double>{0.99, 0.2, 0.98});
  ASSERT_EQ(event.committed.size(), 1u);
  EXPECT_EQ(event.committed[0], std::make_pair(2, 5));
}

TEST(InfillTest, TemplatesAndCanvases) {
  auto segments = ParseInfillTemplate("def f(x):<|mask:3|>\n    return<|mask:1|>");
  ASSERT_TRUE(segments.ok()) << segments.status();
  ASSERT_EQ(segments->size(), 4u);
  EXPECT_EQ((*segments)[1].masks, 3);
  EXPECT_EQ((*segments)[3].masks, 1);
  EXPECT_EQ((*segments)[2].text, "\n    return");
  for (const char* bad : {"x<|mask:0|>", "x<|mask:abc|>", "<|mask:-2|>"}) {
    EXPECT_EQ(ParseInfillTemplate(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }

  auto tokenizer = Tokenizer::Load(testing::SourcePath("tests/models/tiny-llada-text"));
  ASSERT_TRUE(tokenizer.ok());
  auto config = LoadModelConfig(testing::SourcePath("tests/models/tiny-llada-text"));
  ASSERT_TRUE(config.ok());
  // The tokenizer's own mask token inside the text stands for one mask.
  auto with_token = ParseInfillTemplate("a<|mdm_mask|>b<|mask:2|>");
  auto canvas = BuildInfillCanvas(**tokenizer, *config, *with_token);
  ASSERT_TRUE(canvas.ok());
  EXPECT_EQ(std::count(canvas->begin(), canvas->end(), config->mask_token_id), 3);
  EXPECT_EQ(canvas->front(), (*tokenizer)->special_ids().bos);

  GenerationParams params;
  params.block_length = 0;
  params.steps = 0;
  auto generation = Generation::CreateInfill(*canvas, params, *config);
  ASSERT_TRUE(generation.ok()) << generation.status();
  EXPECT_EQ(generation->params().steps, 3);
  const std::vector<int32_t> no_masks = {3000, 5, 6};
  EXPECT_NE(
      Generation::CreateInfill(no_masks, params, *config).status().message().find("no masked span"),
      std::string::npos);
  params.early_stop = true;
  EXPECT_FALSE(Generation::CreateInfill(*canvas, params, *config).ok());
}

TEST(StopStringTest, CutsTextExactlyAndKeepsTokensBeforeTheStop) {
  auto tokenizer = Tokenizer::Load(testing::SourcePath("tests/models/tiny-llada-text"));
  ASSERT_TRUE(tokenizer.ok());
  auto ids = (*tokenizer)->Encode("return x\n\ndef other():", false);
  ASSERT_TRUE(ids.ok());
  auto matcher = MakeStopStringMatcher(**tokenizer, {"\ndef", "never"});
  ASSERT_TRUE(matcher.ok());
  auto match = (*matcher)(*ids);
  ASSERT_TRUE(match.has_value());
  EXPECT_EQ(match->text, "return x\n");
  auto kept = (*tokenizer)->Decode(std::span<const int32_t>(*ids).first(match->tokens_kept));
  EXPECT_EQ(kept->find("def"), std::string::npos);
  EXPECT_FALSE((*matcher)(std::span<const int32_t>(*ids).first(2)).has_value());
  EXPECT_FALSE(MakeStopStringMatcher(**tokenizer, {""}).ok());
}

}  // namespace
}  // namespace sculpt
