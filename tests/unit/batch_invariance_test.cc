// Batch invariance of the CPU backend's GEMMs and attention, by construction: a row's result must
// be bitwise the same whatever rows share its call, however many threads run, and whichever
// kernel oneDNN picks on this CPU. CTest runs this binary three times: with every ISA the CPU
// has, and with oneDNN capped at AVX-512 (no bf16 instructions) and at AVX2
// (ONEDNN_MAX_CPU_ISA), so Intel AMX, AMD Zen 4 and AVX2-only machines are all covered here.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "common/dtype.h"
#include "cpu/cpu_backend.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"
#include "tests/support/random_data.h"

namespace sculpt {
namespace {

using testing::RandomFloats;

// Weights of `dtype` in the memory layout the backend keeps them in.
struct HostWeights {
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  DType dtype;
  TensorView view(int64_t rows, int64_t cols) {
    return dtype == DType::kBF16 ? TensorView{bf16.data(), DType::kBF16, rows, cols}
                                 : TensorView{f32.data(), DType::kF32, rows, cols};
  }
};

HostWeights MakeWeights(DType dtype, int64_t n, int64_t k, uint32_t seed) {
  HostWeights weights{RandomFloats(n * k, seed, 1.0f / std::sqrt(float(k))), {}, dtype};
  if (dtype == DType::kBF16) {
    weights.bf16.resize(weights.f32.size());
    ConvertToBF16(DType::kF32, weights.f32.data(), weights.f32.size(), weights.bf16.data());
  }
  return weights;
}

// The weight as `gemm` reads it: plain, or packed into its tiles' layout (as the CPU backend
// loads model weights) in `storage`, which `gemm` then recognises.
TensorView Prepare(cpu::GemmRunner& gemm, HostWeights& weights, int64_t n, int64_t k, bool packed,
                   std::vector<uint8_t>& storage) {
  const TensorView plain = weights.view(n, k);
  if (!packed) return plain;
  const absl::StatusOr<size_t> bytes = gemm.PackedBytes(plain);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok() || *bytes == 0) return plain;  // bf16 widened: kept plain
  storage.resize(*bytes);
  EXPECT_TRUE(gemm.Pack(plain, storage.data()).ok());
  return TensorView{storage.data(), plain.dtype, n, k};
}

std::vector<float> RunGemm(cpu::GemmRunner& gemm, const float* x, int64_t m, int64_t k,
                           const TensorView& weight, int threads) {
  const int64_t n = weight.rows;
  std::vector<float> out(m * n, std::nanf(""));
  omp_set_num_threads(threads);
  const absl::Status status = gemm.Run({TensorView{const_cast<float*>(x), DType::kF32, m, k},
                                        weight,
                                        {},
                                        TensorView{out.data(), DType::kF32, m, n}});
  omp_set_num_threads(1);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

bool BitwiseEqual(const float* a, const float* b, size_t count) {
  return std::memcmp(a, b, count * sizeof(float)) == 0;
}

struct GemmShape {
  int64_t n, k;
};

// The projections of the shipped model and of the test models, LLaDA-8B's reduction length
// (4096, with a partial column tile), and sizes that are not tile multiples.
const GemmShape kModelShapes[] = {{256, 256}, {768, 256}, {256, 768},  {8192, 256},
                                  {96, 96},   {997, 200}, {320, 4096}, {64, 3072}};

// (weight dtype, packed at load)
class GemmInvarianceTest : public ::testing::TestWithParam<std::tuple<DType, bool>> {};

TEST_P(GemmInvarianceTest, RowsAreBitwiseIndependentOfTheirBatchAndThreads) {
  const auto [dtype, packed] = GetParam();
  for (const GemmShape& shape : kModelShapes) {
    const auto [n, k] = shape;
    const int64_t max_rows = 97;
    const std::vector<float> x = RandomFloats(max_rows * k, 7);
    HostWeights weights = MakeWeights(dtype, n, k, 8);
    cpu::GemmRunner gemm, fresh;
    std::vector<uint8_t> storage, fresh_storage;
    const TensorView weight = Prepare(gemm, weights, n, k, packed, storage);
    const std::vector<float> full = RunGemm(gemm, x.data(), max_rows, k, weight, 2);
    for (const int64_t rows : {1, 2, 3, 7, 31, 32, 33, 64, 65}) {
      for (const int64_t first : {int64_t{0}, int64_t{5}, max_rows - rows}) {
        for (const int threads : {1, 2, 3}) {
          // Another runner as well: nothing may depend on which shapes ran before.
          const bool other = threads == 3;
          if (other && fresh_storage.empty()) {
            (void)Prepare(fresh, weights, n, k, packed, fresh_storage);
          }
          const TensorView other_weight = packed && !fresh_storage.empty()
                                              ? TensorView{fresh_storage.data(), dtype, n, k}
                                              : weight;
          const std::vector<float> part = RunGemm(other ? fresh : gemm, x.data() + first * k, rows,
                                                  k, other ? other_weight : weight, threads);
          ASSERT_TRUE(BitwiseEqual(part.data(), full.data() + first * n, part.size()))
              << DTypeName(dtype) << (packed ? " packed" : " plain") << " n=" << n << " k=" << k
              << " rows=" << rows << " first=" << first << " threads=" << threads;
        }
      }
    }
  }
}

TEST_P(GemmInvarianceTest, ResultsAreTheProductsOfBf16RoundedInputsAccumulatedInFp32) {
  const auto [dtype, packed] = GetParam();
  const int64_t m = 45, n = 131, k = 509;
  const std::vector<float> x = RandomFloats(m * k, 3);
  HostWeights weights = MakeWeights(dtype, n, k, 4);
  cpu::GemmRunner gemm;
  std::vector<uint8_t> storage;
  const std::vector<float> out =
      RunGemm(gemm, x.data(), m, k, Prepare(gemm, weights, n, k, packed, storage), 2);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t c = 0; c < n; ++c) {
      double sum = 0.0, magnitude = 0.0;
      for (int64_t j = 0; j < k; ++j) {
        // bf16 weights multiply x rounded to bf16, as the GPU does.
        const double a =
            dtype == DType::kBF16 ? BF16ToFloat(FloatToBF16(x[r * k + j])) : x[r * k + j];
        const double b =
            dtype == DType::kBF16 ? BF16ToFloat(weights.bf16[c * k + j]) : weights.f32[c * k + j];
        sum += a * b;
        magnitude += std::fabs(a * b);
      }
      ASSERT_NEAR(out[r * n + c], sum, 1e-5 * magnitude + 1e-6) << r << "," << c;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(WeightDTypesAndLayouts, GemmInvarianceTest,
                         ::testing::Combine(::testing::Values(DType::kF32, DType::kBF16),
                                            ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<DType, bool>>& param) {
                           return std::string(DTypeName(std::get<0>(param.param))) +
                                  (std::get<1>(param.param) ? "Packed" : "Plain");
                         });

// int8 weights: rows are bitwise independent of the batch and the threads too, and the result is
// exactly the int32 sum of the int8 rows, scaled (computed here independently, in int64).
TEST(GemmInt8Test, RowsAreBitwiseIndependentAndEqualTheScaledIntegerProducts) {
  for (const GemmShape& shape : {GemmShape{256, 256}, GemmShape{997, 200}, GemmShape{320, 4096}}) {
    const auto [n, k] = shape;
    const int64_t max_rows = 70;
    const std::vector<float> x = RandomFloats(max_rows * k, 31);
    std::vector<float> w = RandomFloats(n * k, 32, 1.0f / std::sqrt(float(k)));
    cpu::GemmRunner gemm;
    const TensorView plain{w.data(), DType::kF32, n, k};
    if (!gemm.HasExactInt8()) {
      // Refused with a message that says why, rather than run with inexact sums.
      const absl::StatusOr<size_t> refused = gemm.PackedBytes(plain, /*quantize=*/true);
      ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_NE(refused.status().message().find("VNNI"), std::string::npos);
      return;
    }
    const absl::StatusOr<size_t> bytes = gemm.PackedBytes(plain, /*quantize=*/true);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    std::vector<uint8_t> storage(*bytes);
    ASSERT_TRUE(gemm.Pack(plain, storage.data(), /*quantize=*/true).ok());
    const TensorView weight{storage.data(), DType::kF32, n, k};
    const std::vector<float> full = RunGemm(gemm, x.data(), max_rows, k, weight, 2);
    for (const int64_t rows : {1, 5, 32, 33}) {
      for (const int threads : {1, 3}) {
        const int64_t first = max_rows - rows;
        const std::vector<float> part =
            RunGemm(gemm, x.data() + first * k, rows, k, weight, threads);
        ASSERT_TRUE(BitwiseEqual(part.data(), full.data() + first * n, part.size()))
            << "n=" << n << " k=" << k << " rows=" << rows << " threads=" << threads;
      }
    }
    const auto quantize = [&](const float* row, std::vector<int>& q) {
      float largest = 0.0f;
      for (int64_t j = 0; j < k; ++j) largest = std::max(largest, std::fabs(row[j]));
      const float scale = largest > 0.0f ? largest / 127.0f : 1.0f;
      q.resize(k);
      for (int64_t j = 0; j < k; ++j) {
        q[j] =
            static_cast<int>(std::clamp(std::nearbyint(row[j] * (1.0f / scale)), -127.0f, 127.0f));
      }
      return scale;
    };
    std::vector<int> qx, qw;
    for (int64_t r = 0; r < max_rows; r += 23) {
      const float x_scale = quantize(x.data() + r * k, qx);
      for (int64_t c = 0; c < n; c += 37) {
        const float w_scale = quantize(w.data() + c * k, qw);
        int64_t sum = 0;
        for (int64_t j = 0; j < k; ++j) sum += int64_t{qx[j]} * qw[j];
        ASSERT_EQ(full[r * n + c], static_cast<float>(sum) * x_scale * w_scale) << r << "," << c;
      }
    }
  }
}

// The negative control: the bitwise comparison above does see a change in the order of the
// reduction, which is what a batch-dependent kernel choice changes. The same product computed
// as two half-length reductions added together differs in some bits.
TEST(GemmInvarianceControlTest, ASplitReductionIsDetected) {
  const int64_t m = 32, n = 64, k = 4096;
  const std::vector<float> x = RandomFloats(m * k, 11);
  HostWeights weights = MakeWeights(DType::kF32, n, k, 12);
  cpu::GemmRunner gemm;
  const std::vector<float> whole = RunGemm(gemm, x.data(), m, k, weights.view(n, k), 1);
  // Halves of x and of the weight rows, each contiguous.
  const int64_t half = k / 2;
  std::vector<float> x_halves[2], w_halves[2];
  for (int part = 0; part < 2; ++part) {
    for (int64_t r = 0; r < m; ++r) {
      x_halves[part].insert(x_halves[part].end(), x.begin() + r * k + part * half,
                            x.begin() + r * k + (part + 1) * half);
    }
    for (int64_t c = 0; c < n; ++c) {
      w_halves[part].insert(w_halves[part].end(), weights.f32.begin() + c * k + part * half,
                            weights.f32.begin() + c * k + (part + 1) * half);
    }
  }
  HostWeights first{w_halves[0], {}, DType::kF32}, second{w_halves[1], {}, DType::kF32};
  const std::vector<float> a = RunGemm(gemm, x_halves[0].data(), m, half, first.view(n, half), 1);
  const std::vector<float> b = RunGemm(gemm, x_halves[1].data(), m, half, second.view(n, half), 1);
  std::vector<float> split(m * n);
  double max_difference = 0.0;
  for (size_t i = 0; i < split.size(); ++i) {
    split[i] = a[i] + b[i];
    max_difference = std::max(max_difference, std::fabs(double(split[i]) - whole[i]));
  }
  EXPECT_FALSE(BitwiseEqual(split.data(), whole.data(), split.size()));
  EXPECT_LT(max_difference, 1e-4);  // the same product, up to rounding
}

// Capping oneDNN's ISA (the CTest variants) must take effect, or the AVX2 run proves nothing.
TEST(GemmInvarianceControlTest, TheIsaCapIsObeyed) {
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  cpu::GemmRunner gemm;
  const std::string f32 = gemm.KernelName(DType::kF32, 256);
  const std::string bf16 = gemm.KernelName(DType::kBF16, 256);
  std::cout << "oneDNN kernels: fp32 " << f32 << "; bf16 " << bf16 << "\n";
  // The uncapped run only names its kernels (a skip would mark the whole binary skipped).
  if (cap == nullptr) return;
  // Both caps exclude the bf16 instructions (AVX512-BF16, AMX); AVX2 excludes AVX-512 itself.
  for (const std::string& name : {f32, bf16}) {
    EXPECT_EQ(name.find("_bf16"), std::string::npos) << name;
    EXPECT_EQ(name.find("amx"), std::string::npos) << name;
    if (std::string(cap) == "AVX2") {
      EXPECT_EQ(name.find("avx512"), std::string::npos) << name;
    }
  }
}

// Attention: a sequence's rows are bitwise the same alone, packed with others at any offset, and
// at any thread count.
TEST(AttentionInvarianceTest, SequenceRowsAreBitwiseIndependentOfTheBatchAndThreads) {
  const int n_heads = 4, n_kv_heads = 2, head_dim = 64;
  const int q_width = n_heads * head_dim, kv_width = n_kv_heads * head_dim;
  const std::vector<int32_t> lengths = {37, 256, 1, 129};
  std::vector<int32_t> offsets = {0};
  for (int32_t length : lengths) offsets.push_back(offsets.back() + length);
  const int n = offsets.back();
  std::vector<float> q = RandomFloats(n * q_width, 1), k = RandomFloats(n * kv_width, 2),
                     v = RandomFloats(n * kv_width, 3);
  const auto attend = [&](int first_row, const std::vector<int32_t>& layout, int threads) {
    const int rows = layout.back();
    std::vector<float> out(rows * q_width);
    omp_set_num_threads(threads);
    const absl::Status status =
        cpu::Attention({TensorView{q.data() + first_row * q_width, DType::kF32, rows, q_width},
                        TensorView{k.data() + first_row * kv_width, DType::kF32, rows, kv_width},
                        TensorView{v.data() + first_row * kv_width, DType::kF32, rows, kv_width},
                        TensorView{out.data(), DType::kF32, rows, q_width}, PackedLayout{layout},
                        n_heads, n_kv_heads, head_dim});
    omp_set_num_threads(1);
    EXPECT_TRUE(status.ok()) << status;
    return out;
  };
  const std::vector<float> packed = attend(0, offsets, 2);
  for (size_t s = 0; s < lengths.size(); ++s) {
    for (const int threads : {1, 2, 3}) {
      const std::vector<float> alone = attend(offsets[s], {0, lengths[s]}, threads);
      ASSERT_TRUE(BitwiseEqual(alone.data(), packed.data() + offsets[s] * q_width, alone.size()))
          << "sequence " << s << " threads " << threads;
    }
  }
}

}  // namespace
}  // namespace sculpt
