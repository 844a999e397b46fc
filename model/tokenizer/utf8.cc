#include "model/tokenizer/utf8.h"

#include "absl/strings/str_cat.h"

namespace sculpt {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length of the valid sequence starting at bytes[0] (1-4), or -n when the first n bytes are a
// maximal invalid subpart, or 0 when the bytes so far are a valid but incomplete prefix.
int ScanSequence(std::string_view bytes) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  const uint8_t lead = byte(0);
  if (lead < 0x80) return 1;
  int length;
  uint8_t low = 0x80, high = 0xBF;  // the allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return -1;
  }
  for (int i = 1; i < length; ++i) {
    if (static_cast<size_t>(i) >= bytes.size()) return 0;
    const uint8_t next = byte(i);
    const bool ok = i == 1 ? (next >= low && next <= high) : (next >= 0x80 && next <= 0xBF);
    if (!ok) return -i;
  }
  return length;
}

// Decodes as much of `bytes` as is complete; returns how many bytes were consumed. With
// `final`, an incomplete tail is replaced instead of left.
size_t DecodeInto(std::string_view bytes, bool final, std::string& out) {
  size_t offset = 0;
  while (offset < bytes.size()) {
    const int scanned = ScanSequence(bytes.substr(offset));
    if (scanned > 0) {
      out.append(bytes.substr(offset, scanned));
      offset += scanned;
    } else if (scanned < 0) {
      out.append(kReplacement);
      offset += -scanned;
    } else if (final) {
      out.append(kReplacement);  // the whole incomplete tail is one maximal subpart
      return bytes.size();
    } else {
      return offset;
    }
  }
  return offset;
}

}  // namespace

absl::Status ValidateUtf8(std::string_view text, std::string_view what) {
  size_t offset = 0;
  while (offset < text.size()) {
    const int scanned = ScanSequence(text.substr(offset));
    if (scanned <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(what), " is not valid UTF-8 (invalid byte 0x",
                       absl::Hex(static_cast<uint8_t>(text[offset])), " at offset ", offset, ")"));
    }
    offset += scanned;
  }
  return absl::OkStatus();
}

void AppendUtf8(char32_t code_point, std::string& out) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

char32_t NextCodePoint(std::string_view text, size_t* offset) {
  const auto byte = [&](size_t i) { return static_cast<char32_t>(static_cast<uint8_t>(text[i])); };
  const char32_t lead = byte(*offset);
  if (lead < 0x80) {
    *offset += 1;
    return lead;
  }
  if (lead < 0xE0) {
    const char32_t cp = ((lead & 0x1F) << 6) | (byte(*offset + 1) & 0x3F);
    *offset += 2;
    return cp;
  }
  if (lead < 0xF0) {
    const char32_t cp =
        ((lead & 0x0F) << 12) | ((byte(*offset + 1) & 0x3F) << 6) | (byte(*offset + 2) & 0x3F);
    *offset += 3;
    return cp;
  }
  const char32_t cp = ((lead & 0x07) << 18) | ((byte(*offset + 1) & 0x3F) << 12) |
                      ((byte(*offset + 2) & 0x3F) << 6) | (byte(*offset + 3) & 0x3F);
  *offset += 4;
  return cp;
}

const ByteLevelAlphabet& ByteLevelAlphabet::Get() {
  static const ByteLevelAlphabet alphabet;
  return alphabet;
}

ByteLevelAlphabet::ByteLevelAlphabet() {
  char_to_byte_.fill(-1);
  // Printable Latin-1 bytes stand for themselves; the others (controls, space, soft hyphen…)
  // take the characters from U+0100 upwards, in byte order.
  char32_t next_free = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    const bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
                           (byte >= 0xAE && byte <= 0xFF);
    const char32_t code_point = printable ? static_cast<char32_t>(byte) : next_free++;
    AppendUtf8(code_point, byte_to_text_[byte]);
    char_to_byte_[code_point] = static_cast<int16_t>(byte);
  }
}

bool ByteLevelAlphabet::Decode(std::string_view token, std::string& bytes) const {
  const size_t start = bytes.size();
  size_t offset = 0;
  while (offset < token.size()) {
    const char32_t code_point = NextCodePoint(token, &offset);
    if (code_point >= char_to_byte_.size() || char_to_byte_[code_point] < 0) {
      bytes.resize(start);
      return false;
    }
    bytes.push_back(static_cast<char>(char_to_byte_[code_point]));
  }
  return true;
}

std::string Utf8StreamDecoder::Push(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  const size_t consumed = DecodeInto(pending_, /*final=*/false, out);
  pending_.erase(0, consumed);
  return out;
}

std::string Utf8StreamDecoder::Finish() {
  std::string out;
  DecodeInto(pending_, /*final=*/true, out);
  pending_.clear();
  return out;
}

std::string DecodeUtf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  DecodeInto(bytes, /*final=*/true, out);
  return out;
}

}  // namespace sculpt
