// GEMM at the models' shapes: Sculpt's tiled, batch-invariant path (cpu::GemmRunner) against
// oneDNN's own best for the same problem (one matmul over the whole matrix, all threads, weights
// reordered once into the layout oneDNN prefers). bench/run_gemm_bench.sh runs it next to
// PyTorch's matmul (bench/torch_gemm.py) and prints the ratios.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/dtype.h"
#include "cpu/gemm.h"
#include "cpu/threads.h"
#include "server/flags.h"

namespace sculpt {
namespace {

template <typename Fn>
double BestSeconds(double budget_s, Fn&& fn) {
  fn();  // warm-up: kernel creation, first touch
  double best = 1e30, spent = 0.0;
  for (int i = 0; i < 3 || spent < budget_s; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, seconds);
    spent += seconds;
    if (i >= 50) break;
  }
  return best;
}

struct Shape {
  int64_t m, n, k;
};

// oneDNN's own best: the whole problem in one primitive, weights pre-reordered ("any" layout).
double OneDnnBest(const Shape& shape, DType dtype, const std::vector<float>& x_f32,
                  const std::vector<float>& w_f32, double budget_s, std::string* impl) {
  using dnnl::memory;
  const auto [m, n, k] = shape;
  const memory::data_type type =
      dtype == DType::kBF16 ? memory::data_type::bf16 : memory::data_type::f32;
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc x_desc({m, k}, type, {k, 1});
  const memory::desc w_plain({k, n}, type, {1, k});
  const memory::desc w_any({k, n}, type, memory::format_tag::any);
  const memory::desc out_desc({m, n}, memory::data_type::f32, {n, 1});
  const dnnl::matmul::primitive_desc descriptor(dnnl::matmul::desc(x_desc, w_any, out_desc),
                                                engine);
  *impl = descriptor.impl_info_str();
  std::vector<uint16_t> x_bf16(m * k), w_bf16(n * k);
  ConvertToBF16(DType::kF32, x_f32.data(), x_bf16.size(), x_bf16.data());
  ConvertToBF16(DType::kF32, w_f32.data(), w_bf16.size(), w_bf16.data());
  const bool bf16 = dtype == DType::kBF16;
  memory x(x_desc, engine,
           bf16 ? static_cast<void*>(x_bf16.data()) : const_cast<float*>(x_f32.data()));
  memory w_source(w_plain, engine,
                  bf16 ? static_cast<void*>(w_bf16.data()) : const_cast<float*>(w_f32.data()));
  memory w(descriptor.weights_desc(), engine);
  dnnl::reorder(w_source, w).execute(stream, w_source, w);
  std::vector<float> out(m * n);
  memory out_memory(out_desc, engine, out.data());
  const dnnl::matmul matmul(descriptor);
  return BestSeconds(budget_s, [&] {
    matmul.execute(stream, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, out_memory}});
    stream.wait();
  });
}

int Run(const std::vector<std::string>& args) {
  FlagSet flags;
  flags.Add("shapes", "LIST", "", "m x n x k problems, e.g. 256x768x768,32x8192x256");
  flags.Add("threads", "N", "0", "threads (0 = all cores)");
  flags.Add("budget-s", "S", "1", "seconds of repeats per measurement (best time is kept)");
  if (absl::Status status = flags.Parse(args); !status.ok()) {
    std::cerr << status.message() << "\n" << flags.Usage();
    return 2;
  }
  std::vector<Shape> shapes;
  for (absl::string_view item : absl::StrSplit(flags.GetString("shapes"), ',')) {
    std::vector<std::string> parts = absl::StrSplit(item, 'x');
    Shape shape{};
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &shape.m) ||
        !absl::SimpleAtoi(parts[1], &shape.n) || !absl::SimpleAtoi(parts[2], &shape.k)) {
      std::cerr << "--shapes: '" << item << "' is not MxNxK\n";
      return 2;
    }
    shapes.push_back(shape);
  }
  auto threads = flags.GetInt("threads");
  auto budget = flags.GetDouble("budget-s");
  if (!threads.ok() || !budget.ok()) {
    std::cerr << "--threads and --budget-s must be numbers\n";
    return 2;
  }
  SetCpuThreads(static_cast<int>(*threads));
  cpu::GemmRunner gemm;
  for (const Shape& shape : shapes) {
    const auto [m, n, k] = shape;
    std::mt19937 generator(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(m * k), w(n * k), out(m * n);
    for (float& value : x) value = normal(generator);
    for (float& value : w) value = normal(generator) * 0.02f;
    std::vector<uint16_t> w_bf16(w.size());
    ConvertToBF16(DType::kF32, w.data(), w.size(), w_bf16.data());
    for (const DType dtype : {DType::kF32, DType::kBF16}) {
      const TensorView plain = dtype == DType::kBF16 ? TensorView{w_bf16.data(), DType::kBF16, n, k}
                                                     : TensorView{w.data(), DType::kF32, n, k};
      // Packed into the tiles' layout at load, as the CPU backend keeps model weights.
      auto packed_bytes = gemm.PackedBytes(plain);
      std::vector<uint8_t> packed(packed_bytes.ok() ? *packed_bytes + 64 : 0);
      void* packed_data = packed.data() + (64 - reinterpret_cast<uintptr_t>(packed.data()) % 64);
      TensorView weight = plain;
      if (packed_bytes.ok() && *packed_bytes > 0 && gemm.Pack(plain, packed_data).ok()) {
        weight.data = packed_data;
      }
      const GemmParams params{TensorView{x.data(), DType::kF32, m, k},
                              weight,
                              {},
                              TensorView{out.data(), DType::kF32, m, n}};
      const double ours = BestSeconds(*budget, [&] { (void)gemm.Run(params); });
      gemm.Forget(packed_data);
      std::string impl;
      const double library = OneDnnBest(shape, dtype, x, w, *budget, &impl);
      const double flop = 2.0 * m * n * k;
      nlohmann::json line = {{"m", m},
                             {"n", n},
                             {"k", k},
                             {"dtype", dtype == DType::kBF16 ? "bf16" : "fp32"},
                             {"threads", CpuThreads()},
                             {"sculpt_gflops", flop / ours / 1e9},
                             {"sculpt_kernel", gemm.KernelName(dtype, k)},
                             {"onednn_gflops", flop / library / 1e9},
                             {"onednn_kernel", impl}};
      std::cout << line.dump() << std::endl;
    }
  }
  return 0;
}

}  // namespace
}  // namespace sculpt

int main(int argc, char** argv) { return sculpt::Run({argv + 1, argv + argc}); }
