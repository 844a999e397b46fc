// The CUDA backend on one GPU, against the hardware and cuBLAS measured in the same run:
// (a) our GEMM path and attention kernel at LLaDA-8B shapes against a plain cuBLAS bf16 GEMM and
// the roofline; (b) one denoising step (forward + token choice) of an LLaDA-8B-shaped model with
// random bf16 weights made on the device, at batch 1 and 16, canvas 1024, 32 logit rows per
// sequence (one block), against two floors: the weight-read floor at batch 1 (weight bytes /
// measured copy bandwidth) and the bf16 matrix-rate floor at batch 16 (FLOPs / measured cuBLAS
// bf16 rate). Prints a short table last and writes every figure as JSON (--json-out).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/forward_flops.h"
#include "common/status.h"
#include "cuda/attention.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.cuh"
#include "cuda/device_probe.cuh"
#include "cuda/fill_random.cuh"
#include "cuda/gemm.cuh"
#include "model/llada.h"
#include "server/flags.h"

namespace sculpt {
namespace {

using nlohmann::json;

#define BENCH_CHECK(expr)                                   \
  do {                                                      \
    if (auto bench_status_ = (expr); !bench_status_.ok()) { \
      std::cerr << #expr << ": " << bench_status_ << "\n";  \
      std::exit(1);                                         \
    }                                                       \
  } while (false)
#define BENCH_CUDA(expr) BENCH_CHECK(cuda::CudaStatus((expr), #expr))
#define BENCH_CUBLAS(expr) BENCH_CHECK(cuda::CublasStatus((expr), #expr))

// Median milliseconds of `repeat` runs of fn on the stream (CUDA events), after one warm-up.
template <typename Fn>
double MedianMs(cudaStream_t stream, int repeat, Fn&& fn) {
  fn();
  BENCH_CUDA(cudaStreamSynchronize(stream));
  std::vector<double> times;
  cudaEvent_t start, stop;
  BENCH_CUDA(cudaEventCreate(&start));
  BENCH_CUDA(cudaEventCreate(&stop));
  for (int i = 0; i < repeat; ++i) {
    BENCH_CUDA(cudaEventRecord(start, stream));
    fn();
    BENCH_CUDA(cudaEventRecord(stop, stream));
    BENCH_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    BENCH_CUDA(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct Scratch {
  explicit Scratch(size_t bytes) { BENCH_CUDA(cudaMalloc(&data, std::max<size_t>(bytes, 1))); }
  ~Scratch() { cudaFree(data); }
  void* data = nullptr;
};

ModelConfig LLaDA8BConfig() {
  ModelConfig config;
  config.model_type = "llada";
  config.d_model = 4096;
  config.n_heads = 32;
  config.n_kv_heads = 32;
  config.n_layers = 32;
  config.mlp_hidden_size = 12288;
  config.vocab_size = 126464;
  config.embedding_size = 126464;
  config.max_sequence_length = 4096;
  config.rope_theta = 500000.0;
  config.mask_token_id = 126336;
  config.eos_token_id = 126081;
  return config;
}

int Run(int argc, char** argv) {
  FlagSet flags;
  flags.Add("json-out", "FILE", "device_bench.json", "where to write every figure");
  flags.Add("repeat", "N", "10", "timed repetitions per figure (median reported)");
  flags.Add("help", "", "", "show this help");
  BENCH_CHECK(flags.Parse(std::vector<std::string>(argv + 1, argv + argc)));
  if (flags.GetBool("help")) {
    std::cout << "Usage: device_bench [--json-out FILE] [--repeat N]\n\n" << flags.Usage();
    return 0;
  }
  if (cuda::DeviceCount() == 0) {
    std::cout << "device_bench: no CUDA device on this machine; nothing to measure\n";
    return 0;
  }
  const auto repeat_or = flags.GetInt("repeat");
  BENCH_CHECK(repeat_or.status());
  const int repeat = static_cast<int>(std::max<int64_t>(1, *repeat_or));
  json report;
  report["device"] = *cuda::DescribeDevice(0);
  BENCH_CUDA(cudaSetDevice(0));
  cudaStream_t stream;
  BENCH_CUDA(cudaStreamCreate(&stream));
  cublasHandle_t cublas;
  BENCH_CUBLAS(cublasCreate(&cublas));
  BENCH_CUBLAS(cublasSetStream(cublas, stream));

  // Hardware as measured now: copy bandwidth and the bf16 matrix rate.
  const size_t copy_bytes = size_t{4} << 30;
  double copy_gbps = 0;
  {
    Scratch a(copy_bytes), b(copy_bytes);
    const double ms = MedianMs(stream, repeat, [&] {
      BENCH_CUDA(cudaMemcpyAsync(b.data, a.data, copy_bytes, cudaMemcpyDeviceToDevice, stream));
    });
    copy_gbps = 2.0 * copy_bytes / (ms * 1e-3) / 1e9;  // read + write
  }
  double bf16_tflops = 0;
  {
    const int n = 8192;
    Scratch a(size_t(n) * n * 2), b(size_t(n) * n * 2), c(size_t(n) * n * 2);
    BENCH_CHECK(cuda::LaunchFillRandom({a.data, DType::kBF16, int64_t(n) * n, 1, 0.02f}, stream));
    BENCH_CHECK(cuda::LaunchFillRandom({b.data, DType::kBF16, int64_t(n) * n, 2, 0.02f}, stream));
    const float alpha = 1, beta = 0;
    const double ms = MedianMs(stream, repeat, [&] {
      BENCH_CUBLAS(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a.data,
                                CUDA_R_16BF, n, b.data, CUDA_R_16BF, n, &beta, c.data, CUDA_R_16BF,
                                n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    });
    bf16_tflops = 2.0 * n * n * double(n) / (ms * 1e-3) / 1e12;
  }
  report["copy_gb_per_s"] = copy_gbps;
  report["cublas_bf16_tflops_8192"] = bf16_tflops;

  // (a) Kernels at LLaDA-8B shapes.
  const ModelConfig config = LLaDA8BConfig();
  json kernels = json::array();
  std::vector<std::string> table;
  for (const auto& [m, n, k, what] : std::vector<std::tuple<int, int, int, std::string>>{
           {1024, 4096, 4096, "q_proj, batch 1"},
           {1024, 12288, 4096, "gate_proj, batch 1"},
           {16384, 4096, 4096, "q_proj, batch 16"},
           {16384, 12288, 4096, "gate_proj, batch 16"},
           {16384, 4096, 12288, "down_proj, batch 16"},
           {512, 126464, 4096, "lm_head, 16x32 rows"}}) {
    Scratch x(size_t(m) * k * 4), x_bf16(size_t(m) * k * 2), w(size_t(n) * k * 2),
        out(size_t(m) * n * 4);
    BENCH_CHECK(cuda::LaunchFillRandom({x.data, DType::kF32, int64_t(m) * k, 3, 1.0f}, stream));
    BENCH_CHECK(cuda::LaunchFillRandom({w.data, DType::kBF16, int64_t(n) * k, 4, 0.02f}, stream));
    const cuda::GemmKernelParams params{static_cast<float*>(x.data),
                                        w.data,
                                        DType::kBF16,
                                        static_cast<float*>(out.data),
                                        m,
                                        n,
                                        k,
                                        x_bf16.data};
    const double ours =
        MedianMs(stream, repeat, [&] { BENCH_CHECK(cuda::LaunchGemm(params, cublas, stream)); });
    const float alpha = 1, beta = 0;
    const double plain = MedianMs(stream, repeat, [&] {
      BENCH_CUBLAS(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w.data,
                                CUDA_R_16BF, k, x_bf16.data, CUDA_R_16BF, k, &beta, out.data,
                                CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    });
    const double flops = 2.0 * m * n * double(k);
    const double bytes = double(n) * k * 2 + double(m) * k * 4 + double(m) * n * 4;
    const double roofline_ms =
        std::max(flops / (bf16_tflops * 1e12), bytes / (copy_gbps * 1e9)) * 1e3;
    kernels.push_back({{"kernel", "gemm"},
                       {"shape", what},
                       {"m", m},
                       {"n", n},
                       {"k", k},
                       {"ours_ms", ours},
                       {"cublas_bf16_ms", plain},
                       {"roofline_ms", roofline_ms},
                       {"ours_tflops", flops / (ours * 1e-3) / 1e12}});
    table.push_back(absl::StrFormat("gemm %-20s %8.3f ms  cuBLAS %8.3f  roofline %8.3f  (%.2fx)",
                                    what, ours, plain, roofline_ms, ours / roofline_ms));
  }
  for (int sequences : {1, 16}) {
    const int seq_len = 1024;
    const int width = config.n_heads * config.head_dim();
    const int64_t tokens = int64_t(sequences) * seq_len;
    Scratch q(tokens * width * 4), k(tokens * width * 4), v(tokens * width * 4),
        out(tokens * width * 4), offsets((sequences + 1) * 4);
    for (void* data : {q.data, k.data, v.data}) {
      BENCH_CHECK(cuda::LaunchFillRandom({data, DType::kF32, tokens * width, 5, 1.0f}, stream));
    }
    std::vector<int32_t> host_offsets(sequences + 1);
    for (int s = 0; s <= sequences; ++s) host_offsets[s] = s * seq_len;
    BENCH_CUDA(cudaMemcpy(offsets.data, host_offsets.data(), host_offsets.size() * 4,
                          cudaMemcpyHostToDevice));
    cuda::AttentionKernelParams params{};
    params.q = static_cast<float*>(q.data);
    params.k = static_cast<float*>(k.data);
    params.v = static_cast<float*>(v.data);
    params.out = static_cast<float*>(out.data);
    params.sequence_offsets = static_cast<int32_t*>(offsets.data);
    params.num_sequences = sequences;
    params.max_sequence_length = seq_len;
    params.n_heads = config.n_heads;
    params.n_kv_heads = config.n_kv_heads;
    params.head_dim = config.head_dim();
    params.softmax_scale = 1.0f / std::sqrt(float(config.head_dim()));
    const double ours =
        MedianMs(stream, repeat, [&] { BENCH_CHECK(cuda::LaunchAttention(params, stream)); });
    const double flops = 4.0 * double(tokens) * seq_len * width;
    // fp32 inputs: the CUDA-core fp32 rate is the ceiling of this kernel (H200: 67 TFLOP/s);
    // bf16 tensor cores are the ceiling of a future one.
    const double fp32_peak_ms = flops / 67e12 * 1e3;
    const double bf16_floor_ms = flops / (bf16_tflops * 1e12) * 1e3;
    kernels.push_back({{"kernel", "attention"},
                       {"sequences", sequences},
                       {"seq_len", seq_len},
                       {"ours_ms", ours},
                       {"fp32_peak_ms", fp32_peak_ms},
                       {"bf16_matrix_floor_ms", bf16_floor_ms},
                       {"ours_tflops", flops / (ours * 1e-3) / 1e12}});
    table.push_back(absl::StrFormat(
        "attention %2d x 1024, 32 heads x 128  %8.3f ms  fp32 peak %8.3f  bf16 floor %8.3f",
        sequences, ours, fp32_peak_ms, bf16_floor_ms));
  }
  report["kernels"] = kernels;

  // (b) One denoising step of an LLaDA-8B-shaped model.
  auto backend_or = MakeCudaBackend({.device = 0});
  BENCH_CHECK(backend_or.status());
  Backend& backend = **backend_or;
  uint64_t seed = 100;
  size_t weight_bytes = 0;
  const WeightLoader random_weights = [&](const std::string& name,
                                          const std::vector<int64_t>& shape,
                                          WeightUse) -> absl::StatusOr<DeviceBuffer> {
    int64_t count = 1;
    for (int64_t extent : shape) count *= extent;
    const bool is_norm =
        name.find("norm") != std::string::npos || name.find("ln_f") != std::string::npos;
    SCULPT_ASSIGN_OR_RETURN(DeviceBuffer buffer, backend.Allocate(size_t(count) * 2));
    SCULPT_RETURN_IF_ERROR(cuda::LaunchFillRandom(
        {buffer.data(), DType::kBF16, count, seed++, is_norm ? 0.0f : 0.02f, is_norm ? 1.0f : 0.0f},
        nullptr));
    weight_bytes += size_t(count) * 2;
    return buffer;
  };
  auto model_or = BuildDenseTransformer(config, LLaDATensorNames(), random_weights, backend);
  BENCH_CHECK(model_or.status());
  BENCH_CUDA(cudaDeviceSynchronize());
  Transformer& model = **model_or;
  report["weight_bytes"] = weight_bytes;
  json steps = json::array();
  for (int sequences : {1, 16}) {
    const int seq_len = 1024;
    const int block = 32;
    std::vector<std::vector<int32_t>> canvases(sequences, std::vector<int32_t>(seq_len));
    std::vector<int32_t> logit_positions(block);
    for (int s = 0; s < sequences; ++s) {
      for (int i = 0; i < seq_len; ++i) canvases[s][i] = (i * 7919 + s * 104729) % 126000;
      // The block being denoised: the first 32 masked positions of the answer.
      for (int i = 0; i < block; ++i) canvases[s][512 + i] = config.mask_token_id;
    }
    for (int i = 0; i < block; ++i) logit_positions[i] = 512 + i;
    std::vector<SequenceInput> batch;
    for (const auto& canvas : canvases) batch.push_back({canvas, logit_positions});
    std::vector<int32_t> chosen(size_t(sequences) * block);
    std::vector<double> confidences(chosen.size());
    std::vector<int32_t> positions(chosen.size());
    const auto step = [&] {
      auto logits = model.Forward(batch);
      BENCH_CHECK(logits.status());
      const TokenChoiceGroup group{
          .positions = positions, .tokens = chosen, .confidences = confidences};
      BENCH_CHECK(backend.ChooseTokens({*logits, {&group, 1}}));
    };
    step();  // grows the workspace
    std::vector<double> times;
    for (int i = 0; i < repeat; ++i) {
      BENCH_CHECK(backend.Synchronize());
      const auto start = std::chrono::steady_clock::now();
      step();
      BENCH_CHECK(backend.Synchronize());
      times.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
    std::sort(times.begin(), times.end());
    const double ms = times[times.size() / 2];
    const double flops =
        ForwardFlops(config, double(sequences) * seq_len, seq_len, double(sequences) * block);

    // The same step with the dual KV cache: a refresh fills every sequence's rows, then each
    // windowed step forwards only the block's 32 rows against the cached canvas.
    BENCH_CHECK(model.ReserveKvCache(int64_t{sequences} * seq_len));
    std::vector<SequenceInput> cached = batch;
    for (int s = 0; s < sequences; ++s) {
      cached[s].cache = KvCacheUse::kFill;
      cached[s].kv_rows = {s * seq_len, seq_len};
    }
    BENCH_CHECK(model.Forward(cached).status());
    for (SequenceInput& sequence : cached) {
      sequence.cache = KvCacheUse::kWindow;
      sequence.window_begin = 512;
      sequence.window_end = 512 + block;
    }
    std::vector<double> cached_times;
    for (int i = 0; i < repeat; ++i) {
      BENCH_CHECK(backend.Synchronize());
      const auto start = std::chrono::steady_clock::now();
      auto logits = model.Forward(cached);
      BENCH_CHECK(logits.status());
      const TokenChoiceGroup group{
          .positions = positions, .tokens = chosen, .confidences = confidences};
      BENCH_CHECK(backend.ChooseTokens({*logits, {&group, 1}}));
      BENCH_CHECK(backend.Synchronize());
      cached_times.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
    BENCH_CHECK(model.ReserveKvCache(0));
    std::sort(cached_times.begin(), cached_times.end());
    const double cached_ms = cached_times[cached_times.size() / 2];
    const double weight_floor_ms = weight_bytes / (copy_gbps * 1e9) * 1e3;
    const double matrix_floor_ms = flops / (bf16_tflops * 1e12) * 1e3;
    const double floor_ms = sequences == 1 ? weight_floor_ms : matrix_floor_ms;
    steps.push_back({{"sequences", sequences},
                     {"canvas", seq_len},
                     {"block", block},
                     {"ms_per_step", ms},
                     {"dual_cache_window_ms_per_step", cached_ms},
                     {"dual_cache_speedup", ms / cached_ms},
                     {"tflops", flops / (ms * 1e-3) / 1e12},
                     {"weight_read_floor_ms", weight_floor_ms},
                     {"matrix_rate_floor_ms", matrix_floor_ms},
                     {"ratio_to_floor", ms / floor_ms}});
    table.push_back(
        absl::StrFormat("step LLaDA-8B batch %2d canvas 1024 block 32: %8.1f ms, %6.1f TFLOP/s, "
                        "%5.2fx the %s floor "
                        "(%.1f ms)",
                        sequences, ms, flops / (ms * 1e-3) / 1e12, ms / floor_ms,
                        sequences == 1 ? "weight-read" : "bf16 matrix-rate", floor_ms));
    table.push_back(absl::StrFormat(
        "  the same step with the dual KV cache (window of 32 rows): %8.1f ms, %.2fx faster",
        cached_ms, ms / cached_ms));
  }
  report["steps"] = steps;

  std::ofstream(flags.GetString("json-out")) << report.dump(2) << "\n";
  std::cout << "\n"
            << report["device"].get<std::string>() << ": copy " << copy_gbps
            << " GB/s, cuBLAS bf16 " << bf16_tflops << " TFLOP/s\n";
  for (const std::string& line : table) std::cout << line << "\n";
  return 0;
}

}  // namespace
}  // namespace sculpt

int main(int argc, char** argv) { return sculpt::Run(argc, argv); }
