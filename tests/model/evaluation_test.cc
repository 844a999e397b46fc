// The evaluation harness's bookkeeping on a real tiny model: how many tokens are hidden per
// ratio, how infill cases are built and scored, and that 1-token-per-step decoding takes one step
// per mask.
#include "model/evaluation.h"

#include <gtest/gtest.h>

#include "model/denoiser.h"
#include "model/generation_request.h"
#include "model/tokenizer.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

TEST(EvaluationTest, MaskedAccuracyHidesTheRequestedShare) {
  auto loaded = testing::LoadTestModel("tiny-llada");
  ASSERT_NE(loaded.model, nullptr);
  std::vector<std::vector<int32_t>> documents = {std::vector<int32_t>(100, 7),
                                                 std::vector<int32_t>(40, 9)};
  const double ratios[] = {0.15, 0.5};
  auto results = EvaluateMaskedAccuracy(*loaded.model, documents, ratios, /*baseline_token=*/7,
                                        /*window=*/64, /*seed=*/3, /*max_tokens=*/1000);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u);
  // Windows of 64, 36 and 40 tokens.
  EXPECT_EQ((*results)[0].masked, 9 + 5 + 6);
  EXPECT_EQ((*results)[1].masked, 32 + 18 + 20);
  // The baseline guesses 7: right exactly on the first document's hidden tokens.
  EXPECT_EQ((*results)[0].baseline_correct, 9 + 5);
  EXPECT_LE((*results)[1].correct, (*results)[1].masked);
}

TEST(EvaluationTest, MaskedAccuracySamplesWindowsFromEveryPartOfTheSplit) {
  auto loaded = testing::LoadTestModel("tiny-llada");
  ASSERT_NE(loaded.model, nullptr);
  // Four one-window documents of 7s, then four of 9s; a budget of four windows.
  std::vector<std::vector<int32_t>> documents(4, std::vector<int32_t>(64, 7));
  documents.resize(8, std::vector<int32_t>(64, 9));
  const double ratios[] = {0.15};
  auto results = EvaluateMaskedAccuracy(*loaded.model, documents, ratios, /*baseline_token=*/7,
                                        /*window=*/64, /*seed=*/3, /*max_tokens=*/4 * 64);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ((*results)[0].masked, 4 * 9);
  // Taking the first documents in order would give only 7s (baseline always right); the sample
  // holds windows of both kinds.
  EXPECT_GT((*results)[0].baseline_correct, 0);
  EXPECT_LT((*results)[0].baseline_correct, (*results)[0].masked);
}

TEST(EvaluationTest, InfillCasesHideTheTokensOfTheTextTokenizedWhole) {
  auto tokenizer = Tokenizer::Load(testing::SourcePath("models/sculpt-code-mini"));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::string text = "def f(x):\n    y = x + 1\n    return y\n";
  const size_t hidden_begin = text.find("    y");
  const size_t hidden_end = text.find("\n", hidden_begin);
  auto infill = MakeInfillCase(**tokenizer, text, hidden_begin, hidden_end, /*bos=*/2);
  ASSERT_TRUE(infill.ok()) << infill.status();
  auto whole = (*tokenizer)->Encode(text, false);
  ASSERT_TRUE(whole.ok());
  std::vector<int32_t> joined = infill->prefix;
  ASSERT_EQ(joined.front(), 2);
  joined.erase(joined.begin());
  joined.insert(joined.end(), infill->middle.begin(), infill->middle.end());
  joined.insert(joined.end(), infill->suffix.begin(), infill->suffix.end());
  EXPECT_EQ(joined, *whole);
  const auto text_of = [&](const std::vector<int32_t>& ids) {
    return *(*tokenizer)->Decode(ids, /*skip_special_tokens=*/true);
  };
  // "\n" and the indentation are one token in training; it belongs to the hidden line.
  EXPECT_EQ(text_of(infill->prefix), "def f(x):");
  EXPECT_EQ(text_of(infill->middle), "\n    y = x + 1");
  EXPECT_EQ(text_of(infill->suffix), "\n    return y\n");
}

TEST(EvaluationTest, InfillScoresEveryHiddenToken) {
  auto loaded = testing::LoadTestModel("tiny-llada");
  ASSERT_NE(loaded.model, nullptr);
  std::vector<InfillCase> cases = {
      {{1, 2, 3}, {4, 5}, {6}}, {{7}, {8, 9, 10}, {11, 12}}, {{13, 14}, {15}, {}}};
  // Default decoding: low_confidence, one step per mask.
  auto score = EvaluateInfill(*loaded.model, cases, GenerationRequest{}, /*batch_size=*/2);
  ASSERT_TRUE(score.ok()) << score.status();
  EXPECT_EQ(score->cases, 3);
  EXPECT_EQ(score->tokens, 6);
  EXPECT_EQ(score->steps, 6);  // one token per step
  EXPECT_DOUBLE_EQ(score->tokens_per_step(), 1.0);
  EXPECT_LE(score->correct_tokens, 6);
}

// Blocks and a cache: each case runs as many steps per block as its fullest block has masks and
// commits what the same request commits alone (its own arena, RunToCompletion), for every cache.
TEST(EvaluationTest, InfillInBlocksWithACacheScoresAsEachCaseAlone) {
  auto loaded = testing::LoadTestModel("tiny-llada");
  ASSERT_NE(loaded.model, nullptr);
  const ModelConfig& config = loaded.model->config();
  // Canvases of 8 and 12 tokens in blocks of 4; the fullest blocks have 2 and 4 masks, and the
  // second case's last block none (it takes no steps).
  std::vector<InfillCase> cases = {{{1, 2}, {4, 5, 6, 7}, {8, 9}},
                                   {{7}, {8, 9, 10, 11, 12, 13, 14}, {11, 12, 13, 14}}};
  for (const char* cache : {"none", "prefix", "dual"}) {
    SCOPED_TRACE(cache);
    GenerationRequest settings;
    settings.block_length = 4;
    settings.cache = cache;
    auto score = EvaluateInfill(*loaded.model, cases, settings, /*batch_size=*/2);
    ASSERT_TRUE(score.ok()) << score.status();
    EXPECT_EQ(score->tokens, 11);
    EXPECT_EQ(score->steps, 2 * 2 + 2 * 4);
    int64_t correct = 0;
    for (const InfillCase& infill : cases) {
      GenerationRequest request = settings;
      std::vector<int32_t>& canvas = request.infill_ids.emplace(infill.prefix);
      canvas.insert(canvas.end(), infill.middle.size(), config.mask_token_id);
      canvas.insert(canvas.end(), infill.suffix.begin(), infill.suffix.end());
      const int64_t blocks = static_cast<int64_t>(canvas.size()) / 4;
      request.steps = blocks * (&infill == &cases[0] ? 2 : 4);
      auto built = BuildGeneration(request, {config, nullptr, std::nullopt, "test"});
      ASSERT_TRUE(built.ok()) << built.status();
      auto result = RunToCompletion(*loaded.model, built->generation);
      ASSERT_TRUE(result.ok()) << result.status();
      for (size_t j = 0; j < infill.middle.size(); ++j) {
        correct += result->canvas[infill.prefix.size() + j] == infill.middle[j];
      }
    }
    EXPECT_EQ(score->correct_tokens, correct);
  }
}

}  // namespace
}  // namespace sculpt
