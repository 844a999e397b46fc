// Chat formats against Jinja renderings of the fixture templates (tools/gen_chat_golden.py):
// the same prompt text and, encoded, the same ids as HF.
#include "model/chat_template.h"

#include <gtest/gtest.h>

#include "model/tokenizer.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

TEST(ChatTemplateTest, MatchesJinjaAndHfIds) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/tokenizers/chat_expected.json");
  ASSERT_GE(fixture["cases"].size(), 10u);
  for (const nlohmann::json& test_case : fixture["cases"]) {
    const std::string name = test_case["tokenizer"];
    auto tokenizer = Tokenizer::Load(testing::SourcePath("tests/tokenizers/" + name));
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    auto format = DetectChatFormat((*tokenizer)->chat_template());
    ASSERT_TRUE(format.ok()) << format.status();
    std::vector<ChatMessage> messages;
    for (const auto& message : test_case["messages"])
      messages.push_back({message["role"], message["content"]});
    const int32_t bos = (*tokenizer)->special_ids().bos;
    const std::string bos_text = bos >= 0 ? *(*tokenizer)->IdToToken(bos) : "";
    auto text = ApplyChatFormat(*format, messages, test_case["add_generation_prompt"], bos_text);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, test_case["text"].get<std::string>()) << name;
    auto ids = (*tokenizer)->Encode(*text, /*add_special_tokens=*/false);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*ids, test_case["ids"].get<std::vector<int32_t>>()) << name;
  }
}

TEST(ChatTemplateTest, UnknownTemplatesAndBadMessagesAreRefused) {
  EXPECT_NE(DetectChatFormat("").status().message().find("no chat_template"), std::string::npos);
  const auto unknown =
      DetectChatFormat("{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("not one Sculpt can apply"), std::string::npos);

  EXPECT_FALSE(ApplyChatFormat(ChatFormat::kChatML, {}, true, "").ok());
  const std::vector<ChatMessage> no_role = {{"", "hi"}};
  EXPECT_NE(ApplyChatFormat(ChatFormat::kChatML, no_role, true, "").status().message().find("role"),
            std::string::npos);
  const std::vector<ChatMessage> bad_utf8 = {{"user", "caf\xC3"}};
  EXPECT_NE(ApplyChatFormat(ChatFormat::kLLaDA, bad_utf8, true, "")
                .status()
                .message()
                .find("messages[0].content is not valid UTF-8"),
            std::string::npos);
}

}  // namespace
}  // namespace sculpt
