// Infill canvases on real tokenizers: the text kept before a masked span ends on a boundary the
// tokenizer itself makes when code follows, so the canvas is a prefix of the tokens of a filled
// text. The reference is the tokenizer's encoding of whole, filled texts.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/text_io.h"
#include "model/tokenizer.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

struct Model {
  std::unique_ptr<Tokenizer> tokenizer;
  ModelConfig config;
};

Model LoadModel(const std::string& dir) {
  auto tokenizer = Tokenizer::Load(testing::SourcePath(dir));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto config = LoadModelConfig(testing::SourcePath(dir));
  EXPECT_TRUE(config.ok()) << config.status();
  return {std::move(*tokenizer), *config};
}

std::vector<int32_t> Canvas(const Model& model, const std::string& text) {
  auto segments = ParseInfillTemplate(text);
  EXPECT_TRUE(segments.ok()) << segments.status();
  auto canvas = BuildInfillCanvas(*model.tokenizer, model.config, *segments);
  EXPECT_TRUE(canvas.ok()) << canvas.status();
  return *canvas;
}

// The canvas before its first mask, and the number of masks in its first run.
std::pair<std::vector<int32_t>, int> KeptAndMasks(const Model& model,
                                                  const std::vector<int32_t>& canvas) {
  const auto first = std::find(canvas.begin(), canvas.end(), model.config.mask_token_id);
  const auto after = std::find_if(first, canvas.end(),
                                  [&](int32_t id) { return id != model.config.mask_token_id; });
  return {std::vector<int32_t>(canvas.begin(), first), static_cast<int>(after - first)};
}

std::vector<int32_t> EncodeWhole(const Model& model, const std::string& text) {
  auto ids = model.tokenizer->Encode(text, /*add_special_tokens=*/true);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return *ids;
}

std::string Bytes(const Model& model, int32_t id) { return *model.tokenizer->TokenBytes(id); }

// Byte-level BPE with the GPT-2 pattern (the shipped model): a newline merges with the next
// line's indentation and the last space of a run joins the next word.
TEST(InfillCanvasTest, GptPatternLeavesBoundaryWhitespaceToTheSpan) {
  const Model model = LoadModel("models/sculpt-code-mini");

  // A body on the next line: the newline goes to the span, which gets one mask more for it.
  auto [kept, masks] = KeptAndMasks(model, Canvas(model, "def is_even(n):\n<|mask:8|>\n"));
  EXPECT_EQ(masks, 9);
  std::vector<int32_t> whole = EncodeWhole(model, "def is_even(n):\n    return n % 2 == 0\n");
  ASSERT_GT(whole.size(), kept.size());
  EXPECT_TRUE(std::equal(kept.begin(), kept.end(), whole.begin()));
  EXPECT_EQ(Bytes(model, whole[kept.size()]).front(), '\n');
  EXPECT_EQ(kept, EncodeWhole(model, "def is_even(n):"));

  // Given indentation stays, but its last space belongs to the first word of the span.
  std::tie(kept, masks) = KeptAndMasks(
      model, Canvas(model, "def read(path):\n    with open(path) as f:\n        <|mask:6|>\n"));
  EXPECT_EQ(masks, 6);
  whole =
      EncodeWhole(model, "def read(path):\n    with open(path) as f:\n        return f.read()\n");
  ASSERT_GT(whole.size(), kept.size());
  EXPECT_TRUE(std::equal(kept.begin(), kept.end(), whole.begin()));
  EXPECT_EQ(Bytes(model, whole[kept.size()]), " return");
  EXPECT_EQ(Bytes(model, kept.back()), "\n       ");

  // After code on the same line, the space joins the span's first token; no mask is added.
  std::tie(kept, masks) = KeptAndMasks(model, Canvas(model, "x = <|mask:2|>\n"));
  EXPECT_EQ(masks, 2);
  EXPECT_EQ(kept, EncodeWhole(model, "x ="));

  // Text that does not end in whitespace is kept as the user wrote it.
  std::tie(kept, masks) = KeptAndMasks(model, Canvas(model, "x = foo<|mask:2|>"));
  EXPECT_EQ(masks, 2);
  EXPECT_EQ(kept, EncodeWhole(model, "x = foo"));

  // Text after the span, and at the end of the template, is encoded as given.
  const std::vector<int32_t> canvas = Canvas(model, "x = <|mask:2|>\n    y = 1  ");
  const auto tail = model.tokenizer->Encode("\n    y = 1  ", false);
  ASSERT_TRUE(tail.ok());
  EXPECT_TRUE(std::equal(tail->rbegin(), tail->rend(), canvas.rbegin()));
}

// LLaDA-8B's pattern (tiny-llada-text) keeps a line's newline with its punctuation (":\n" is one
// piece), so nothing before a span on the next line moves; a space before a word still does.
TEST(InfillCanvasTest, LlamaPatternKeepsNewlinesWithTheirLine) {
  const Model model = LoadModel("tests/models/tiny-llada-text");
  auto [kept, masks] = KeptAndMasks(model, Canvas(model, "def mean(xs):\n<|mask:5|>"));
  EXPECT_EQ(masks, 5);
  EXPECT_EQ(kept, EncodeWhole(model, "def mean(xs):\n"));
  std::tie(kept, masks) = KeptAndMasks(model, Canvas(model, "    return total / <|mask:2|>"));
  EXPECT_EQ(masks, 2);
  EXPECT_EQ(kept, EncodeWhole(model, "    return total /"));
}

}  // namespace
}  // namespace sculpt
