#include "model/tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "model/tokenizer/added_tokens.h"
#include "model/tokenizer/bpe.h"
#include "model/tokenizer/pre_tokenizer.h"

namespace sculpt {
namespace {

using nlohmann::json;

absl::Status Unsupported(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: unsupported ", what));
}

// Canonical composition (NFC), on text that may contain NUL characters.
std::string Nfc(std::string_view text) {
  utf8proc_uint8_t* composed = nullptr;
  const utf8proc_ssize_t length =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &composed,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (length < 0) return std::string(text);  // only on invalid UTF-8, rejected earlier
  std::string out(reinterpret_cast<const char*>(composed), static_cast<size_t>(length));
  std::free(composed);
  return out;
}

// Whether a tokenizer.json `normalizer` is NFC (true), nothing (false) or unsupported.
absl::StatusOr<bool> ParseNormalizer(const json& config) {
  if (config.is_null()) return false;
  const std::string type = config.value("type", "");
  if (type == "NFC") return true;
  if (type == "Sequence") {
    bool nfc = false;
    for (const json& step : config.value("normalizers", json::array())) {
      SCULPT_ASSIGN_OR_RETURN(bool step_nfc, ParseNormalizer(step));
      nfc = nfc || step_nfc;
    }
    return nfc;
  }
  return Unsupported(absl::StrCat("normalizer '", type.empty() ? config.dump() : type, "'"));
}

absl::Status ParseDecoder(const json& config) {
  if (config.is_object() && config.value("type", "") == "ByteLevel") return absl::OkStatus();
  if (config.is_object() && config.value("type", "") == "Sequence") {
    const json& steps = config.value("decoders", json::array());
    if (steps.size() == 1) return ParseDecoder(steps[0]);
  }
  return Unsupported(absl::StrCat("decoder ", config.dump(), " (only ByteLevel)"));
}

// The special tokens a post-processor puts around a single sequence.
absl::Status ParsePostProcessor(const json& config, std::vector<int32_t>& before,
                                std::vector<int32_t>& after) {
  if (config.is_null()) return absl::OkStatus();
  const std::string type = config.value("type", "");
  if (type == "ByteLevel") return absl::OkStatus();  // only adjusts offsets
  if (type == "Sequence") {
    for (const json& step : config.value("processors", json::array())) {
      SCULPT_RETURN_IF_ERROR(ParsePostProcessor(step, before, after));
    }
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") return Unsupported(absl::StrCat("post_processor '", type, "'"));
  const json& special_tokens = config.value("special_tokens", json::object());
  bool seen_sequence = false;
  for (const json& item : config.value("single", json::array())) {
    if (item.contains("Sequence")) {
      if (seen_sequence) return Unsupported("post_processor template with two sequences");
      seen_sequence = true;
    } else if (item.contains("SpecialToken")) {
      const std::string name = item["SpecialToken"].value("id", "");
      auto it = special_tokens.find(name);
      if (it == special_tokens.end() || !it->contains("ids") || !(*it)["ids"].is_array()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tokenizer.json: post_processor names special token '", name, "' without ids"));
      }
      for (const json& id : (*it)["ids"]) {
        (seen_sequence ? after : before).push_back(id.get<int32_t>());
      }
    } else {
      return Unsupported(absl::StrCat("post_processor template item ", item.dump()));
    }
  }
  return absl::OkStatus();
}

// tokenizer_config.json names tokens as strings or as {"content": ...} objects.
std::string TokenContent(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  return "";
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& model_dir) {
  SCULPT_ASSIGN_OR_RETURN(std::string tokenizer_json,
                          ReadFileToString(model_dir + "/tokenizer.json"));
  std::string config_json;
  const std::string config_path = model_dir + "/tokenizer_config.json";
  if (FileExists(config_path)) {
    SCULPT_ASSIGN_OR_RETURN(config_json, ReadFileToString(config_path));
  }
  auto tokenizer = FromJson(tokenizer_json, config_json);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(model_dir, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(const std::string& tokenizer_json,
                                                               const std::string& config_json) {
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  SCULPT_RETURN_IF_ERROR(tokenizer->LoadTokenizerJson(tokenizer_json));
  if (!config_json.empty()) SCULPT_RETURN_IF_ERROR(tokenizer->LoadConfigJson(config_json));
  return tokenizer;
}

absl::Status Tokenizer::LoadTokenizerJson(const std::string& text) {
  const json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return absl::InvalidArgumentError("tokenizer.json: not a JSON object");
  }
  try {
    SCULPT_ASSIGN_OR_RETURN(bpe_, Bpe::FromJson(root.value("model", json())));
    SCULPT_ASSIGN_OR_RETURN(nfc_, ParseNormalizer(root.value("normalizer", json())));
    SCULPT_ASSIGN_OR_RETURN(pre_tokenizer_, MakePreTokenizer(root.value("pre_tokenizer", json())));
    byte_level_ = pre_tokenizer_ != nullptr && pre_tokenizer_->maps_to_byte_level();
    SCULPT_RETURN_IF_ERROR(ParseDecoder(root.value("decoder", json())));
    SCULPT_RETURN_IF_ERROR(
        ParsePostProcessor(root.value("post_processor", json()), bos_template_, eos_template_));
    for (const json& entry : root.value("added_tokens", json::array())) {
      AddedToken token;
      token.id = entry.at("id").get<int32_t>();
      token.content = entry.at("content").get<std::string>();
      token.special = entry.value("special", false);
      token.single_word = entry.value("single_word", false);
      token.lstrip = entry.value("lstrip", false);
      token.rstrip = entry.value("rstrip", false);
      token.normalized = entry.value("normalized", !token.special);
      if (token.id < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer.json: added token '", token.content, "' has a negative id"));
      }
      if (token.content.empty()) continue;
      SCULPT_RETURN_IF_ERROR(ValidateUtf8(token.content, "an added token"));
      added_tokens_.push_back(std::move(token));
    }
  } catch (const json::exception& error) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", error.what()));
  }
  std::vector<const AddedToken*> raw_tokens, normalized_tokens;
  std::vector<std::string> raw_patterns, normalized_patterns;
  for (size_t i = 0; i < added_tokens_.size(); ++i) {
    const AddedToken& token = added_tokens_[i];
    added_by_id_[token.id] = i;
    added_by_content_[token.content] = i;
    if (token.normalized) {
      normalized_tokens.push_back(&token);
      normalized_patterns.push_back(nfc_ ? Nfc(token.content) : token.content);
    } else {
      raw_tokens.push_back(&token);
      raw_patterns.push_back(token.content);
    }
  }
  raw_matcher_ = std::make_unique<AddedTokenMatcher>(raw_tokens, raw_patterns);
  normalized_matcher_ = std::make_unique<AddedTokenMatcher>(normalized_tokens, normalized_patterns);
  for (int32_t id : bos_template_) {
    if (IdToToken(id) == std::nullopt) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: post_processor uses unknown token id ", id));
    }
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::LoadConfigJson(const std::string& text) {
  const json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return absl::InvalidArgumentError("tokenizer_config.json: not a JSON object");
  }
  const auto lookup = [&](const char* field) -> absl::StatusOr<int32_t> {
    const std::string content = TokenContent(root.value(field, json()));
    if (content.empty()) return -1;
    const int32_t id = TokenToId(content);
    if (id < 0) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer_config.json: ", field, " '",
                                                     content, "' is not in the vocabulary"));
    }
    return id;
  };
  SCULPT_ASSIGN_OR_RETURN(special_ids_.bos, lookup("bos_token"));
  SCULPT_ASSIGN_OR_RETURN(special_ids_.eos, lookup("eos_token"));
  SCULPT_ASSIGN_OR_RETURN(special_ids_.pad, lookup("pad_token"));
  SCULPT_ASSIGN_OR_RETURN(special_ids_.mask, lookup("mask_token"));
  const json& add_bos = root.value("add_bos_token", json());
  add_bos_token_ = add_bos.is_boolean() && add_bos.get<bool>();
  const json& chat_template = root.value("chat_template", json());
  if (chat_template.is_string()) {
    chat_template_ = chat_template.get<std::string>();
  } else if (chat_template.is_array()) {
    // Named templates: the one called "default" is the chat format.
    for (const json& named : chat_template) {
      if (named.value("name", "") == "default") chat_template_ = named.value("template", "");
    }
  }
  return absl::OkStatus();
}

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
    return added_tokens_[it->second].content;
  }
  if (const std::string* token = bpe_->TokenOf(id)) return *token;
  return std::nullopt;
}

int32_t Tokenizer::TokenToId(std::string_view token) const {
  if (auto it = added_by_content_.find(std::string(token)); it != added_by_content_.end()) {
    return added_tokens_[it->second].id;
  }
  return bpe_->IdOf(token);
}

bool Tokenizer::IsSpecial(int32_t id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added_tokens_[it->second].special;
}

int32_t Tokenizer::vocab_size() const {
  int32_t largest = bpe_->max_id();
  for (const AddedToken& token : added_tokens_) largest = std::max(largest, token.id);
  return largest + 1;
}

absl::Status Tokenizer::EncodeSegment(std::string_view text, std::vector<int32_t>& ids) const {
  std::vector<std::string> pieces = {std::string(text)};
  if (pre_tokenizer_) pre_tokenizer_->Split(pieces);
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::Get();
  std::string mapped;
  for (const std::string& piece : pieces) {
    if (byte_level_) {
      mapped.clear();
      for (char byte : piece) mapped += alphabet.Encode(static_cast<uint8_t>(byte));
      SCULPT_RETURN_IF_ERROR(bpe_->Encode(mapped, ids));
    } else {
      SCULPT_RETURN_IF_ERROR(bpe_->Encode(piece, ids));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                       bool add_special_tokens) const {
  SCULPT_RETURN_IF_ERROR(ValidateUtf8(text, "text"));
  std::vector<Segment> raw_segments;
  raw_matcher_->Split(text, raw_segments);
  std::vector<int32_t> ids = add_special_tokens ? bos_template_ : std::vector<int32_t>();
  std::vector<Segment> segments;
  for (const Segment& raw : raw_segments) {
    if (raw.token_id >= 0) {
      ids.push_back(raw.token_id);
      continue;
    }
    segments.clear();
    normalized_matcher_->Split(nfc_ ? Nfc(raw.text) : raw.text, segments);
    for (const Segment& segment : segments) {
      if (segment.token_id >= 0) {
        ids.push_back(segment.token_id);
      } else {
        SCULPT_RETURN_IF_ERROR(EncodeSegment(segment.text, ids));
      }
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), eos_template_.begin(), eos_template_.end());
  return ids;
}

absl::StatusOr<std::string> Tokenizer::TokenBytes(int32_t id, bool skip_special_tokens) const {
  std::optional<std::string> token = IdToToken(id);
  if (!token) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", id, " is outside the vocabulary [0, ", vocab_size(), ")"));
  }
  if (skip_special_tokens && IsSpecial(id)) return std::string();
  // HF's ByteLevel decoder maps a token back through the alphabet, or keeps its UTF-8 bytes
  // when some character is outside it (added tokens such as "<tool_call> ").
  std::string bytes;
  if (!ByteLevelAlphabet::Get().Decode(*token, bytes)) return *token;
  return bytes;
}

absl::StatusOr<std::string> Tokenizer::Decode(std::span<const int32_t> ids,
                                              bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    SCULPT_ASSIGN_OR_RETURN(std::string token_bytes, TokenBytes(id, skip_special_tokens));
    bytes += token_bytes;
  }
  return DecodeUtf8Lossy(bytes);
}

absl::StatusOr<std::string> IncrementalDecoder::Push(std::span<const int32_t> ids) {
  std::string bytes;
  for (int32_t id : ids) {
    SCULPT_ASSIGN_OR_RETURN(std::string token_bytes,
                            tokenizer_.TokenBytes(id, skip_special_tokens_));
    bytes += token_bytes;
  }
  return stream_.Push(bytes);
}

}  // namespace sculpt
