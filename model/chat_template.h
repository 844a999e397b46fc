// Chat formats of the instruct models we serve, recognised from tokenizer_config.json's Jinja
// chat_template and applied natively (no Jinja engine): LLaDA-Instruct (Llama-3-style headers)
// and ChatML (Qwen2, Dream, DiffuCoder).
#pragma once

#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace sculpt {

enum class ChatFormat { kLLaDA, kChatML };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

// The format a chat_template implements; INVALID_ARGUMENT when there is none or it is not one
// we can reproduce exactly (a guess would silently change every answer).
absl::StatusOr<ChatFormat> DetectChatFormat(const std::string& chat_template);

// The prompt text the template renders for `messages`, ending with the assistant header when
// `add_generation_prompt`. `bos_token` is the text of the BOS token (LLaDA's template starts
// with it). Encode the result without the post-processor's special tokens, as
// transformers' apply_chat_template does.
absl::StatusOr<std::string> ApplyChatFormat(ChatFormat format,
                                            std::span<const ChatMessage> messages,
                                            bool add_generation_prompt,
                                            const std::string& bos_token);

}  // namespace sculpt
