// libFuzzer target for the tokenizer: arbitrary bytes as text and as token ids, against the four
// fixture tokenizers. Checked properties: no crash or sanitizer report; valid UTF-8 encodes and
// decodes back exactly (lossless styles); invalid UTF-8 is INVALID_ARGUMENT; decoding any ids
// either fails cleanly or gives valid UTF-8, and streaming it gives the same text.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace {

using sculpt::Tokenizer;

struct Style {
  std::unique_ptr<Tokenizer> tokenizer;
  bool lossless;
};

std::vector<Style>& Styles() {
  static std::vector<Style> styles = [] {
    std::vector<Style> loaded;
    for (const auto& [name, lossless] :
         std::vector<std::pair<std::string, bool>>{{"llada-style", true},
                                                   {"qwen2-style", false},
                                                   {"gpt2-style", true},
                                                   {"gpt2-prefix-digits", false}}) {
      auto tokenizer =
          Tokenizer::Load(std::string(SCULPT_SOURCE_DIR) + "/tests/tokenizers/" + name);
      if (!tokenizer.ok()) {
        std::fprintf(stderr, "cannot load %s: %s\n", name.c_str(),
                     std::string(tokenizer.status().message()).c_str());
        std::abort();
      }
      loaded.push_back({std::move(*tokenizer), lossless});
    }
    return loaded;
  }();
  return styles;
}

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Style& style = Styles()[data[0] % Styles().size()];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);

  const bool valid = sculpt::ValidateUtf8(text, "text").ok();
  auto ids = style.tokenizer->Encode(text, /*add_special_tokens=*/false);
  Check(ids.ok() == valid, "Encode succeeds exactly on valid UTF-8");
  if (ids.ok()) {
    auto decoded = style.tokenizer->Decode(*ids);
    Check(decoded.ok(), "decoding encoded ids succeeds");
    if (style.lossless) Check(*decoded == text, "decode(encode(text)) == text");
  }

  // The same bytes as little-endian 16-bit ids, some out of the vocabulary.
  std::vector<int32_t> raw_ids;
  for (size_t i = 1; i + 1 < size; i += 2) raw_ids.push_back(data[i] | (data[i + 1] << 8));
  const bool skip = data[0] & 0x80;
  auto whole = style.tokenizer->Decode(raw_ids, skip);
  bool all_known = true;
  for (int32_t id : raw_ids) all_known &= style.tokenizer->IdToToken(id).has_value();
  Check(whole.ok() == all_known, "Decode fails exactly on unknown ids");
  if (whole.ok()) {
    Check(sculpt::ValidateUtf8(*whole, "decoded").ok(), "decoded text is valid UTF-8");
    sculpt::IncrementalDecoder incremental(*style.tokenizer, skip);
    std::string streamed;
    for (int32_t id : raw_ids) {
      auto piece = incremental.Push({&id, 1});
      Check(piece.ok(), "incremental decoding of known ids succeeds");
      streamed += *piece;
    }
    streamed += incremental.Finish();
    Check(streamed == *whole, "streamed text == whole decode");
  }
  return 0;
}
