// The BPE model of tokenizer.json: vocabulary, merge ranks and the merge loop, with a cache of
// frequent words.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace sculpt {

class Bpe {
 public:
  // From a tokenizer.json `model` object of type BPE (merges as "a b" strings or [a, b] pairs).
  static absl::StatusOr<std::unique_ptr<Bpe>> FromJson(const nlohmann::json& model);

  // Appends the ids of one pre-tokenized word (already in the byte-level alphabet).
  // INVALID_ARGUMENT when a character has no token (only possible without byte-level mapping).
  absl::Status Encode(std::string_view word, std::vector<int32_t>& ids) const;

  // The token string of `id`, or nullptr when the vocabulary has no such id.
  const std::string* TokenOf(int32_t id) const;
  // The id of `token`, or -1.
  int32_t IdOf(std::string_view token) const;
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  absl::Status EncodeUncached(std::string_view word, std::vector<int32_t>& ids) const;

  std::unordered_map<std::string, int32_t> token_to_id_;
  std::vector<std::string> id_to_token_;  // empty strings for ids the vocabulary skips
  std::vector<bool> has_id_;
  // (left id, right id) -> (rank, merged id).
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  bool ignore_merges_ = false;

  static constexpr size_t kCacheCapacity = 1 << 16;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace sculpt
