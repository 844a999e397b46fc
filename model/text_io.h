// Text-level pieces of a generation that need the tokenizer: stop strings, infill templates and
// the stop tokens a model's tokenizer defines.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/chat_template.h"
#include "model/config.h"
#include "model/generation.h"
#include "model/tokenizer.h"

namespace sculpt {

// A StopMatcher that ends the answer at the first occurrence of any of `stops` in the decoded
// committed prefix. The answer keeps the tokens before the token in which the stop string
// begins; its text is cut exactly at the stop string. Empty stop strings are INVALID_ARGUMENT.
absl::StatusOr<StopMatcher> MakeStopStringMatcher(const Tokenizer& tokenizer,
                                                  std::vector<std::string> stops);

// EOS plus the end-of-turn tokens the tokenizer knows (<|eot_id|>, <|im_end|>, <|endoftext|>).
std::vector<int32_t> StopTokenIds(const ModelConfig& config, const Tokenizer* tokenizer);

// The prompt ids of a conversation: the tokenizer's chat format rendered with the assistant's
// header, encoded without the post-processor's special tokens (the template has its own), as
// transformers' apply_chat_template. INVALID_ARGUMENT when the model has no chat format we
// reproduce or a role is not system/user/assistant.
absl::StatusOr<std::vector<int32_t>> EncodeChatPrompt(const Tokenizer& tokenizer,
                                                      std::span<const ChatMessage> messages);

// A piece of an infill request: given text, or a run of masked tokens to fill.
struct InfillSegment {
  std::string text;
  int masks = 0;  // > 0: this many masked tokens (text ignored)
};

// Parses a template: `<|mask:N|>` stands for N masked tokens; everything else is given text
// (the tokenizer's own mask token string inside it stands for one).
absl::StatusOr<std::vector<InfillSegment>> ParseInfillTemplate(const std::string& text);

// The canvas of an infill request: the post-processor's prefix (e.g. BOS), then each segment's
// tokens or masks.
absl::StatusOr<std::vector<int32_t>> BuildInfillCanvas(const Tokenizer& tokenizer,
                                                       const ModelConfig& config,
                                                       const std::vector<InfillSegment>& segments);

// A filled span of an infilled canvas: positions [start, start + tokens.size()).
struct FilledSpan {
  int start = 0;
  std::vector<int32_t> tokens;
  std::string text;
};
// The runs of positions that were masks in `initial` and hold tokens in `final_canvas`.
absl::StatusOr<std::vector<FilledSpan>> FilledSpans(const Tokenizer* tokenizer, int32_t mask_id,
                                                    std::span<const int32_t> initial,
                                                    std::span<const int32_t> final_canvas);

}  // namespace sculpt
