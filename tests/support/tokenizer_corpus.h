// The tokenizer fixture corpus's "large" entry, rebuilt as tests/tokenizers/corpus.json
// describes it: every other text joined by "\n", repeated whole until >= 1,000,000 bytes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace sculpt::testing {

inline std::string BuildLargeTokenizerText(const nlohmann::json& corpus) {
  std::string joined;
  bool first = true;
  for (const auto& entry : corpus) {
    if (!entry.contains("text")) continue;
    if (!first) joined += '\n';
    joined += entry["text"].get<std::string>();
    first = false;
  }
  const size_t repeats = (1000000 + joined.size() - 1) / joined.size();
  std::string large;
  large.reserve(repeats * joined.size());
  for (size_t i = 0; i < repeats; ++i) large += joined;
  return large;
}

}  // namespace sculpt::testing
