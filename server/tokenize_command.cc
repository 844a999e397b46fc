// `sculpt tokenize` and `sculpt detokenize`: the model's tokenizer from the command line, one
// text (or id list) or a JSON-lines file of them.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "model/tokenizer.h"
#include "server/commands.h"
#include "server/flags.h"
#include "server/served_model.h"

namespace sculpt {
namespace {

using nlohmann::json;

// Runs `handle` on every line of a JSON-lines file, in order, stopping at the first error.
template <typename Handle>
absl::Status ForEachJsonLine(const std::string& path, Handle&& handle) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open --input-jsonl file ", path));
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": not valid JSON"));
    }
    if (absl::Status status = handle(value); !status.ok()) {
      return absl::Status(status.code(), absl::StrCat(path, ":", number, ": ", status.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status Tokenize(const FlagSet& flags) {
  if (flags.GetString("model").empty())
    return absl::InvalidArgumentError("--model DIR is required");
  const bool has_text = flags.Has("text");
  const bool has_file = flags.Has("input-jsonl");
  if (has_text == has_file) {
    return absl::InvalidArgumentError("give exactly one of --text TEXT and --input-jsonl FILE");
  }
  auto model_or = LoadServedModel(flags.GetString("model"), nullptr, ModelParts::kTokenizer);
  if (!model_or.ok()) return NotUsage(model_or.status());
  const Tokenizer& tokenizer = *(*model_or)->tokenizer;
  const bool add_special_tokens = !flags.GetBool("no-special-tokens");

  if (has_file) {
    return ForEachJsonLine(flags.GetString("input-jsonl"), [&](const json& value) -> absl::Status {
      if (!value.is_string()) return absl::InvalidArgumentError("each line must be a JSON string");
      // The JSON parser accepts only valid UTF-8, so no check is skipped here.
      SCULPT_ASSIGN_OR_RETURN(auto ids,
                              tokenizer.Encode(value.get<std::string>(), add_special_tokens));
      std::cout << json{{"ids", ids}}.dump() << "\n";
      return absl::OkStatus();
    });
  }
  SCULPT_ASSIGN_OR_RETURN(auto ids, tokenizer.Encode(flags.GetString("text"), add_special_tokens));
  if (flags.GetBool("json")) {
    json tokens = json::array();
    for (int32_t id : ids) tokens.push_back(*tokenizer.IdToToken(id));
    std::cout << json{{"ids", ids}, {"tokens", tokens}}.dump() << "\n";
  } else {
    std::cout << absl::StrJoin(ids, ",") << "\n";
  }
  return absl::OkStatus();
}

absl::Status Detokenize(const FlagSet& flags) {
  if (flags.GetString("model").empty())
    return absl::InvalidArgumentError("--model DIR is required");
  const bool has_ids = flags.Has("ids");
  const bool has_file = flags.Has("input-jsonl");
  if (has_ids == has_file) {
    return absl::InvalidArgumentError("give exactly one of --ids IDS and --input-jsonl FILE");
  }
  auto model_or = LoadServedModel(flags.GetString("model"), nullptr, ModelParts::kTokenizer);
  if (!model_or.ok()) return NotUsage(model_or.status());
  const Tokenizer& tokenizer = *(*model_or)->tokenizer;
  const bool skip_special_tokens = flags.GetBool("skip-special-tokens");
  // JSON output escapes what a terminal should not see raw; error="replace" cannot fail since
  // decoded text is valid UTF-8.
  const auto dump = [](const std::string& text) {
    return json{{"text", text}}.dump(-1, ' ', false, json::error_handler_t::replace);
  };

  if (has_file) {
    return ForEachJsonLine(flags.GetString("input-jsonl"), [&](const json& value) -> absl::Status {
      if (!value.is_array())
        return absl::InvalidArgumentError("each line must be a JSON list of ids");
      std::vector<int32_t> ids;
      for (const json& id : value) {
        if (!id.is_number_integer()) return absl::InvalidArgumentError("ids must be integers");
        ids.push_back(id.get<int32_t>());
      }
      SCULPT_ASSIGN_OR_RETURN(std::string text, tokenizer.Decode(ids, skip_special_tokens));
      std::cout << dump(text) << "\n";
      return absl::OkStatus();
    });
  }
  SCULPT_ASSIGN_OR_RETURN(std::vector<int32_t> ids, flags.GetIntList("ids"));
  SCULPT_ASSIGN_OR_RETURN(std::string text, tokenizer.Decode(ids, skip_special_tokens));
  if (flags.GetBool("json")) {
    std::cout << dump(text) << "\n";
  } else {
    std::cout << text << "\n";
  }
  return absl::OkStatus();
}

FlagSet CommonFlags() {
  FlagSet flags;
  flags.Add("model", "DIR", "", "model directory with tokenizer.json; required");
  flags.Add("input-jsonl", "FILE", "",
            "many inputs: one JSON value per line, one JSON object out per line");
  flags.Add("json", "", "", "print JSON instead of plain text");
  flags.Add("help", "", "", "show this help");
  return flags;
}

}  // namespace

int RunTokenizeCommand(const std::vector<std::string>& args) {
  FlagSet flags = CommonFlags();
  flags.Add("text", "TEXT", "", "the text to encode (valid UTF-8)");
  flags.Add("no-special-tokens", "", "", "skip the post-processor's special tokens (e.g. BOS)");
  return RunCommand(
      "tokenize",
      "Usage: sculpt tokenize --model DIR (--text TEXT | --input-jsonl FILE)\n\n"
      "Encodes text exactly as Hugging Face tokenizers does and prints the ids. With\n"
      "--input-jsonl, each line is a JSON string and each output line {\"ids\": [...]}.",
      std::move(flags), args, Tokenize);
}

int RunDetokenizeCommand(const std::vector<std::string>& args) {
  FlagSet flags = CommonFlags();
  flags.Add("ids", "IDS", "", "comma-separated token ids to decode");
  flags.Add("skip-special-tokens", "", "", "leave special tokens out of the text");
  return RunCommand(
      "detokenize",
      "Usage: sculpt detokenize --model DIR (--ids IDS | --input-jsonl FILE)\n\n"
      "Decodes token ids to text. With --input-jsonl, each line is a JSON list of ids\n"
      "and each output line {\"text\": \"...\"}.",
      std::move(flags), args, Detokenize);
}

}  // namespace sculpt
