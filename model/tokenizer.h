// Hugging Face tokenizer.json (byte-level BPE families: LLaDA, Qwen2/Dream, GPT-2) and
// tokenizer_config.json, encoding and decoding exactly as HF `tokenizers` does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "model/tokenizer/added_tokens.h"
#include "model/tokenizer/utf8.h"

namespace sculpt {

class Bpe;
class PreTokenizer;
class Regex;

// An entry of tokenizer.json's `added_tokens`.
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// The special tokens named by tokenizer_config.json (ids; -1 when absent).
struct SpecialTokenIds {
  int32_t bos = -1;
  int32_t eos = -1;
  int32_t pad = -1;
  int32_t mask = -1;
};

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json. Unsupported
  // components are INVALID_ARGUMENT naming them.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& model_dir);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(const std::string& tokenizer_json,
                                                             const std::string& config_json);
  ~Tokenizer();

  // `text` must be valid UTF-8 (INVALID_ARGUMENT otherwise). With add_special_tokens the
  // post-processor runs (e.g. prepends BOS), as HF's encode() does by default.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special_tokens = true) const;
  // INVALID_ARGUMENT for an id outside the vocabulary.
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids,
                                     bool skip_special_tokens = false) const;
  // The bytes one token contributes to decoded text (not necessarily complete UTF-8).
  absl::StatusOr<std::string> TokenBytes(int32_t id, bool skip_special_tokens = false) const;

  // The token string of `id` as the vocabulary spells it (byte-level alphabet), or nullopt.
  std::optional<std::string> IdToToken(int32_t id) const;
  // The id of an exact token or added token string, or -1.
  int32_t TokenToId(std::string_view token) const;
  bool IsSpecial(int32_t id) const;

  const SpecialTokenIds& special_ids() const { return special_ids_; }
  const std::string& chat_template() const { return chat_template_; }
  bool add_bos_token() const { return add_bos_token_; }
  int32_t vocab_size() const;  // one past the largest id

 private:
  Tokenizer();
  absl::Status LoadTokenizerJson(const std::string& text);
  absl::Status LoadConfigJson(const std::string& text);
  absl::Status EncodeSegment(std::string_view text, std::vector<int32_t>& ids) const;

  std::unique_ptr<Bpe> bpe_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  bool byte_level_ = false;
  bool nfc_ = false;
  std::vector<AddedToken> added_tokens_;
  absl::flat_hash_map<int32_t, size_t> added_by_id_;           // index into added_tokens_
  absl::flat_hash_map<std::string, size_t> added_by_content_;  // index into added_tokens_
  // HF matches added tokens twice: those with normalized=false on the raw text, then the
  // others on the normalized remainder.
  std::unique_ptr<AddedTokenMatcher> raw_matcher_;
  std::unique_ptr<AddedTokenMatcher> normalized_matcher_;
  std::vector<int32_t> bos_template_;  // ids the post-processor puts before the sequence
  std::vector<int32_t> eos_template_;  // ... and after it
  SpecialTokenIds special_ids_;
  std::string chat_template_;
  bool add_bos_token_ = false;
};

// Streams the text of a growing token sequence (draft or committed prefix): each call returns
// only complete UTF-8, and the concatenation equals Decode() of all tokens at once.
class IncrementalDecoder {
 public:
  IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
      : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}
  absl::StatusOr<std::string> Push(std::span<const int32_t> ids);
  std::string Finish() { return stream_.Finish(); }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  Utf8StreamDecoder stream_;
};

}  // namespace sculpt
