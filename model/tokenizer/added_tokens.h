// Splitting text around added tokens (special tokens such as <|endoftext|>) before BPE, with
// HF's semantics: leftmost-longest matches, single_word, lstrip and rstrip.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sculpt {

struct AddedToken;

// A piece of text, or an added token (token_id >= 0) with the text it consumed.
struct Segment {
  std::string text;
  int32_t token_id = -1;
};

class AddedTokenMatcher {
 public:
  // `patterns[i]` is what token `tokens[i]` matches (its content, normalized or not).
  AddedTokenMatcher(std::vector<const AddedToken*> tokens, std::vector<std::string> patterns);
  bool empty() const { return tokens_.empty(); }

  // Splits `text` into text segments and added-token segments, appending them to `out`.
  void Split(std::string_view text, std::vector<Segment>& out) const;

 private:
  std::vector<const AddedToken*> tokens_;
  std::vector<std::string> patterns_;
  std::vector<std::vector<int>> by_first_byte_;  // candidate indices, longest pattern first
};

}  // namespace sculpt
