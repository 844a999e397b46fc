// The CUDA row and elementwise ops (embed, RMSNorm, RoPE, SwiGLU, add, gather, convert) and the
// cuBLAS GEMM against their CPU twins, with fixed seeds on awkward shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"
#include "cuda/add.cuh"
#include "cuda/convert.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/embed.cuh"
#include "cuda/fill_random.cuh"
#include "cuda/gather_rows.cuh"
#include "cuda/gemm.cuh"
#include "cuda/rms_norm.cuh"
#include "cuda/rope.cuh"
#include "cuda/swiglu.cuh"
#include "tests/gpu/device_array.h"
#include "tests/support/random_data.h"

namespace sculpt {
namespace {

using testing::RandomFloats;

using testing::DeviceArray;

TensorView HostView(std::vector<float>& values, int64_t rows, int64_t cols) {
  return TensorView{values.data(), DType::kF32, rows, cols};
}

// Largest |a - b| relative to the largest |b| (at least 1).
double MaxRelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  double error = 0.0;
  double scale = 1.0;
  for (size_t i = 0; i < a.size(); ++i) {
    error = std::max(error, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return error / scale;
}

// Round to nearest even, as torch's .to(torch.bfloat16).
uint16_t ToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

std::vector<float> RoundedToBf16(std::vector<float> values) {
  for (float& value : values) value = BF16ToFloat(ToBf16(value));
  return values;
}

std::vector<uint16_t> Bf16Bits(const std::vector<float>& values) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = ToBf16(values[i]);
  return bits;
}

TEST(CudaElementwiseTest, EmbedGathersRowsOfBf16AndF32Tables) {
  SCULPT_SKIP_WITHOUT_GPU();
  for (int64_t d : {1, 96, 257}) {
    const int64_t vocab = 13;
    std::vector<float> table = RoundedToBf16(RandomFloats(vocab * d, 1));
    const std::vector<int32_t> ids = {0, 12, 5, 5, 7};
    std::vector<float> expected(ids.size() * d);
    ASSERT_TRUE(cpu::Embed({ids, HostView(table, vocab, d), HostView(expected, 5, d)}).ok());
    DeviceArray<int32_t> device_ids(ids);
    DeviceArray<uint16_t> bf16_table(Bf16Bits(table));
    DeviceArray<float> f32_table(table);
    for (DType dtype : {DType::kBF16, DType::kF32}) {
      DeviceArray<float> out(ids.size() * d);
      const void* data = dtype == DType::kBF16 ? static_cast<const void*>(bf16_table.data())
                                               : static_cast<const void*>(f32_table.data());
      ASSERT_TRUE(
          cuda::LaunchEmbed({device_ids.data(), 5, data, dtype, d, out.data()}, nullptr).ok());
      EXPECT_EQ(out.ToHost(), expected) << "d " << d << " " << DTypeName(dtype);
    }
  }
}

TEST(CudaElementwiseTest, RmsNormMatchesTheCpu) {
  SCULPT_SKIP_WITHOUT_GPU();
  for (int64_t cols : {1, 7, 96, 4096, 5003}) {
    const int64_t rows = 3;
    std::vector<float> x = RandomFloats(rows * cols, 2, 3.0f);
    std::vector<float> weight = RoundedToBf16(RandomFloats(cols, 3));
    std::vector<float> expected(x.size());
    ASSERT_TRUE(cpu::RmsNorm({HostView(x, rows, cols), HostView(weight, 1, cols),
                              HostView(expected, rows, cols), 1e-5f})
                    .ok());
    DeviceArray<float> device_x(x);
    DeviceArray<uint16_t> device_weight(Bf16Bits(weight));
    DeviceArray<float> out(x.size());
    ASSERT_TRUE(cuda::LaunchRmsNorm({device_x.data(), device_weight.data(), DType::kBF16,
                                     out.data(), rows, cols, 1e-5f},
                                    nullptr)
                    .ok());
    // Only the order of the sum of squares differs.
    EXPECT_LT(MaxRelativeError(out.ToHost(), expected), 1e-5) << "cols " << cols;
  }
}

TEST(CudaElementwiseTest, AddRmsNormMatchesTheCpu) {
  SCULPT_SKIP_WITHOUT_GPU();
  for (int64_t cols : {1, 96, 4096, 5003}) {
    const int64_t rows = 4;
    std::vector<float> x = RandomFloats(rows * cols, 20, 2.0f);
    std::vector<float> residual = RandomFloats(rows * cols, 21);
    std::vector<float> weight = RoundedToBf16(RandomFloats(cols, 22));
    std::vector<float> expected_x = x;
    std::vector<float> expected(x.size());
    ASSERT_TRUE(cpu::AddRmsNorm({HostView(expected_x, rows, cols), HostView(residual, rows, cols),
                                 HostView(weight, 1, cols), HostView(expected, rows, cols), 1e-5f})
                    .ok());
    DeviceArray<float> device_x(x);
    DeviceArray<float> device_residual(residual);
    DeviceArray<uint16_t> device_weight(Bf16Bits(weight));
    DeviceArray<float> out(x.size());
    ASSERT_TRUE(
        cuda::LaunchAddRmsNorm({device_x.data(), device_residual.data(), device_weight.data(),
                                DType::kBF16, out.data(), rows, cols, 1e-5f},
                               nullptr)
            .ok());
    EXPECT_EQ(device_x.ToHost(), expected_x) << "cols " << cols;  // one rounding, as the CPU
    EXPECT_LT(MaxRelativeError(out.ToHost(), expected), 1e-5) << "cols " << cols;
  }
}

TEST(CudaElementwiseTest, RopeMatchesTheCpuAcrossPackedSequences) {
  SCULPT_SKIP_WITHOUT_GPU();
  for (int head_dim : {2, 24, 64, 128}) {
    const int n_heads = 3;
    const int width = n_heads * head_dim;
    const std::vector<int32_t> offsets = {0, 1, 1, 8, 1031};
    const int64_t rows = offsets.back();
    std::vector<float> x = RandomFloats(rows * width, 4);
    std::vector<float> expected = x;
    ASSERT_TRUE(
        cpu::Rope({HostView(expected, rows, width), PackedLayout{offsets}, head_dim, 10000.0})
            .ok());
    std::vector<int32_t> positions(rows);
    for (size_t s = 0; s + 1 < offsets.size(); ++s) {
      for (int32_t r = offsets[s]; r < offsets[s + 1]; ++r) positions[r] = r - offsets[s];
    }
    DeviceArray<float> device_x(x);
    DeviceArray<int32_t> device_positions(positions);
    ASSERT_TRUE(
        cuda::LaunchRope(
            {device_x.data(), device_positions.data(), rows, width, head_dim, 10000.0f}, nullptr)
            .ok());
    // cosf/sinf of angles up to ~1000 rad: a few ulp of the angle's magnitude.
    EXPECT_LT(MaxRelativeError(device_x.ToHost(), expected), 1e-4) << "head_dim " << head_dim;
  }
}

TEST(CudaElementwiseTest, RopeRejectsAnOddHeadDim) {
  SCULPT_SKIP_WITHOUT_GPU();
  EXPECT_EQ(cuda::LaunchRope({nullptr, nullptr, 1, 9, 3, 10000.0f}, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CudaElementwiseTest, SwiGluAddAndGatherMatchTheCpu) {
  SCULPT_SKIP_WITHOUT_GPU();
  const int64_t rows = 37;
  const int64_t cols = 101;
  std::vector<float> gate = RandomFloats(rows * cols, 5, 4.0f);
  std::vector<float> up = RandomFloats(rows * cols, 6);
  std::vector<float> expected(gate.size());
  ASSERT_TRUE(cpu::SwiGlu({HostView(gate, rows, cols), HostView(up, rows, cols),
                           HostView(expected, rows, cols)})
                  .ok());
  DeviceArray<float> device_gate(gate);
  DeviceArray<float> device_up(up);
  ASSERT_TRUE(cuda::LaunchSwiGlu(
                  {device_gate.data(), device_up.data(), device_gate.data(), rows * cols}, nullptr)
                  .ok());
  EXPECT_LT(MaxRelativeError(device_gate.ToHost(), expected), 1e-6);

  std::vector<float> sum(gate.size());
  ASSERT_TRUE(
      cpu::Add({HostView(gate, rows, cols), HostView(up, rows, cols), HostView(sum, rows, cols)})
          .ok());
  DeviceArray<float> a(gate);
  ASSERT_TRUE(cuda::LaunchAdd(
                  {a.data(), device_up.data(), DType::kF32, false, a.data(), rows, cols}, nullptr)
                  .ok());
  EXPECT_EQ(a.ToHost(), sum);  // one rounding, same as the CPU

  // A bf16 bias broadcast to every row.
  std::vector<float> bias = RoundedToBf16(RandomFloats(cols, 7));
  DeviceArray<uint16_t> device_bias(Bf16Bits(bias));
  DeviceArray<float> biased(gate);
  ASSERT_TRUE(cuda::LaunchAdd({biased.data(), device_bias.data(), DType::kBF16, true, biased.data(),
                               rows, cols},
                              nullptr)
                  .ok());
  const std::vector<float> biased_host = biased.ToHost();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      ASSERT_EQ(biased_host[r * cols + c], gate[r * cols + c] + bias[c]);
    }
  }

  const std::vector<int32_t> picked = {36, 0, 17, 17};
  std::vector<float> gathered(picked.size() * cols);
  ASSERT_TRUE(
      cpu::GatherRows({picked, HostView(gate, rows, cols), HostView(gathered, 4, cols)}).ok());
  DeviceArray<int32_t> device_picked(picked);
  DeviceArray<float> source(gate);
  DeviceArray<float> out(gathered.size());
  ASSERT_TRUE(
      cuda::LaunchGatherRows({source.data(), device_picked.data(), out.data(), 4, cols}, nullptr)
          .ok());
  EXPECT_EQ(out.ToHost(), gathered);
}

TEST(CudaElementwiseTest, ConvertRoundsToNearestEvenLikeTorch) {
  SCULPT_SKIP_WITHOUT_GPU();
  std::vector<float> values = RandomFloats(10007, 8, 100.0f);
  values.push_back(1.0f + 1.0f / 256.0f);  // a tie: rounds to even (1.0)
  values.push_back(INFINITY);
  values.push_back(-0.0f);
  DeviceArray<float> source(values);
  DeviceArray<uint16_t> out(values.size());
  ASSERT_TRUE(cuda::LaunchConvert({source.data(), DType::kF32, out.data(), DType::kBF16,
                                   static_cast<int64_t>(values.size())},
                                  nullptr)
                  .ok());
  EXPECT_EQ(out.ToHost(), Bf16Bits(values));
}

TEST(CudaElementwiseTest, FillRandomMatchesItsHostFormula) {
  SCULPT_SKIP_WITHOUT_GPU();
  const int64_t count = 100003;
  DeviceArray<float> out(count);
  ASSERT_TRUE(
      cuda::LaunchFillRandom({out.data(), DType::kF32, count, 42, 0.5f, 1.0f}, nullptr).ok());
  const std::vector<float> values = out.ToHost();
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    // nvcc may contract the final multiply-add into an FMA: one rounding apart at most.
    ASSERT_NEAR(values[i], cuda::RandomFillValue(42, i, 0.5f, 1.0f), 1e-6f) << i;
    sum += values[i];
  }
  EXPECT_NEAR(sum / count, 1.0, 0.01);  // the offset is the mean
}

struct GemmShape {
  int64_t m, n, k;
};

TEST(CudaGemmTest, Fp32WeightsMatchTheCpuAndBf16WeightsMatchABf16Reference) {
  SCULPT_SKIP_WITHOUT_GPU();
  cublasHandle_t cublas = nullptr;
  ASSERT_EQ(cublasCreate(&cublas), CUBLAS_STATUS_SUCCESS);
  cpu::GemmRunner cpu_gemm;
  for (const GemmShape& shape : {GemmShape{1, 1, 1}, GemmShape{1, 997, 96}, GemmShape{7, 288, 96},
                                 GemmShape{131, 257, 509}, GemmShape{513, 1024, 4096}}) {
    const auto [m, n, k] = shape;
    std::vector<float> x = RandomFloats(m * k, 9);
    std::vector<float> weight = RoundedToBf16(RandomFloats(n * k, 10, 0.05f));
    std::vector<float> expected(m * n);
    ASSERT_TRUE(
        cpu_gemm.Run({HostView(x, m, k), HostView(weight, n, k), {}, HostView(expected, m, n)})
            .ok());
    DeviceArray<float> device_x(x);
    DeviceArray<float> f32_weight(weight);
    DeviceArray<float> out(m * n);
    ASSERT_TRUE(cuda::LaunchGemm(
                    {device_x.data(), f32_weight.data(), DType::kF32, out.data(), m, n, k, nullptr},
                    cublas, nullptr)
                    .ok());
    // Full fp32 (no TF32): only the summation order differs.
    EXPECT_LT(MaxRelativeError(out.ToHost(), expected), 1e-5) << m << "x" << n << "x" << k;

    // bf16: the CPU twin with bf16 weights (x rounded to bf16 as the GPU rounds it, fp32
    // accumulation) is the reference.
    std::vector<uint16_t> weight_bits = Bf16Bits(weight);
    std::vector<float> expected_bf16(m * n);
    ASSERT_TRUE(cpu_gemm
                    .Run({HostView(x, m, k),
                          TensorView{weight_bits.data(), DType::kBF16, n, k},
                          {},
                          HostView(expected_bf16, m, n)})
                    .ok());
    DeviceArray<uint16_t> bf16_weight(weight_bits);
    DeviceArray<uint16_t> scratch(m * k);
    ASSERT_TRUE(cuda::LaunchGemm({device_x.data(), bf16_weight.data(), DType::kBF16, out.data(), m,
                                  n, k, scratch.data()},
                                 cublas, nullptr)
                    .ok());
    EXPECT_LT(MaxRelativeError(out.ToHost(), expected_bf16), 1e-4) << m << "x" << n << "x" << k;
  }
  cublasDestroy(cublas);
}

}  // namespace
}  // namespace sculpt
