#include "model/tokenizer/added_tokens.h"

#include <utf8proc.h>

#include <algorithm>

#include "model/tokenizer.h"
#include "model/tokenizer/utf8.h"

namespace sculpt {
namespace {

// Unicode White_Space, what `\s` means in the Rust regex HF uses for lstrip/rstrip.
bool IsWhiteSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Rust regex's Unicode `\w`: letters, marks, decimal digits, connector punctuation and the
// joiners (the Alphabetic property is approximated by the letter categories and Nl).
bool IsWordCharacter(char32_t c) {
  if (c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

// The last code point of a non-empty valid UTF-8 string.
char32_t LastCodePoint(std::string_view text) {
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
  return NextCodePoint(text, &start);
}

// Where the run of whitespace that ends `text` begins.
size_t TrailingSpaceStart(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    size_t cursor = start;
    if (!IsWhiteSpace(NextCodePoint(text, &cursor))) break;
    end = start;
  }
  return end;
}

// The length of the run of whitespace that starts `text`.
size_t LeadingSpaceLength(std::string_view text) {
  size_t offset = 0;
  while (offset < text.size()) {
    size_t next = offset;
    if (!IsWhiteSpace(NextCodePoint(text, &next))) break;
    offset = next;
  }
  return offset;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<const AddedToken*> tokens,
                                     std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)), by_first_byte_(256) {
  for (size_t i = 0; i < patterns_.size(); ++i) {
    if (patterns_[i].empty()) continue;
    by_first_byte_[static_cast<uint8_t>(patterns_[i][0])].push_back(static_cast<int>(i));
  }
  for (auto& candidates : by_first_byte_) {
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](int a, int b) { return patterns_[a].size() > patterns_[b].size(); });
  }
}

void AddedTokenMatcher::Split(std::string_view text, std::vector<Segment>& out) const {
  size_t segment_start = 0;  // start of the text not yet emitted
  size_t position = 0;
  while (position < text.size()) {
    // Leftmost-longest: the first position with a match, the longest pattern there.
    int found = -1;
    for (int candidate : by_first_byte_[static_cast<uint8_t>(text[position])]) {
      if (text.substr(position, patterns_[candidate].size()) == patterns_[candidate]) {
        found = candidate;
        break;
      }
    }
    if (found < 0) {
      ++position;
      continue;
    }
    const AddedToken& token = *tokens_[found];
    size_t start = position;
    size_t stop = position + patterns_[found].size();
    position = stop;  // a discarded match is still stepped over, as HF's iterator does
    if (token.single_word) {
      const bool word_before = start > 0 && IsWordCharacter(LastCodePoint(text.substr(0, start)));
      size_t after = stop;
      const bool word_after = stop < text.size() && IsWordCharacter(NextCodePoint(text, &after));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) start = std::max(TrailingSpaceStart(text.substr(0, start)), segment_start);
    if (token.rstrip) stop += LeadingSpaceLength(text.substr(stop));
    if (segment_start < start) {
      out.push_back({std::string(text.substr(segment_start, start - segment_start)), -1});
    }
    out.push_back({std::string(text.substr(start, stop - start)), token.id});
    segment_start = stop;
    position = std::max(position, stop);
  }
  if (segment_start < text.size()) {
    out.push_back({std::string(text.substr(segment_start)), -1});
  }
}

}  // namespace sculpt
