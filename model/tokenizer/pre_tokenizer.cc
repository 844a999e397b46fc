#include "model/tokenizer/pre_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/tokenizer/regex.h"

namespace sculpt {
namespace {

using nlohmann::json;

// GPT-2's pre-tokenization regex, built into HF's ByteLevel pre-tokenizer.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

absl::Status Unsupported(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: unsupported ", what));
}

// How the text matched by a Split pattern is kept (HF's SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits `piece` around the matches of `regex` and appends the parts to `out`.
void SplitByMatches(const Regex& regex, SplitBehavior behavior, const std::string& piece,
                    std::vector<std::string>& out) {
  const auto matches = regex.FindAll(piece);
  // (begin, end, is_match) covering the whole piece.
  std::vector<std::tuple<size_t, size_t, bool>> parts;
  size_t previous = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > previous) parts.emplace_back(previous, begin, false);
    parts.emplace_back(begin, end, true);
    previous = end;
  }
  if (previous < piece.size()) parts.emplace_back(previous, piece.size(), false);

  std::vector<std::pair<size_t, size_t>> kept;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& [begin, end, is_match] : parts) {
        if (!is_match) kept.emplace_back(begin, end);
      }
      break;
    case SplitBehavior::kIsolated:
      for (const auto& [begin, end, is_match] : parts) kept.emplace_back(begin, end);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_was_text = false;
      for (const auto& [begin, end, is_match] : parts) {
        if (is_match && previous_was_text) {
          kept.back().second = end;
        } else {
          kept.emplace_back(begin, end);
        }
        previous_was_text = !is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_was_match = false;
      for (const auto& [begin, end, is_match] : parts) {
        if (!is_match && previous_was_match) {
          kept.back().second = end;
        } else {
          kept.emplace_back(begin, end);
        }
        previous_was_match = is_match;
      }
      break;
    }
    case SplitBehavior::kContiguous: {
      bool previous_was_match = false;
      for (const auto& [begin, end, is_match] : parts) {
        if (is_match && previous_was_match) {
          kept.back().second = end;
        } else {
          kept.emplace_back(begin, end);
        }
        previous_was_match = is_match;
      }
      break;
    }
  }
  for (const auto& [begin, end] : kept) {
    if (end > begin) out.push_back(piece.substr(begin, end - begin));
  }
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex regex, SplitBehavior behavior)
      : regex_(std::move(regex)), behavior_(behavior) {}
  void Split(std::vector<std::string>& pieces) const override {
    std::vector<std::string> out;
    for (const std::string& piece : pieces) SplitByMatches(regex_, behavior_, piece, out);
    pieces = std::move(out);
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void Split(std::vector<std::string>& pieces) const override {
    std::vector<std::string> out;
    for (std::string& piece : pieces) {
      if (add_prefix_space_ && (piece.empty() || piece[0] != ' ')) piece.insert(0, 1, ' ');
      if (regex_) {
        SplitByMatches(*regex_, SplitBehavior::kIsolated, piece, out);
      } else {
        out.push_back(std::move(piece));
      }
    }
    pieces = std::move(out);
  }
  bool maps_to_byte_level() const override { return true; }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void Split(std::vector<std::string>& pieces) const override {
    for (const auto& step : steps_) step->Split(pieces);
  }
  bool maps_to_byte_level() const override {
    for (const auto& step : steps_) {
      if (step->maps_to_byte_level()) return true;
    }
    return false;
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

absl::StatusOr<bool> BoolField(const json& config, const char* field, bool default_value) {
  auto it = config.find(field);
  if (it == config.end() || it->is_null()) return default_value;
  if (!it->is_boolean()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: pre_tokenizer field '", field, "' must be true or false"));
  }
  return it->get<bool>();
}

absl::StatusOr<SplitBehavior> ParseBehavior(const json& config) {
  const std::string behavior = config.value("behavior", "");
  if (behavior == "Removed") return SplitBehavior::kRemoved;
  if (behavior == "Isolated") return SplitBehavior::kIsolated;
  if (behavior == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (behavior == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (behavior == "Contiguous") return SplitBehavior::kContiguous;
  return Unsupported(absl::StrCat("Split behavior '", behavior, "'"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const json& config) {
  if (config.is_null()) return nullptr;
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    return Unsupported("pre_tokenizer: not an object with a 'type'");
  }
  const std::string type = config["type"];
  if (type == "Sequence") {
    if (!config.contains("pretokenizers") || !config["pretokenizers"].is_array()) {
      return Unsupported("pre_tokenizer Sequence without a 'pretokenizers' list");
    }
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const json& step : config["pretokenizers"]) {
      // Byte-level mapping happens after all splitting here, so nothing may follow it.
      if (!steps.empty() && steps.back()->maps_to_byte_level()) {
        return Unsupported("pre_tokenizer Sequence with a step after ByteLevel");
      }
      SCULPT_ASSIGN_OR_RETURN(auto made, MakePreTokenizer(step));
      if (made) steps.push_back(std::move(made));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "ByteLevel") {
    SCULPT_ASSIGN_OR_RETURN(bool add_prefix_space, BoolField(config, "add_prefix_space", true));
    SCULPT_ASSIGN_OR_RETURN(bool use_regex, BoolField(config, "use_regex", true));
    std::unique_ptr<Regex> regex;
    if (use_regex) {
      SCULPT_ASSIGN_OR_RETURN(Regex compiled, Regex::Compile(kGpt2Pattern));
      regex = std::make_unique<Regex>(std::move(compiled));
    }
    return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, std::move(regex));
  }
  if (type == "Split") {
    SCULPT_ASSIGN_OR_RETURN(bool invert, BoolField(config, "invert", false));
    if (invert) return Unsupported("pre_tokenizer Split with invert: true");
    SCULPT_ASSIGN_OR_RETURN(SplitBehavior behavior, ParseBehavior(config));
    const json& pattern = config.value("pattern", json());
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      SCULPT_ASSIGN_OR_RETURN(Regex regex, Regex::Compile(pattern["Regex"].get<std::string>()));
      return std::make_unique<SplitPreTokenizer>(std::move(regex), behavior);
    }
    if (pattern.contains("String") && pattern["String"].is_string()) {
      SCULPT_ASSIGN_OR_RETURN(Regex regex, Regex::Literal(pattern["String"].get<std::string>()));
      return std::make_unique<SplitPreTokenizer>(std::move(regex), behavior);
    }
    return Unsupported("pre_tokenizer Split without a 'pattern' of Regex or String");
  }
  if (type == "Digits") {
    SCULPT_ASSIGN_OR_RETURN(bool individual, BoolField(config, "individual_digits", false));
    // Rust's char::is_numeric, which HF uses, is the Unicode N categories.
    SCULPT_ASSIGN_OR_RETURN(Regex regex, Regex::Compile(individual ? "\\p{N}" : "\\p{N}+"));
    return std::make_unique<SplitPreTokenizer>(std::move(regex), SplitBehavior::kIsolated);
  }
  return Unsupported(absl::StrCat("pre_tokenizer type '", type, "'"));
}

}  // namespace sculpt
