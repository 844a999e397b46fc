// Sculpt's side of the tokenizer benchmark: encode throughput on one thread over the same two
// workloads as bench/hf_tokenizer_bench.py (the 1 MB corpus text in one call; the corpus
// entries one call each). Prints one JSON line per workload.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/file_util.h"
#include "model/tokenizer.h"
#include "server/flags.h"
#include "tests/support/tokenizer_corpus.h"

namespace sculpt {
namespace {

int Run(const std::vector<std::string>& args) {
  FlagSet flags;
  flags.Add("tokenizer", "DIR", "tests/tokenizers/llada-style", "directory with tokenizer.json");
  flags.Add("corpus", "FILE", "tests/tokenizers/corpus.json", "the fixture corpus");
  flags.Add("repeats", "N", "5", "timed runs; the median is reported");
  flags.Add("entries-rounds", "N", "100", "passes over the corpus entries per timed run");
  flags.Add("no-special-tokens", "", "", "skip the post-processor");
  if (auto status = flags.Parse(args); !status.ok()) {
    std::cerr << status.message() << "\n" << flags.Usage();
    return 2;
  }
  auto tokenizer = Tokenizer::Load(flags.GetString("tokenizer"));
  auto corpus_text = ReadFileToString(flags.GetString("corpus"));
  if (!tokenizer.ok() || !corpus_text.ok()) {
    std::cerr << (tokenizer.ok() ? corpus_text.status() : tokenizer.status()) << "\n";
    return 1;
  }
  const nlohmann::json corpus = nlohmann::json::parse(*corpus_text);
  std::vector<std::string> entries;
  for (const auto& entry : corpus) {
    if (entry.contains("text")) entries.push_back(entry["text"]);
  }
  std::vector<std::string> entries_workload;
  for (int64_t round = 0; round < *flags.GetInt("entries-rounds"); ++round) {
    entries_workload.insert(entries_workload.end(), entries.begin(), entries.end());
  }
  const std::vector<std::pair<std::string, std::vector<std::string>>> workloads = {
      {"large", {testing::BuildLargeTokenizerText(corpus)}}, {"entries", entries_workload}};
  const bool add_special = !flags.GetBool("no-special-tokens");
  const int repeats = static_cast<int>(*flags.GetInt("repeats"));

  for (const auto& [name, texts] : workloads) {
    size_t tokens = 0, bytes = 0;
    for (const std::string& text : texts) {  // warm-up, also fills the word cache as HF's does
      tokens += (*tokenizer)->Encode(text, add_special)->size();
      bytes += text.size();
    }
    std::vector<double> times;
    for (int i = 0; i < repeats; ++i) {
      const auto start = std::chrono::steady_clock::now();
      for (const std::string& text : texts) {
        if (!(*tokenizer)->Encode(text, add_special).ok()) return 1;
      }
      times.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    std::cout << nlohmann::json{{"peer", "sculpt"},   {"tokenizer", flags.GetString("tokenizer")},
                                {"workload", name},   {"bytes", bytes},
                                {"tokens", tokens},   {"repeats", repeats},
                                {"median_s", median}, {"mb_per_s", bytes / 1e6 / median}}
                     .dump()
              << std::endl;
  }
  return 0;
}

}  // namespace
}  // namespace sculpt

int main(int argc, char** argv) {
  return sculpt::Run(std::vector<std::string>(argv + 1, argv + argc));
}
