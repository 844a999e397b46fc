// Tokenizer behaviour beyond parity: errors that name the problem, round trips, incremental
// decoding, tokenizer_config.json.
#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "tests/support/test_data.h"

namespace sculpt {
namespace {

using nlohmann::json;

const char* const kStyles[] = {"llada-style", "qwen2-style", "gpt2-style", "gpt2-prefix-digits"};

std::unique_ptr<Tokenizer> LoadStyle(const std::string& name) {
  auto tokenizer = Tokenizer::Load(testing::SourcePath("tests/tokenizers/" + name));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(*tokenizer) : nullptr;
}

json StyleJson(const std::string& name) {
  return testing::LoadJsonFixture("tests/tokenizers/" + name + "/tokenizer.json");
}

absl::Status LoadError(const json& tokenizer_json) {
  return Tokenizer::FromJson(tokenizer_json.dump(), "").status();
}

TEST(TokenizerTest, UnsupportedComponentsAreNamedAtLoad) {
  const json base = StyleJson("qwen2-style");
  struct Case {
    const char* path;
    json value;
    const char* named;
  };
  const std::vector<Case> cases = {
      {"/normalizer", {{"type", "NFKC"}}, "normalizer 'NFKC'"},
      {"/normalizer", {{"type", "Lowercase"}}, "normalizer 'Lowercase'"},
      {"/pre_tokenizer", {{"type", "Metaspace"}}, "pre_tokenizer type 'Metaspace'"},
      {"/pre_tokenizer", {{"type", "Whitespace"}}, "pre_tokenizer type 'Whitespace'"},
      {"/decoder", {{"type", "WordPiece"}}, "decoder"},
      {"/post_processor", {{"type", "BertProcessing"}}, "post_processor 'BertProcessing'"},
      {"/model/type", "WordPiece", "unsupported type 'WordPiece'"},
      {"/model/byte_fallback", true, "byte_fallback"},
      {"/model/continuing_subword_prefix", "##", "continuing_subword_prefix"},
  };
  for (const Case& c : cases) {
    json modified = base;
    modified[json::json_pointer(c.path)] = c.value;
    const absl::Status status = LoadError(modified);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.path;
    EXPECT_NE(status.message().find(c.named), std::string::npos) << status;
  }
  json bad_regex = base;
  bad_regex["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  EXPECT_NE(LoadError(bad_regex).message().find("does not compile"), std::string::npos);
  EXPECT_NE(Tokenizer::FromJson("{oops", "").status().message().find("not a JSON object"),
            std::string::npos);
  EXPECT_EQ(Tokenizer::Load("/nonexistent-dir").status().code(), absl::StatusCode::kNotFound);
}

TEST(TokenizerTest, InvalidUtf8AndUnknownIdsAreClearErrors) {
  auto tokenizer = LoadStyle("llada-style");
  ASSERT_NE(tokenizer, nullptr);
  const auto encoded = tokenizer->Encode("abc\xC3(");
  EXPECT_EQ(encoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(encoded.status().message().find("not valid UTF-8"), std::string::npos);
  const std::vector<int32_t> bad_ids = {5, tokenizer->vocab_size(), 6};
  const auto decoded = tokenizer->Decode(bad_ids);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(decoded.status().message().find(std::to_string(tokenizer->vocab_size())),
            std::string::npos);
  const std::vector<int32_t> negative = {-1};
  EXPECT_FALSE(tokenizer->Decode(negative).ok());
}

TEST(TokenizerTest, RoundTripIsLosslessForValidUtf8) {
  std::mt19937 random(11);
  const std::u32string alphabet =
      U"abcXYZ019 "
      U"\t\n\r'_-,.!?"
      U"éüßñ你好世界日本語한국어ąж√∑😀👍🏽\u0301\u200d\u00a0\u3000\u2028";
  // Byte-level BPE without a normalizer or prefix spaces is lossless; qwen2-style composes
  // (NFC) and gpt2-prefix-digits adds spaces, both on purpose and exactly as HF does.
  for (const char* style : {"llada-style", "gpt2-style"}) {
    auto tokenizer = LoadStyle(style);
    ASSERT_NE(tokenizer, nullptr);
    for (int trial = 0; trial < 300; ++trial) {
      std::string text;
      const int length = std::uniform_int_distribution<int>(0, 40)(random);
      for (int i = 0; i < length; ++i) {
        AppendUtf8(alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(random)],
                   text);
      }
      auto ids = tokenizer->Encode(text, /*add_special_tokens=*/false);
      ASSERT_TRUE(ids.ok()) << ids.status();
      auto decoded = tokenizer->Decode(*ids);
      ASSERT_TRUE(decoded.ok());
      EXPECT_EQ(*decoded, text) << style;
    }
  }
}

TEST(TokenizerTest, IncrementalDecodingNeverSplitsACharacter) {
  for (const char* style : kStyles) {
    auto tokenizer = LoadStyle(style);
    ASSERT_NE(tokenizer, nullptr);
    const std::string text =
        "Grüße aus 東京 👩‍👩‍👧‍👦 and 👍🏽<|endoftext|> done";
    auto ids = tokenizer->Encode(text, /*add_special_tokens=*/false);
    ASSERT_TRUE(ids.ok());
    for (bool skip : {false, true}) {
      IncrementalDecoder decoder(*tokenizer, skip);
      std::string streamed;
      int pieces_held_back = 0;
      for (int32_t id : *ids) {
        auto piece = decoder.Push({&id, 1});
        ASSERT_TRUE(piece.ok());
        EXPECT_TRUE(ValidateUtf8(*piece, "piece").ok());
        if (piece->empty()) ++pieces_held_back;
        streamed += *piece;
      }
      streamed += decoder.Finish();
      EXPECT_EQ(streamed, *tokenizer->Decode(*ids, skip)) << style;
      // Byte-level BPE splits multi-byte characters, so some tokens must have been held back;
      // without that this test would not exercise the buffering.
      EXPECT_GT(pieces_held_back, 0) << style;
    }
  }
}

TEST(TokenizerTest, ConfigNamesSpecialTokensAndTheChatTemplate) {
  auto llada = LoadStyle("llada-style");
  ASSERT_NE(llada, nullptr);
  EXPECT_EQ(llada->special_ids().bos, llada->TokenToId("<|startoftext|>"));
  EXPECT_EQ(llada->special_ids().eos, llada->TokenToId("<|endoftext|>"));
  EXPECT_GE(llada->special_ids().bos, 0);
  EXPECT_NE(llada->chat_template().find("<|start_header_id|>"), std::string::npos);
  EXPECT_TRUE(llada->IsSpecial(llada->special_ids().eos));
  EXPECT_FALSE(llada->IsSpecial(llada->TokenToId("a")));

  const std::string tokenizer_json = StyleJson("gpt2-style").dump();
  const auto bad = Tokenizer::FromJson(tokenizer_json, R"({"eos_token": "<|nope|>"})");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("eos_token '<|nope|>'"), std::string::npos);
}

}  // namespace
}  // namespace sculpt
