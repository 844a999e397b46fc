// Sculpt's side of the LLaDA benchmarks: forward throughput and whole generations on the CPU
// backend, plus the machine's GEMM peak so the forward's GFLOP/s has a ceiling to compare with.
// bench/run_cpu_bench.sh runs it next to the PyTorch peer (bench/torch_reference.py).

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <vector>

#include "bench/forward_flops.h"
#include "cpu/cpu_backend.h"
#include "cpu/gemm.h"
#include "cpu/threads.h"
#include "model/denoiser.h"
#include "server/flags.h"

namespace sculpt {
namespace {

double Seconds(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

template <typename Fn>
std::vector<double> Timed(int repeat, Fn&& fn) {
  fn();  // warm-up: first touch of the workspace, thread pools
  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(Seconds(std::chrono::steady_clock::now() - start));
  }
  return times;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

// The machine's GEMM ceiling for weights of `dtype`, as Sculpt's own GEMM reaches it on a large
// square problem (packed weights, all threads).
double GemmPeakGflops(DType dtype) {
  const int64_t n = 2048;
  std::vector<float> a(n * n, 0.5f), c(n * n);
  std::vector<uint16_t> weight_bits(n * n, FloatToBF16(0.25f));
  std::vector<float> weight_f32(n * n, 0.25f);
  const TensorView plain = dtype == DType::kBF16 ? TensorView{weight_bits.data(), dtype, n, n}
                                                 : TensorView{weight_f32.data(), dtype, n, n};
  cpu::GemmRunner gemm;
  std::vector<uint8_t> packed(*gemm.PackedBytes(plain));
  TensorView weight = plain;
  if (!packed.empty() && gemm.Pack(plain, packed.data()).ok()) weight.data = packed.data();
  const auto times = Timed(5, [&] {
    if (!gemm.Run({TensorView{a.data(), DType::kF32, n, n},
                   weight,
                   {},
                   TensorView{c.data(), DType::kF32, n, n}})
             .ok()) {
      std::abort();
    }
  });
  return 2.0 * n * n * double(n) / *std::min_element(times.begin(), times.end()) / 1e9;
}

int Run(const std::vector<std::string>& args) {
  FlagSet flags;
  flags.Add("model", "DIR", "", "LLaDA model directory");
  flags.Add("seq-len", "N", "256", "forward: tokens per sequence");
  flags.Add("batch", "N", "1", "forward: sequences per packed batch");
  flags.Add("logit-rows", "N", "0",
            "forward: positions per sequence that get logits, the last N (0 = all, as the "
            "PyTorch peer computes them; a denoising step needs only its block's)");
  flags.Add("repeat", "N", "5", "timed runs; the median is reported");
  flags.Add("threads", "N", "0", "CPU threads (0 = all cores)");
  flags.Add("generate", "", "", "time whole generations instead of forwards");
  flags.Add("prompt-len", "N", "32", "generate: prompt tokens");
  flags.Add("prompt-ids", "IDS", "", "generate: the prompt (default: --prompt-len random ids)");
  flags.Add("dtype", "T", "float32", "weights: float32 or bfloat16");
  flags.Add("weights", "W", "auto", "GEMM weights: auto (as --dtype) or int8");
  flags.Add("gen-length", "N", "128", "generate: gen_length");
  flags.Add("steps", "N", "128", "generate: steps");
  flags.Add("block-length", "N", "32", "generate: block_length");
  flags.Add("remasking", "POLICY", "low_confidence", "generate: remasking policy");
  flags.Add("confidence-threshold", "C", "0.9", "generate: threshold policy's C");
  flags.Add("cache", "MODE", "none", "generate: KV cache (none, prefix or dual)");
  flags.Add("window", "N", "0",
            "forward: time a cached step instead, forwarding each sequence's last N rows against "
            "its filled KV cache (the logit rows must lie inside)");
  flags.Add("help", "", "", "show this help");
  if (auto status = flags.Parse(args); !status.ok() || flags.GetBool("help")) {
    std::cerr << status.message() << "\nUsage: bench_llada --model DIR [flags]\n" << flags.Usage();
    return status.ok() ? 0 : 2;
  }
  const int threads = static_cast<int>(*flags.GetInt("threads"));
  SetCpuThreads(threads);
  const std::string dtype = flags.GetString("dtype");
  if (dtype != "float32" && dtype != "bfloat16") {
    std::cerr << "--dtype must be float32 or bfloat16\n";
    return 2;
  }
  const bool int8 = flags.GetString("weights") == "int8";
  if (!int8 && flags.GetString("weights") != "auto") {
    std::cerr << "--weights must be auto or int8\n";
    return 2;
  }
  auto backend_or =
      MakeCpuBackend({.weight_dtype = dtype == "bfloat16" ? DType::kBF16 : DType::kF32,
                      .int8_gemm_weights = int8});
  if (!backend_or.ok()) {
    std::cerr << backend_or.status() << "\n";
    return 1;
  }
  std::unique_ptr<Backend> backend = std::move(*backend_or);
  auto model = LoadTransformer(flags.GetString("model"), *backend);
  if (!model.ok()) {
    std::cerr << model.status() << "\n";
    return 1;
  }
  const ModelConfig& config = (*model)->config();
  const int repeat = static_cast<int>(*flags.GetInt("repeat"));
  std::mt19937 random(0);
  // Random ids below the special tokens when there is room (LLaDA's sit at the top of the
  // vocabulary), else anywhere but the mask token (the shipped model's sit at 0-2).
  const int32_t special = std::min(config.mask_token_id, config.eos_token_id);
  std::uniform_int_distribution<int32_t> draw(0, (special > 1 ? special : config.vocab_size) - 1);
  const auto token = [&](std::mt19937& generator) {
    const int32_t id = draw(generator);
    return id == config.mask_token_id ? id + 1 : id;
  };
  nlohmann::json result = {
      {"peer", "sculpt-cpu"},
      {"model", flags.GetString("model")},
      {"threads", CpuThreads()},
      {"dtype", dtype},
      {"gemm_kernel", cpu::GemmRunner().KernelName(backend->weight_dtype(), config.d_model)},
      {"repeat", repeat}};

  if (flags.GetBool("generate")) {
    GenerationParams params;
    params.gen_length = static_cast<int>(*flags.GetInt("gen-length"));
    params.steps = static_cast<int>(*flags.GetInt("steps"));
    params.block_length = static_cast<int>(*flags.GetInt("block-length"));
    auto remasking = ParseRemasking(flags.GetString("remasking"));
    if (!remasking.ok()) {
      std::cerr << remasking.status() << "\n";
      return 2;
    }
    params.remasking = *remasking;
    params.confidence_threshold = *flags.GetDouble("confidence-threshold");
    auto cache = ParseKvCacheMode(flags.GetString("cache"));
    if (!cache.ok()) {
      std::cerr << cache.status() << "\n";
      return 2;
    }
    params.cache = *cache;
    std::vector<int32_t> prompt = *flags.GetIntList("prompt-ids");
    if (prompt.empty()) {
      prompt.resize(*flags.GetInt("prompt-len"));
      for (int32_t& id : prompt) id = token(random);
    }
    GenerationResult last;
    const auto times = Timed(repeat, [&] {
      auto generated = Generate(**model, prompt, params);
      if (!generated.ok()) std::abort();
      last = *generated;
    });
    const double median = Median(times);
    result.update({{"mode", "generate"},
                   {"remasking", flags.GetString("remasking")},
                   {"cache", flags.GetString("cache")},
                   {"steps_run", last.steps},
                   {"prompt_len", prompt.size()},
                   {"gen_length", params.gen_length},
                   {"steps", params.steps},
                   {"block_length", params.block_length},
                   {"forward_passes", last.forward_passes},
                   {"median_s", median},
                   {"min_s", *std::min_element(times.begin(), times.end())},
                   {"steps_per_s", params.steps / median},
                   {"tokens_per_s", params.gen_length / median},
                   {"token_ids", last.token_ids}});
  } else {
    const int seq_len = static_cast<int>(*flags.GetInt("seq-len"));
    const int batch_size = static_cast<int>(*flags.GetInt("batch"));
    std::vector<std::vector<int32_t>> sequences(batch_size, std::vector<int32_t>(seq_len));
    for (auto& sequence : sequences) {
      for (int32_t& id : sequence) id = token(random);
    }
    const int logit_rows = static_cast<int>(*flags.GetInt("logit-rows"));
    if (logit_rows < 0 || logit_rows > seq_len) {
      std::cerr << "--logit-rows must be in [0, --seq-len]\n";
      return 2;
    }
    const int first_logit = logit_rows == 0 ? 0 : seq_len - logit_rows;
    std::vector<int32_t> all_positions(seq_len - first_logit);
    std::iota(all_positions.begin(), all_positions.end(), first_logit);
    std::vector<SequenceInput> batch;
    for (const auto& sequence : sequences) batch.push_back({sequence, all_positions});
    const int window = static_cast<int>(*flags.GetInt("window"));
    if (window < 0 || window > seq_len || (window > 0 && first_logit < seq_len - window)) {
      std::cerr << "--window must be in [0, --seq-len] and hold every logit row\n";
      return 2;
    }
    if (window > 0) {
      if (!(*model)->ReserveKvCache(int64_t{batch_size} * seq_len).ok()) std::abort();
      for (int s = 0; s < batch_size; ++s) {
        batch[s].cache = KvCacheUse::kFill;
        batch[s].kv_rows = {s * seq_len, seq_len};
      }
      if (!(*model)->Forward(batch).ok()) std::abort();
      for (SequenceInput& sequence : batch) {
        sequence.cache = KvCacheUse::kWindow;
        sequence.window_begin = seq_len - window;
        sequence.window_end = seq_len;
      }
    }
    const auto times = Timed(repeat, [&] {
      if (!(*model)->Forward(batch).ok()) std::abort();
    });
    const double median = Median(times);
    const double tokens = double(window > 0 ? window : seq_len) * batch_size;
    const double gflops =
        ForwardFlops(config, tokens, seq_len, double(all_positions.size()) * batch_size) / median /
        1e9;
    const double peak = GemmPeakGflops(backend->weight_dtype());
    result.update({{"mode", "forward"},
                   {"batch", batch_size},
                   {"seq_len", seq_len},
                   {"window", window},
                   {"logit_rows", all_positions.size()},
                   {"median_s", median},
                   {"min_s", *std::min_element(times.begin(), times.end())},
                   {"tokens_per_s", tokens / median},
                   {"gflops", gflops},
                   {"gemm_peak_gflops", peak},
                   {"fraction_of_gemm_peak", gflops / peak}});
  }
  std::cout << result.dump() << std::endl;
  return 0;
}

}  // namespace
}  // namespace sculpt

int main(int argc, char** argv) {
  return sculpt::Run(std::vector<std::string>(argv + 1, argv + argc));
}
