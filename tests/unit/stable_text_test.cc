// StableTextStream: only the contiguous committed prefix, never a possible stop string, always a
// prefix of the final text.
#include "server/stable_text.h"

#include <gtest/gtest.h>

#include "tests/support/test_data.h"

namespace sculpt {
namespace {

std::unique_ptr<Tokenizer> LoadTokenizer() {
  auto tokenizer = Tokenizer::Load(testing::TestModelDir("tiny-llada-text"));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(*tokenizer) : nullptr;
}

std::vector<int32_t> Encode(const Tokenizer& tokenizer, const std::string& text) {
  auto ids = tokenizer.Encode(text, /*add_special_tokens=*/false);
  EXPECT_TRUE(ids.ok());
  return *ids;
}

TEST(StableTextTest, ReleasesOnlyTheContiguousPrefix) {
  auto tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const std::string text = "def add(a, b): return a + b";
  const std::vector<int32_t> ids = Encode(*tokenizer, text);
  ASSERT_GE(ids.size(), 4u);
  StableTextStream stream(*tokenizer, {}, static_cast<int>(ids.size()));
  // The last token first: nothing is stable yet.
  EXPECT_EQ(stream.Apply({{static_cast<int32_t>(ids.size() - 1), ids.back()}}), "");
  std::string streamed;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    streamed += stream.Apply({{static_cast<int32_t>(i), ids[i]}});
    EXPECT_EQ(text.compare(0, streamed.size(), streamed), 0) << streamed;
  }
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(stream.Finish(text), "");
}

TEST(StableTextTest, HoldsBackWhatCouldStartAStopString) {
  auto tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const std::string text = "x = 1\nreturn x";
  const std::vector<int32_t> ids = Encode(*tokenizer, text);
  StableTextStream stream(*tokenizer, {"\nreturn"}, static_cast<int>(ids.size()));
  std::string streamed;
  for (size_t i = 0; i < ids.size(); ++i) {
    streamed += stream.Apply({{static_cast<int32_t>(i), ids[i]}});
    // Never past the start of the stop string, even once it is complete.
    EXPECT_LE(streamed.size(), text.find("\nreturn")) << streamed;
  }
  EXPECT_EQ(streamed, "x = 1");
  // The final text is cut at the stop string: nothing more to send.
  EXPECT_EQ(stream.Finish("x = 1"), "");
}

TEST(StableTextTest, FinishSendsTheRestOrNothingOnAMismatch) {
  auto tokenizer = LoadTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const std::vector<int32_t> ids = Encode(*tokenizer, "hello world");
  StableTextStream stream(*tokenizer, {}, static_cast<int>(ids.size()) + 4);
  const std::string first = stream.Apply({{0, ids[0]}});
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(stream.Finish(first + " and more"), " and more");
  StableTextStream other(*tokenizer, {}, 4);
  EXPECT_FALSE(other.Apply({{0, ids[0]}}).empty());
  EXPECT_EQ(other.Finish("something else"), "");
}

}  // namespace
}  // namespace sculpt
