#include "model/chat_template.h"

#include "absl/strings/str_cat.h"
#include "model/tokenizer/utf8.h"

namespace sculpt {
namespace {

// Python's str.strip() (Jinja's `trim`): removes characters for which str.isspace() holds.
bool IsPythonSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

std::string Trim(const std::string& text) {
  size_t begin = 0;
  while (begin < text.size()) {
    size_t next = begin;
    if (!IsPythonSpace(NextCodePoint(text, &next))) break;
    begin = next;
  }
  size_t end = text.size();
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    size_t cursor = start;
    if (!IsPythonSpace(NextCodePoint(text, &cursor))) break;
    end = start;
  }
  return text.substr(begin, end - begin);
}

}  // namespace

absl::StatusOr<ChatFormat> DetectChatFormat(const std::string& chat_template) {
  if (chat_template.empty()) {
    return absl::InvalidArgumentError(
        "the model has no chat_template in tokenizer_config.json; send a plain prompt instead");
  }
  if (chat_template.find("<|start_header_id|>") != std::string::npos &&
      chat_template.find("<|eot_id|>") != std::string::npos) {
    return ChatFormat::kLLaDA;
  }
  if (chat_template.find("<|im_start|>") != std::string::npos &&
      chat_template.find("<|im_end|>") != std::string::npos) {
    return ChatFormat::kChatML;
  }
  return absl::InvalidArgumentError(
      "the model's chat_template is not one Sculpt can apply (supported: LLaDA-Instruct and "
      "ChatML as Qwen2/Dream use); send a plain prompt with the chat already formatted");
}

absl::StatusOr<std::string> ApplyChatFormat(ChatFormat format,
                                            std::span<const ChatMessage> messages,
                                            bool add_generation_prompt,
                                            const std::string& bos_token) {
  if (messages.empty()) return absl::InvalidArgumentError("messages must not be empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].role must not be empty"));
    }
    if (absl::Status status =
            ValidateUtf8(messages[i].content, absl::StrCat("messages[", i, "].content"));
        !status.ok()) {
      return status;
    }
  }
  std::string prompt;
  switch (format) {
    case ChatFormat::kLLaDA:
      prompt = bos_token;
      for (const ChatMessage& message : messages) {
        absl::StrAppend(&prompt, "<|start_header_id|>", message.role, "<|end_header_id|>\n\n",
                        Trim(message.content), "<|eot_id|>");
      }
      if (add_generation_prompt)
        absl::StrAppend(&prompt, "<|start_header_id|>assistant<|end_header_id|>\n\n");
      return prompt;
    case ChatFormat::kChatML:
      if (messages[0].role != "system") {
        prompt = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
      }
      for (const ChatMessage& message : messages) {
        absl::StrAppend(&prompt, "<|im_start|>", message.role, "\n", message.content,
                        "<|im_end|>\n");
      }
      if (add_generation_prompt) absl::StrAppend(&prompt, "<|im_start|>assistant\n");
      return prompt;
  }
  return absl::InternalError("unhandled chat format");
}

}  // namespace sculpt
