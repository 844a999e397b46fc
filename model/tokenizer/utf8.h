// UTF-8 validation, byte-level BPE's byte<->character table, and lossy decoding that replaces
// invalid sequences exactly as Rust's String::from_utf8_lossy (what HF tokenizers uses).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace sculpt {

// OK, or INVALID_ARGUMENT naming the byte offset of the first invalid sequence.
absl::Status ValidateUtf8(std::string_view text, std::string_view what);

// Appends the UTF-8 encoding of `code_point`.
void AppendUtf8(char32_t code_point, std::string& out);

// Decodes the code point at `text[*offset]` and advances `*offset`; the text must be valid.
char32_t NextCodePoint(std::string_view text, size_t* offset);

// GPT-2's byte-level alphabet: each byte maps to one printable character so that BPE works on
// text without control or whitespace characters.
class ByteLevelAlphabet {
 public:
  static const ByteLevelAlphabet& Get();

  // The UTF-8 encoding of the character standing for `byte`.
  const std::string& Encode(uint8_t byte) const { return byte_to_text_[byte]; }
  // Maps a token's characters back to bytes; false when a character is not in the alphabet.
  bool Decode(std::string_view token, std::string& bytes) const;

 private:
  ByteLevelAlphabet();
  std::array<std::string, 256> byte_to_text_;
  std::array<int16_t, 324> char_to_byte_;  // the alphabet's characters are all below U+0144
};

// Streaming UTF-8 decoding for drafts: bytes go in as tokens are decoded, text comes out as soon
// as it is complete. An incomplete sequence at the end is held back until more bytes arrive or
// Finish(); invalid sequences become U+FFFD. The concatenated output equals DecodeUtf8Lossy of
// all the bytes at once.
class Utf8StreamDecoder {
 public:
  // Appends the bytes and returns the text that is now complete.
  std::string Push(std::string_view bytes);
  // Returns what is left (replacement characters for a dangling incomplete sequence).
  std::string Finish();

 private:
  std::string pending_;
};

// Replaces each maximal invalid subpart with U+FFFD (the Unicode "best practice" Rust follows).
std::string DecodeUtf8Lossy(std::string_view bytes);

}  // namespace sculpt
