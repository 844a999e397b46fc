// The serving benchmark's peer: the engine running N identical requests (distinct seeds) as
// one offline batch, every step one packed forward, no server in between. Its generated
// tokens/s is the ceiling the server's throughput at N clients is compared with.
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/threads.h"
#include "model/denoiser.h"
#include "model/text_io.h"
#include "model/tokenizer.h"
#include "server/flags.h"

namespace sculpt {
namespace {

int Run(const std::vector<std::string>& args) {
  FlagSet flags;
  flags.Add("model", "DIR", "", "model directory (with tokenizer.json)");
  flags.Add("prompt", "TEXT", "def fibonacci(n):", "prompt of every request");
  flags.Add("requests", "N", "16", "requests in the batch");
  flags.Add("gen-length", "N", "64", "gen_length");
  flags.Add("steps", "N", "32", "steps");
  flags.Add("block-length", "N", "32", "block_length");
  flags.Add("repeat", "N", "3", "timed batches; the best is reported");
  flags.Add("threads", "N", "0", "CPU threads (0 = all cores)");
  flags.Add("help", "", "", "show this help");
  if (auto status = flags.Parse(args); !status.ok() || flags.GetBool("help")) {
    std::cerr << status.message() << "\nUsage: bench_offline_batch --model DIR [flags]\n"
              << flags.Usage();
    return status.ok() ? 0 : 2;
  }
  SetCpuThreads(static_cast<int>(*flags.GetInt("threads")));
  auto backend = MakeCpuBackend();
  auto model = LoadTransformer(flags.GetString("model"), *backend);
  auto tokenizer = Tokenizer::Load(flags.GetString("model"));
  if (!model.ok() || !tokenizer.ok()) {
    std::cerr << (model.ok() ? tokenizer.status() : model.status()) << "\n";
    return 1;
  }
  auto prompt = (*tokenizer)->Encode(flags.GetString("prompt"));
  if (!prompt.ok()) {
    std::cerr << prompt.status() << "\n";
    return 1;
  }
  GenerationParams params;
  params.gen_length = static_cast<int>(*flags.GetInt("gen-length"));
  params.steps = static_cast<int>(*flags.GetInt("steps"));
  params.block_length = static_cast<int>(*flags.GetInt("block-length"));
  params.stop_token_ids = StopTokenIds((*model)->config(), tokenizer->get());
  const int requests = static_cast<int>(*flags.GetInt("requests"));
  const int repeat = static_cast<int>(*flags.GetInt("repeat"));

  double best_s = 0;
  int64_t generated = 0;
  int steps = 0;
  Denoiser denoiser(**model);
  for (int run = 0; run <= repeat; ++run) {  // run 0 warms up
    std::vector<Generation> generations;
    for (int i = 0; i < requests; ++i) {
      params.seed = static_cast<uint64_t>(i);
      auto generation = Generation::Create(*prompt, params, (*model)->config());
      if (!generation.ok()) {
        std::cerr << generation.status() << "\n";
        return 2;
      }
      generations.push_back(std::move(*generation));
    }
    std::vector<Generation*> batch;
    for (Generation& generation : generations) batch.push_back(&generation);
    const auto start = std::chrono::steady_clock::now();
    steps = 0;
    while (std::any_of(generations.begin(), generations.end(),
                       [](const Generation& g) { return !g.finished(); })) {
      if (auto forwarded = denoiser.Step(batch); !forwarded.ok()) {
        std::cerr << forwarded.status() << "\n";
        return 1;
      }
      ++steps;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    generated = 0;
    for (const Generation& generation : generations) {
      generated += static_cast<int64_t>(generation.answer().size());
    }
    if (run > 0 && (best_s == 0 || seconds < best_s)) best_s = seconds;
  }
  nlohmann::json out = {{"bench", "offline_batch"},
                        {"model", flags.GetString("model")},
                        {"requests", requests},
                        {"gen_length", params.gen_length},
                        {"steps", steps},
                        {"threads", CpuThreads()},
                        {"seconds", best_s},
                        {"generated_tokens", generated},
                        {"tokens_per_s", static_cast<double>(generated) / best_s}};
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace
}  // namespace sculpt

int main(int argc, char** argv) { return sculpt::Run({argv + 1, argv + argc}); }
