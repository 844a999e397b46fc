// Encoding and decoding against HF tokenizers' own outputs (tools/gen_tokenizer_golden.py) for
// the LLaDA, Qwen2 and GPT-2 styles over the committed multilingual corpus and a 1 MB input.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "tests/support/sha256.h"
#include "tests/support/test_data.h"
#include "tests/support/tokenizer_corpus.h"

namespace sculpt {
namespace {

std::string IdsDigest(const std::vector<int32_t>& ids) {
  std::string bytes(ids.size() * 4, '\0');
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto value = static_cast<uint32_t>(ids[i]);
    for (int b = 0; b < 4; ++b) bytes[4 * i + b] = static_cast<char>(value >> (8 * b));
  }
  return testing::Sha256Hex(bytes);
}

TEST(Sha256Test, KnownAnswers) {
  EXPECT_EQ(testing::Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(testing::Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

class TokenizerGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerGoldenTest, EncodeAndDecodeMatchHf) {
  const nlohmann::json corpus = testing::LoadJsonFixture("tests/tokenizers/corpus.json");
  const nlohmann::json expected = testing::LoadJsonFixture("tests/tokenizers/expected.json");
  const nlohmann::json& style = expected["tokenizers"][GetParam()];
  auto tokenizer = Tokenizer::Load(testing::SourcePath("tests/tokenizers/" + GetParam()));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), style["vocab_size"].get<int>());

  std::map<std::string, std::string> texts;
  for (const auto& entry : corpus) {
    if (entry.contains("text")) texts[entry["name"]] = entry["text"];
  }
  int checked = 0;
  for (const auto& test_case : style["cases"]) {
    const std::string name = test_case["name"];
    SCOPED_TRACE(name);
    if (name == "large") {
      const std::string large = testing::BuildLargeTokenizerText(corpus);
      ASSERT_EQ(large.size(), test_case["bytes"].get<size_t>());
      auto ids = (*tokenizer)->Encode(large);
      ASSERT_TRUE(ids.ok());
      EXPECT_EQ(ids->size(), test_case["ids_count"].get<size_t>());
      EXPECT_EQ(IdsDigest(*ids), test_case["ids_sha256"].get<std::string>());
      auto plain = (*tokenizer)->Encode(large, /*add_special_tokens=*/false);
      ASSERT_TRUE(plain.ok());
      EXPECT_EQ(plain->size(), test_case["ids_no_special_count"].get<size_t>());
      EXPECT_EQ(IdsDigest(*plain), test_case["ids_no_special_sha256"].get<std::string>());
      ++checked;
      continue;
    }
    ASSERT_TRUE(texts.count(name)) << "corpus has no entry " << name;
    const std::string& text = texts[name];
    auto ids = (*tokenizer)->Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, test_case["ids"].get<std::vector<int32_t>>());
    auto plain = (*tokenizer)->Encode(text, /*add_special_tokens=*/false);
    ASSERT_TRUE(plain.ok());
    const auto expected_plain = test_case["ids_no_special"].get<std::vector<int32_t>>();
    EXPECT_EQ(*plain, expected_plain);
    auto decoded = (*tokenizer)->Decode(expected_plain);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, test_case["decoded"].get<std::string>());
    auto skipped = (*tokenizer)
                       ->Decode(test_case["ids"].get<std::vector<int32_t>>(),
                                /*skip_special_tokens=*/true);
    ASSERT_TRUE(skipped.ok());
    EXPECT_EQ(*skipped, test_case["decoded_skip_special"].get<std::string>());
    ++checked;
  }
  EXPECT_GE(checked, 30);
}

INSTANTIATE_TEST_SUITE_P(Styles, TokenizerGoldenTest,
                         ::testing::Values("llada-style", "qwen2-style", "gpt2-style",
                                           "gpt2-prefix-digits"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return name;
                         });

}  // namespace
}  // namespace sculpt
