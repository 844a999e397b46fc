// `sculpt eval`: the shipped model's quality through the engine itself: held-out masked-token
// accuracy against a unigram baseline, and infilling of held-out Python functions at several
// decoding speeds, with and without the KV cache (the speed/quality trade-off).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/rng.h"
#include "common/status.h"
#include "cpu/threads.h"
#include "model/evaluation.h"
#include "model/tokenizer.h"
#include "server/commands.h"
#include "server/device.h"
#include "server/flags.h"
#include "server/served_model.h"

namespace sculpt {
namespace {

using nlohmann::json;

struct Split {
  std::vector<std::string> train, heldout;
};

absl::StatusOr<Split> ReadSplit(const std::string& path) {
  SCULPT_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  const json root = json::parse(text, nullptr, false);
  if (root.is_discarded() || !root.contains("train") || !root.contains("heldout")) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": expected {\"train\": [...], \"heldout\": [...]} (tools/train/prepare_data.py)"));
  }
  return Split{root["train"].get<std::vector<std::string>>(),
               root["heldout"].get<std::vector<std::string>>()};
}

// The block length of the cache table (Fast-dLLM's and the cache bench's): with the default single
// block a cache saves and changes nothing.
constexpr size_t kCacheBlockLength = 32;

// Leading spaces of a line (tabs count as one).
size_t Indent(const std::string& line) { return line.find_first_not_of(" \t"); }

// Functions of a file as ranges of lines [def line, end), with their body lines.
struct Function {
  std::vector<std::string> lines;
  std::vector<size_t> body;  // indices into lines of non-blank body lines
};

std::vector<Function> ExtractFunctions(const std::string& text) {
  static const std::regex kDef(R"(^\s*(async\s+)?def\s)");
  const std::vector<std::string> lines = absl::StrSplit(text, '\n');
  std::vector<Function> functions;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!std::regex_search(lines[i], kDef)) continue;
    const size_t indent = Indent(lines[i]);
    size_t end = i + 1;
    while (end < lines.size() &&
           (Indent(lines[end]) == std::string::npos || Indent(lines[end]) > indent)) {
      ++end;
    }
    if (end - i < 3 || end - i > 40) continue;
    Function function;
    function.lines.assign(lines.begin() + i, lines.begin() + end);
    for (size_t j = 1; j < function.lines.size(); ++j) {
      if (Indent(function.lines[j]) != std::string::npos) function.body.push_back(j);
    }
    if (function.body.size() >= 2) functions.push_back(std::move(function));
  }
  return functions;
}

std::string JoinLines(const std::vector<std::string>& lines, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    out += lines[i];
    if (i + 1 < lines.size()) out += '\n';
  }
  return out;
}

// Hides body lines [first, first + count) of a function (the newline after the last stays).
absl::StatusOr<InfillCase> MakeCase(const Tokenizer& tokenizer, const Function& function,
                                    size_t first, size_t count, int32_t bos) {
  const std::string text = JoinLines(function.lines, 0, function.lines.size());
  const size_t hidden_begin = JoinLines(function.lines, 0, first).size();
  size_t hidden_end = hidden_begin;
  for (size_t i = first; i < first + count; ++i) {
    hidden_end += function.lines[i].size() + (i + 1 < first + count ? 1 : 0);
  }
  return MakeInfillCase(tokenizer, text, hidden_begin, hidden_end, bos);
}

absl::Status Run(const FlagSet& flags) {
  // Before anything logs: spdlog's own default logger writes to stdout, where the tables go.
  SCULPT_RETURN_IF_ERROR(SetupLogging(flags.GetString("log-level")));
  const std::string model_dir = flags.GetString("model");
  if (model_dir.empty()) return absl::InvalidArgumentError("--model DIR is required");
  SCULPT_RETURN_IF_ERROR(ApplyThreadsFlag(flags));
  SCULPT_ASSIGN_OR_RETURN(int64_t max_tokens, flags.GetInt("max-tokens"));
  SCULPT_ASSIGN_OR_RETURN(int64_t samples, flags.GetInt("infill-samples"));
  SCULPT_ASSIGN_OR_RETURN(int64_t batch, flags.GetInt("batch"));
  SCULPT_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed"));
  if (max_tokens < 0 || samples < 1 || batch < 1 || seed < 0) {
    return absl::InvalidArgumentError(
        "--infill-samples and --batch must be >= 1, --max-tokens and --seed >= 0");
  }
  if (max_tokens == 0) max_tokens = std::numeric_limits<int64_t>::max();
  SCULPT_ASSIGN_OR_RETURN(Split split, ReadSplit(flags.GetString("split")));
  const std::string root = flags.GetString("corpus-root");

  SCULPT_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                          MakeBackend(BackendChoiceFromFlags(flags, model_dir)));
  auto model_or = LoadServedModel(model_dir, std::move(backend));
  if (!model_or.ok()) return NotUsage(model_or.status());
  Transformer& model = *(*model_or)->transformer;
  const Tokenizer* tokenizer = (*model_or)->tokenizer.get();
  if (tokenizer == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("sculpt eval needs a model with a tokenizer.json; ", model_dir, " has none"));
  }
  const int32_t bos = tokenizer->special_ids().bos;
  const int32_t eos = model.config().eos_token_id;

  // The unigram baseline: always guess the most frequent token of the training split.
  std::map<int32_t, int64_t> frequency;
  for (const std::string& path : split.train) {
    SCULPT_ASSIGN_OR_RETURN(std::string text, ReadFileToString(root + "/" + path));
    SCULPT_ASSIGN_OR_RETURN(auto ids, tokenizer->Encode(text, false));
    for (int32_t id : ids) ++frequency[id];
  }
  const int32_t baseline_token =
      std::max_element(frequency.begin(), frequency.end(), [](const auto& a, const auto& b) {
        return a.second < b.second;
      })->first;

  std::vector<std::vector<int32_t>> documents;
  std::vector<Function> functions;
  for (const std::string& path : split.heldout) {
    SCULPT_ASSIGN_OR_RETURN(std::string text, ReadFileToString(root + "/" + path));
    SCULPT_ASSIGN_OR_RETURN(auto ids, tokenizer->Encode(text, false));
    std::vector<int32_t> document;
    if (bos >= 0) document.push_back(bos);
    document.insert(document.end(), ids.begin(), ids.end());
    document.push_back(eos);
    documents.push_back(std::move(document));
    for (Function& function : ExtractFunctions(text)) functions.push_back(std::move(function));
  }
  const int window = std::min(512, model.config().max_sequence_length);
  const double ratios[] = {0.15, 0.5, 0.9};
  SCULPT_ASSIGN_OR_RETURN(auto accuracy,
                          EvaluateMaskedAccuracy(model, documents, ratios, baseline_token, window,
                                                 static_cast<uint64_t>(seed), max_tokens));

  // Infill cases: functions drawn deterministically; one hidden line, and a span of 3-5 lines.
  std::vector<InfillCase> line_cases, span_cases;
  for (size_t i = 0; i < functions.size() && line_cases.size() < static_cast<size_t>(samples);
       ++i) {
    const size_t pick =
        static_cast<size_t>(UniformOpen01(static_cast<uint64_t>(seed), 7, static_cast<uint32_t>(i),
                                          0, RngStream::kGumbel) *
                            double(functions[i].body.size()));
    const Function& function = functions[(i * 7919) % functions.size()];
    const size_t line = function.body[pick % function.body.size()];
    SCULPT_ASSIGN_OR_RETURN(InfillCase one, MakeCase(*tokenizer, function, line, 1, bos));
    if (!one.middle.empty() && one.prefix.size() + one.middle.size() + one.suffix.size() <= 500) {
      line_cases.push_back(std::move(one));
    }
    const size_t span = 3 + pick % 3;
    if (function.body.front() + span <= function.lines.size()) {
      const size_t start =
          function.body.front() + pick % (function.lines.size() - function.body.front() - span + 1);
      SCULPT_ASSIGN_OR_RETURN(InfillCase many, MakeCase(*tokenizer, function, start, span, bos));
      if (!many.middle.empty() &&
          many.prefix.size() + many.middle.size() + many.suffix.size() <= 500) {
        span_cases.push_back(std::move(many));
      }
    }
  }
  span_cases.resize(std::min(span_cases.size(), line_cases.size()));
  // The cache table's cases: the same, with the suffix cut so that whole blocks cover the canvas
  // (a case whose suffix is too short for that is left out).
  std::vector<InfillCase> blocked_line_cases, blocked_span_cases;
  for (const auto& [cases, blocked] :
       {std::pair{&line_cases, &blocked_line_cases}, std::pair{&span_cases, &blocked_span_cases}}) {
    for (const InfillCase& infill : *cases) {
      const size_t length = infill.prefix.size() + infill.middle.size() + infill.suffix.size();
      const size_t cut = length % kCacheBlockLength;
      if (cut > infill.suffix.size()) continue;
      InfillCase aligned = infill;
      aligned.suffix.resize(infill.suffix.size() - cut);
      blocked->push_back(std::move(aligned));
    }
  }

  struct Setting {
    std::string name;
    std::string remasking;
    double threshold;
  };
  const std::vector<Setting> settings = {{"low_confidence, 1 token/step", "low_confidence", 0},
                                         {"threshold 0.95", "threshold", 0.95},
                                         {"threshold 0.9", "threshold", 0.9},
                                         {"threshold 0.8", "threshold", 0.8},
                                         {"threshold 0.7", "threshold", 0.7}};
  json report = {{"model", model_dir}, {"baseline_token", baseline_token}};
  std::cout << absl::StrFormat("Masked-token accuracy on held-out files (%d files)\n\n",
                               documents.size());
  std::cout << "| mask ratio | masked tokens | model | unigram baseline |\n|---|---|---|---|\n";
  for (const MaskedAccuracy& a : accuracy) {
    const double model_accuracy = double(a.correct) / double(a.masked);
    const double baseline = double(a.baseline_correct) / double(a.masked);
    std::cout << absl::StrFormat("| %.2f | %d | %.1f%% | %.1f%% |\n", a.ratio, a.masked,
                                 100 * model_accuracy, 100 * baseline);
    report["masked_accuracy"].push_back({{"ratio", a.ratio},
                                         {"masked", a.masked},
                                         {"accuracy", model_accuracy},
                                         {"baseline", baseline}});
  }
  for (const auto& [label, cases] :
       {std::pair{"one line", &line_cases}, std::pair{"3-5 lines", &span_cases}}) {
    std::cout << absl::StrFormat("\nInfilling held-out functions, %s hidden (%d cases)\n\n", label,
                                 cases->size());
    std::cout << "| decoding | exact match | token accuracy | tokens/step |\n|---|---|---|---|\n";
    for (const Setting& setting : settings) {
      GenerationRequest decoding;
      decoding.remasking = setting.remasking;
      decoding.confidence_threshold = setting.threshold;
      SCULPT_ASSIGN_OR_RETURN(InfillScore score,
                              EvaluateInfill(model, *cases, decoding, static_cast<int>(batch)));
      const double exact = double(score.exact) / std::max(1, score.cases);
      const double token_accuracy =
          double(score.correct_tokens) / std::max<int64_t>(1, score.tokens);
      std::cout << absl::StrFormat("| %s | %.1f%% | %.1f%% | %.2f |\n", setting.name, 100 * exact,
                                   100 * token_accuracy, score.tokens_per_step());
      report["infill"].push_back({{"hidden", label},
                                  {"decoding", setting.name},
                                  {"cases", score.cases},
                                  {"exact_match", exact},
                                  {"token_accuracy", token_accuracy},
                                  {"tokens_per_step", score.tokens_per_step()}});
    }
  }
  for (const auto& [label, cases] :
       {std::pair{"one line", &blocked_line_cases}, std::pair{"3-5 lines", &blocked_span_cases}}) {
    std::cout << absl::StrFormat(
        "\nKV cache: infilling held-out functions, %s hidden, blocks of %d (%d cases)\n\n", label,
        kCacheBlockLength, cases->size());
    std::cout << "| cache | decoding | exact match | token accuracy | tokens/step | tokens/s |\n"
                 "|---|---|---|---|---|---|\n";
    for (const Setting& setting : {settings[0], settings[2]}) {
      for (const char* cache : {"none", "prefix", "dual"}) {
        GenerationRequest decoding;
        decoding.remasking = setting.remasking;
        decoding.confidence_threshold = setting.threshold;
        decoding.block_length = static_cast<int64_t>(kCacheBlockLength);
        decoding.cache = cache;
        const auto start = std::chrono::steady_clock::now();
        SCULPT_ASSIGN_OR_RETURN(InfillScore score,
                                EvaluateInfill(model, *cases, decoding, static_cast<int>(batch)));
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double exact = double(score.exact) / std::max(1, score.cases);
        const double token_accuracy =
            double(score.correct_tokens) / std::max<int64_t>(1, score.tokens);
        const double tokens_per_second = double(score.tokens) / std::max(seconds, 1e-9);
        std::cout << absl::StrFormat("| %s | %s | %.1f%% | %.1f%% | %.2f | %.0f |\n", cache,
                                     setting.name, 100 * exact, 100 * token_accuracy,
                                     score.tokens_per_step(), tokens_per_second);
        report["cache"].push_back({{"hidden", label},
                                   {"cache", cache},
                                   {"decoding", setting.name},
                                   {"block_length", kCacheBlockLength},
                                   {"cases", score.cases},
                                   {"exact_match", exact},
                                   {"token_accuracy", token_accuracy},
                                   {"tokens_per_step", score.tokens_per_step()},
                                   {"tokens_per_second", tokens_per_second}});
      }
    }
  }
  if (flags.Has("json-out")) {
    std::ofstream(flags.GetString("json-out")) << report.dump(2) << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

int RunEvalCommand(const std::vector<std::string>& args) {
  FlagSet flags;
  flags.Add("model", "DIR", "", "model directory; required");
  flags.Add("split", "FILE", "build/train-data/split.json",
            "train/held-out split of the corpus (tools/train/prepare_data.py)");
  flags.Add("corpus-root", "DIR", "/usr/lib/python3.11", "where the split's relative paths live");
  flags.Add("max-tokens", "N", "0",
            "held-out tokens per mask ratio: a seeded random sample of 512-token windows "
            "(0 = every window of the held-out split)");
  flags.Add("infill-samples", "N", "60", "infilling cases of each kind");
  flags.Add("batch", "N", "16", "generations sharing each forward");
  flags.Add("seed", "N", "0", "seed of the masks and the case selection");
  AddBackendFlags(flags);
  flags.Add("log-level", "LEVEL", "warn", "trace, debug, info, warn, error or off");
  AddThreadsFlag(flags);
  flags.Add("json-out", "FILE", "", "also write the figures as JSON");
  flags.Add("help", "", "", "show this help");
  return RunCommand(
      "eval",
      "Usage: sculpt eval --model DIR [flags]\n\nMeasures masked-token accuracy and "
      "infilling quality at several decoding speeds, with and without the KV cache, on the "
      "held-out split.",
      std::move(flags), args, Run);
}

}  // namespace sculpt
