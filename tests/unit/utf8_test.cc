// UTF-8 helpers of the tokenizer: validation, lossy decoding with Rust's replacement rules, the
// byte-level alphabet, and streaming decoding that never splits a character.
#include "model/tokenizer/utf8.h"

#include <gtest/gtest.h>

#include <random>

namespace sculpt {
namespace {

constexpr const char* kReplacement = "\xEF\xBF\xBD";

TEST(Utf8Test, ValidationNamesTheOffset) {
  EXPECT_TRUE(ValidateUtf8("plain ascii, déjà, 你好, 👍🏽", "text").ok());
  for (const std::string& bad : {std::string("ab\xC3"), std::string("\xE2\x28\xA1"),
                                 std::string("x\xED\xA0\x80"),     // a surrogate
                                 std::string("\xF4\x90\x80\x80"),  // above U+10FFFF
                                 std::string("\xC0\xAF"),          // overlong
                                 std::string("\xFF")}) {
    const absl::Status status = ValidateUtf8(bad, "text");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(status.message().find("not valid UTF-8"), std::string::npos);
    EXPECT_NE(status.message().find("offset"), std::string::npos);
  }
}

TEST(Utf8Test, LossyDecodingReplacesMaximalSubparts) {
  // Cases from the Unicode "U+FFFD substitution of maximal subparts" practice, which Rust's
  // String::from_utf8_lossy (and so HF's decoder) follows.
  const std::string r = kReplacement;
  EXPECT_EQ(DecodeUtf8Lossy("abc"), "abc");
  EXPECT_EQ(DecodeUtf8Lossy("a\xE2\x82"), "a" + r);  // truncated at the end
  EXPECT_EQ(DecodeUtf8Lossy("\xE2\x82"
                            "b"),
            r + "b");                                     // truncated in the middle
  EXPECT_EQ(DecodeUtf8Lossy("\xF0\x80\x80"), r + r + r);  // invalid second byte
  EXPECT_EQ(DecodeUtf8Lossy("\xED\xA0\x80"), r + r + r);  // surrogate
  EXPECT_EQ(DecodeUtf8Lossy("\xC0\xAF"), r + r);          // overlong
  EXPECT_EQ(DecodeUtf8Lossy("\x80\x80"), r + r);          // lone continuations
  EXPECT_EQ(DecodeUtf8Lossy("\xF1\x80\x80\xE1\x80\xC2"), r + r + r);
}

TEST(Utf8Test, ByteLevelAlphabetIsABijection) {
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::Get();
  EXPECT_EQ(alphabet.Encode(' '), "\xC4\xA0");   // Ġ
  EXPECT_EQ(alphabet.Encode('\n'), "\xC4\x8A");  // Ċ
  EXPECT_EQ(alphabet.Encode('A'), "A");
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all += alphabet.Encode(static_cast<uint8_t>(byte));
  std::string back;
  ASSERT_TRUE(alphabet.Decode(all, back));
  ASSERT_EQ(back.size(), 256u);
  for (int byte = 0; byte < 256; ++byte) EXPECT_EQ(static_cast<uint8_t>(back[byte]), byte);
  std::string ignored;
  EXPECT_FALSE(alphabet.Decode("你", ignored));
}

TEST(Utf8Test, StreamingEqualsWholeDecodingForEverySplit) {
  std::mt19937 random(7);
  const std::string samples[] = {"déjà vu 你好 👩‍👩‍👧‍👦 ok",
                                 "a\xE2\x82"
                                 "b\xF0\x9F",
                                 "\xC0\xAF\xED\xA0\x80z"};
  for (const std::string& sample : samples) {
    const std::string whole = DecodeUtf8Lossy(sample);
    for (int trial = 0; trial < 200; ++trial) {
      Utf8StreamDecoder decoder;
      std::string streamed;
      size_t offset = 0;
      while (offset < sample.size()) {
        const size_t chunk = std::uniform_int_distribution<size_t>(0, 3)(random);
        const std::string piece = decoder.Push(sample.substr(offset, chunk));
        // Every emitted piece is complete UTF-8 on its own.
        EXPECT_TRUE(ValidateUtf8(piece, "piece").ok());
        streamed += piece;
        offset += chunk;
      }
      streamed += decoder.Finish();
      ASSERT_EQ(streamed, whole) << "trial " << trial;
    }
  }
}

}  // namespace
}  // namespace sculpt
