#include "model/text_io.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sculpt {

absl::StatusOr<StopMatcher> MakeStopStringMatcher(const Tokenizer& tokenizer,
                                                  std::vector<std::string> stops) {
  for (size_t i = 0; i < stops.size(); ++i) {
    if (stops[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("stop[", i, "] must not be empty"));
    }
    SCULPT_RETURN_IF_ERROR(ValidateUtf8(stops[i], absl::StrCat("stop[", i, "]")));
  }
  return StopMatcher([&tokenizer, stops = std::move(stops)](
                         std::span<const int32_t> prefix) -> std::optional<StopMatch> {
    // Bytes of each token, so the token holding the stop string's first byte can be found.
    std::string bytes;
    std::vector<size_t> token_end;
    for (int32_t id : prefix) {
      auto token_bytes = tokenizer.TokenBytes(id, /*skip_special_tokens=*/false);
      if (!token_bytes.ok()) return std::nullopt;
      bytes += *token_bytes;
      token_end.push_back(bytes.size());
    }
    size_t first = std::string::npos;
    for (const std::string& stop : stops) first = std::min(first, bytes.find(stop));
    if (first == std::string::npos) return std::nullopt;
    StopMatch match;
    match.tokens_kept = static_cast<size_t>(
        std::upper_bound(token_end.begin(), token_end.end(), first) - token_end.begin());
    match.text = DecodeUtf8Lossy(bytes.substr(0, first));
    return match;
  });
}

std::vector<int32_t> StopTokenIds(const ModelConfig& config, const Tokenizer* tokenizer) {
  std::vector<int32_t> ids = {config.eos_token_id};
  if (tokenizer != nullptr) {
    for (const char* name : {"<|eot_id|>", "<|im_end|>", "<|endoftext|>"}) {
      const int32_t id = tokenizer->TokenToId(name);
      if (id >= 0 && id < config.embedding_size &&
          std::find(ids.begin(), ids.end(), id) == ids.end()) {
        ids.push_back(id);
      }
    }
  }
  return ids;
}

absl::StatusOr<std::vector<int32_t>> EncodeChatPrompt(const Tokenizer& tokenizer,
                                                      std::span<const ChatMessage> messages) {
  SCULPT_ASSIGN_OR_RETURN(ChatFormat format, DetectChatFormat(tokenizer.chat_template()));
  if (messages.empty()) return absl::InvalidArgumentError("messages must not be empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant") {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].role must be system, ",
                                                     "user or assistant, got '", role, "'"));
    }
  }
  const int32_t bos = tokenizer.special_ids().bos;
  SCULPT_ASSIGN_OR_RETURN(std::string text,
                          ApplyChatFormat(format, messages, /*add_generation_prompt=*/true,
                                          bos >= 0 ? *tokenizer.IdToToken(bos) : ""));
  return tokenizer.Encode(text, /*add_special_tokens=*/false);
}

absl::StatusOr<std::vector<InfillSegment>> ParseInfillTemplate(const std::string& text) {
  SCULPT_RETURN_IF_ERROR(ValidateUtf8(text, "the infill template"));
  static const std::regex kMaskSpan(R"(<\|mask:([^|>]*)\|>)");
  std::vector<InfillSegment> segments;
  size_t previous = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kMaskSpan);
       it != std::sregex_iterator(); ++it) {
    const std::smatch& match = *it;
    const size_t begin = static_cast<size_t>(match.position(0));
    if (begin > previous) segments.push_back({text.substr(previous, begin - previous), 0});
    int count = 0;
    if (!absl::SimpleAtoi(match[1].str(), &count) || count < 1 || count > 100000) {
      return absl::InvalidArgumentError(absl::StrCat("infill template: '", match[0].str(),
                                                     "' must hold a count from 1 to 100000"));
    }
    segments.push_back({"", count});
    previous = begin + static_cast<size_t>(match.length(0));
  }
  if (previous < text.size()) segments.push_back({text.substr(previous), 0});
  return segments;
}

namespace {

// The byte length of the longest prefix of `text` that ends on a token boundary of `ids`, where
// `ids` encodes `text` followed by something; nullopt when the tokens do not spell the text (a
// normalizer or an added token's lstrip changed it), so nothing is moved.
absl::StatusOr<std::optional<size_t>> StableTokenPrefix(const Tokenizer& tokenizer,
                                                        std::span<const int32_t> ids,
                                                        std::string_view text) {
  std::string spelled;
  size_t stable = 0;
  for (int32_t id : ids) {
    SCULPT_ASSIGN_OR_RETURN(std::string bytes, tokenizer.TokenBytes(id, false));
    spelled += bytes;
    if (spelled.size() > text.size()) break;
    stable = spelled.size();
  }
  if (std::string_view(spelled).substr(0, stable) != text.substr(0, stable)) return std::nullopt;
  return stable;
}

// Text before a masked span, split into the part the canvas keeps and the trailing whitespace
// the span takes over. A byte-level BPE tokenizes whitespace by what follows it: before code,
// "\n    return" is "\n   " + " return" (the last space joins the word) and a newline merges
// with the next line's indentation. Encoded on its own, the given text would end in tokens the
// model never saw before a word (a lone "\n", a full space run), and it answers with a dedent
// or a doubled space. So the kept part ends where the tokenizer would end it whatever code came
// next (probed with typical starts of code), and the rest is left to the model.
struct SplitBeforeMask {
  std::string kept;
  std::string absorbed;
};
absl::StatusOr<SplitBeforeMask> SplitTextBeforeMask(const Tokenizer& tokenizer,
                                                    const std::string& text) {
  const size_t content_end = text.find_last_not_of(" \t\r\n") + 1;  // npos + 1 == 0
  if (content_end == text.size()) return SplitBeforeMask{text, ""};
  // The span starts with code right where the text ends; after a newline, possibly indented.
  std::vector<std::string> probes = {"a", "("};
  if (text.back() == '\n') probes.push_back("    a");
  size_t kept = text.size();
  for (const std::string& probe : probes) {
    SCULPT_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer.Encode(text + probe, false));
    SCULPT_ASSIGN_OR_RETURN(std::optional<size_t> stable, StableTokenPrefix(tokenizer, ids, text));
    if (!stable.has_value()) return SplitBeforeMask{text, ""};
    kept = std::min(kept, *stable);
  }
  kept = std::max(kept, content_end);  // only whitespace moves, never the user's code
  return SplitBeforeMask{text.substr(0, kept), text.substr(kept)};
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> BuildInfillCanvas(const Tokenizer& tokenizer,
                                                       const ModelConfig& config,
                                                       const std::vector<InfillSegment>& segments) {
  SCULPT_ASSIGN_OR_RETURN(std::vector<int32_t> canvas, tokenizer.Encode("", true));
  for (size_t i = 0; i < segments.size(); ++i) {
    const InfillSegment& segment = segments[i];
    if (segment.masks > 0) {
      canvas.insert(canvas.end(), segment.masks, config.mask_token_id);
      continue;
    }
    if (i + 1 == segments.size() || segments[i + 1].masks == 0) {
      SCULPT_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer.Encode(segment.text, false));
      canvas.insert(canvas.end(), ids.begin(), ids.end());
      continue;
    }
    SCULPT_ASSIGN_OR_RETURN(SplitBeforeMask split, SplitTextBeforeMask(tokenizer, segment.text));
    SCULPT_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer.Encode(split.kept, false));
    canvas.insert(canvas.end(), ids.begin(), ids.end());
    if (!split.absorbed.empty()) {
      // The span keeps its N tokens for the code: whitespace that the tokenizer writes as tokens
      // of its own (a newline with the next line's indentation) gets masks of its own, a space
      // that joins the next word does not.
      SCULPT_ASSIGN_OR_RETURN(std::vector<int32_t> absorbed_then_word,
                              tokenizer.Encode(split.absorbed + "a", false));
      SCULPT_ASSIGN_OR_RETURN(std::vector<int32_t> word, tokenizer.Encode("a", false));
      if (absorbed_then_word.size() > word.size()) {
        canvas.insert(canvas.end(), absorbed_then_word.size() - word.size(), config.mask_token_id);
      }
    }
  }
  return canvas;
}

absl::StatusOr<std::vector<FilledSpan>> FilledSpans(const Tokenizer* tokenizer, int32_t mask_id,
                                                    std::span<const int32_t> initial,
                                                    std::span<const int32_t> final_canvas) {
  std::vector<FilledSpan> spans;
  for (size_t i = 0; i < initial.size(); ++i) {
    if (initial[i] != mask_id) continue;
    if (i == 0 || initial[i - 1] != mask_id) spans.push_back({static_cast<int>(i), {}, ""});
    spans.back().tokens.push_back(final_canvas[i]);
  }
  if (tokenizer != nullptr) {
    for (FilledSpan& span : spans) {
      SCULPT_ASSIGN_OR_RETURN(span.text,
                              tokenizer->Decode(span.tokens, /*skip_special_tokens=*/true));
    }
  }
  return spans;
}

}  // namespace sculpt
