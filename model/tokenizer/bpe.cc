#include "model/tokenizer/bpe.h"

#include <queue>

#include "absl/strings/str_cat.h"
#include "model/tokenizer/utf8.h"

namespace sculpt {
namespace {

using nlohmann::json;

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

absl::Status ModelError(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: model: ", what));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Bpe>> Bpe::FromJson(const json& model) {
  if (!model.is_object()) return ModelError("missing");
  const std::string type = model.value("type", "BPE");
  if (type != "BPE") return ModelError(absl::StrCat("unsupported type '", type, "' (only BPE)"));
  for (const char* option : {"continuing_subword_prefix", "end_of_word_suffix", "dropout"}) {
    auto it = model.find(option);
    if (it != model.end() && !it->is_null() &&
        !(it->is_string() && it->get<std::string>().empty())) {
      return ModelError(absl::StrCat("unsupported option '", option, "' = ", it->dump()));
    }
  }
  if (model.value("byte_fallback", false)) return ModelError("unsupported option 'byte_fallback'");

  auto bpe = std::make_unique<Bpe>();
  bpe->ignore_merges_ = model.value("ignore_merges", false);
  const json& vocab = model.value("vocab", json());
  if (!vocab.is_object() || vocab.empty()) return ModelError("'vocab' must be a non-empty object");
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      return ModelError(absl::StrCat("vocab entry '", token, "' has an invalid id ", id.dump()));
    }
    const auto value = static_cast<int32_t>(id.get<int64_t>());
    if (static_cast<size_t>(value) >= bpe->id_to_token_.size()) {
      bpe->id_to_token_.resize(value + 1);
      bpe->has_id_.resize(value + 1, false);
    }
    bpe->id_to_token_[value] = token;
    bpe->has_id_[value] = true;
    bpe->token_to_id_[token] = value;
  }

  const json& merges = model.value("merges", json::array());
  if (!merges.is_array()) return ModelError("'merges' must be a list");
  int32_t rank = 0;
  for (const json& merge : merges) {
    std::string left, right;
    if (merge.is_string()) {
      const std::string text = merge;
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        return ModelError(absl::StrCat("merge ", rank, " '", text, "' is not two tokens"));
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      left = merge[0];
      right = merge[1];
    } else {
      return ModelError(absl::StrCat("merge ", rank, " is neither \"a b\" nor [\"a\", \"b\"]"));
    }
    const int32_t left_id = bpe->IdOf(left);
    const int32_t right_id = bpe->IdOf(right);
    const int32_t merged_id = bpe->IdOf(left + right);
    if (left_id < 0 || right_id < 0 || merged_id < 0) {
      return ModelError(absl::StrCat("merge ", rank, " ('", left, "', '", right,
                                     "') uses a token missing from the vocabulary"));
    }
    // A pair listed twice keeps its last rank, as HF's map construction does.
    bpe->merges_.insert_or_assign(PairKey(left_id, right_id), std::make_pair(rank, merged_id));
    ++rank;
  }
  return bpe;
}

const std::string* Bpe::TokenOf(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= has_id_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

int32_t Bpe::IdOf(std::string_view token) const {
  auto it = token_to_id_.find(std::string(token));
  return it == token_to_id_.end() ? -1 : it->second;
}

absl::Status Bpe::Encode(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return absl::OkStatus();
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return absl::OkStatus();
    }
  }
  std::vector<int32_t> word_ids;
  if (absl::Status status = EncodeUncached(word, word_ids); !status.ok()) return status;
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kCacheCapacity) cache_.clear();
  cache_.emplace(std::string(word), std::move(word_ids));
  return absl::OkStatus();
}

absl::Status Bpe::EncodeUncached(std::string_view word, std::vector<int32_t>& ids) const {
  if (ignore_merges_) {
    if (int32_t id = IdOf(word); id >= 0) {
      ids.push_back(id);
      return absl::OkStatus();
    }
  }
  // One symbol per character, linked as a list so merges are O(1); a heap of candidate pairs
  // ordered by (rank, position) merges the lowest rank first, leftmost on ties.
  struct Symbol {
    int32_t id;
    int prev;
    int next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  size_t offset = 0;
  while (offset < word.size()) {
    const size_t start = offset;
    NextCodePoint(word, &offset);
    const int32_t id = IdOf(word.substr(start, offset - start));
    if (id < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer: no token for the character '",
          std::string(word.substr(start, offset - start)), "' (the model has no unknown token)"));
    }
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, true});
  }
  symbols.back().next = -1;

  struct Candidate {
    int32_t rank;
    int left;  // index of the left symbol
    int32_t left_id;
    int32_t right_id;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : left > other.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto push_pair = [&](int left) {
    if (left < 0) return;
    const int right = symbols[left].next;
    if (right < 0) return;
    auto it = merges_.find(PairKey(symbols[left].id, symbols[right].id));
    if (it != merges_.end())
      heap.push({it->second.first, left, symbols[left].id, symbols[right].id});
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) push_pair(i);

  while (!heap.empty()) {
    const Candidate candidate = heap.top();
    heap.pop();
    Symbol& left = symbols[candidate.left];
    // Skip candidates made stale by an earlier merge of either symbol.
    if (!left.alive || left.id != candidate.left_id || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    if (right.id != candidate.right_id) continue;
    left.id = merges_.at(PairKey(candidate.left_id, candidate.right_id)).second;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = candidate.left;
    push_pair(left.prev);
    push_pair(candidate.left);
  }
  for (int i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
  return absl::OkStatus();
}

}  // namespace sculpt
