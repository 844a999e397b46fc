// cuda::LaunchAttention against its CPU twin cpu::Attention with fixed seeds on awkward shapes
// (head_dims with and without a fast path, GQA ratios, empty, single and prime-length sequences,
// one long sequence, extreme logits), and rows bit-identical alone and in a batch.
#include "cuda/attention.cuh"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cpu/cpu_ops.h"
#include "tests/gpu/device_array.h"
#include "tests/support/random_data.h"

namespace sculpt {
namespace {

using testing::RandomFloats;

using ::sculpt::testing::DeviceArray;

struct Heads {
  int n_heads;
  int n_kv_heads;
  int head_dim;
  int q_width() const { return n_heads * head_dim; }
  int kv_width() const { return n_kv_heads * head_dim; }
};

// A packed batch on the host.
struct Batch {
  std::vector<int32_t> offsets;  // [num_sequences + 1]
  std::vector<float> q;          // [n_tokens, n_heads * head_dim]
  std::vector<float> k;          // [n_tokens, n_kv_heads * head_dim]
  std::vector<float> v;          // [n_tokens, n_kv_heads * head_dim]
  int num_sequences() const { return static_cast<int>(offsets.size()) - 1; }
  int num_tokens() const { return offsets.back(); }
  int max_length() const {
    int longest = 0;
    for (int s = 0; s < num_sequences(); ++s)
      longest = std::max(longest, offsets[s + 1] - offsets[s]);
    return longest;
  }
};

// q and k are drawn with standard deviation `qk_scale`, so logits have about qk_scale^2.
Batch RandomBatch(const Heads& heads, const std::vector<int32_t>& lengths, uint32_t seed,
                  float qk_scale = 1.0f) {
  Batch batch;
  batch.offsets.push_back(0);
  for (int32_t length : lengths) batch.offsets.push_back(batch.offsets.back() + length);
  const size_t n = static_cast<size_t>(batch.num_tokens());
  batch.q = RandomFloats(n * heads.q_width(), seed * 3 + 0, qk_scale);
  batch.k = RandomFloats(n * heads.kv_width(), seed * 3 + 1, qk_scale);
  batch.v = RandomFloats(n * heads.kv_width(), seed * 3 + 2, 1.0f);
  return batch;
}

TensorView View(std::vector<float>& values, int64_t cols) {
  return TensorView{values.data(), DType::kF32, static_cast<int64_t>(values.size()) / cols, cols};
}

std::vector<float> CpuAttention(Batch& batch, const Heads& heads) {
  std::vector<float> out(static_cast<size_t>(batch.num_tokens()) * heads.q_width());
  AttentionParams params;
  params.q = View(batch.q, heads.q_width());
  params.k = View(batch.k, heads.kv_width());
  params.v = View(batch.v, heads.kv_width());
  params.out = View(out, heads.q_width());
  params.layout = PackedLayout{batch.offsets};
  params.n_heads = heads.n_heads;
  params.n_kv_heads = heads.n_kv_heads;
  params.head_dim = heads.head_dim;
  const absl::Status status = cpu::Attention(params);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

// Device copy of `values` starting `offset` floats into the allocation.
DeviceArray<float> Upload(const std::vector<float>& values, int offset) {
  std::vector<float> shifted(offset, 0.0f);
  shifted.insert(shifted.end(), values.begin(), values.end());
  return DeviceArray<float>(shifted);
}

// Runs the kernel; with a `pointer_offset` of 1-3 floats, q, k, v and out are not 16-byte
// aligned, which must route every head_dim through the generic path. Rows the kernel does not
// write come back NaN.
std::vector<float> GpuAttention(const Batch& batch, const Heads& heads, int pointer_offset = 0) {
  const size_t out_size = static_cast<size_t>(batch.num_tokens()) * heads.q_width();
  const DeviceArray<float> q = Upload(batch.q, pointer_offset);
  const DeviceArray<float> k = Upload(batch.k, pointer_offset);
  const DeviceArray<float> v = Upload(batch.v, pointer_offset);
  const DeviceArray<float> out =
      Upload(std::vector<float>(out_size, std::numeric_limits<float>::quiet_NaN()), pointer_offset);
  const DeviceArray<int32_t> offsets(batch.offsets);

  cuda::AttentionKernelParams params;
  params.q = q.data() + pointer_offset;
  params.k = k.data() + pointer_offset;
  params.v = v.data() + pointer_offset;
  params.out = out.data() + pointer_offset;
  params.sequence_offsets = offsets.data();
  params.num_sequences = batch.num_sequences();
  params.max_sequence_length = batch.max_length();
  params.n_heads = heads.n_heads;
  params.n_kv_heads = heads.n_kv_heads;
  params.head_dim = heads.head_dim;
  params.softmax_scale = 1.0f / std::sqrt(static_cast<float>(heads.head_dim));
  const absl::Status status = cuda::LaunchAttention(params, /*stream=*/nullptr);
  EXPECT_TRUE(status.ok()) << status;

  std::vector<float> host = out.ToHost();
  host.erase(host.begin(), host.begin() + pointer_offset);
  return host;
}

// Tolerance: 2e-4 of the largest |out| of the reference. Both sides accumulate in fp32 but in
// different orders (sgemm blocking vs one fmaf chain per thread; the CPU normalizes P before P V,
// the GPU after; exp vs exp2), which moves results by a few ulps of the output's scale even over
// 1500 keys or ×900 logits; an indexing or masking mistake moves them by the scale itself.
void ExpectMatchesCpu(const std::vector<float>& gpu, const std::vector<float>& cpu,
                      const Heads& heads) {
  ASSERT_EQ(gpu.size(), cpu.size());
  float scale = 0.0f;
  for (float value : cpu) scale = std::max(scale, std::fabs(value));
  const float tolerance = 2e-4f * scale;
  float worst_error = 0.0f;
  size_t worst = 0;
  for (size_t i = 0; i < gpu.size(); ++i) {
    const float error = std::fabs(gpu[i] - cpu[i]);
    if (!(error <= worst_error)) {  // also catches NaN, i.e. an unwritten output
      worst_error = std::isnan(error) ? std::numeric_limits<float>::infinity() : error;
      worst = i;
    }
  }
  const size_t width = static_cast<size_t>(heads.q_width());
  EXPECT_LE(worst_error, tolerance)
      << "worst at token " << worst / width << ", head " << worst % width / heads.head_dim
      << ", dim " << worst % heads.head_dim << ": gpu " << gpu[worst] << ", cpu " << cpu[worst]
      << " (output scale " << scale << ")";
}

// Bit-for-bit equality of `rows` rows starting at row `a_first` of a and `b_first` of b.
bool SameRows(const std::vector<float>& a, int a_first, const std::vector<float>& b, int b_first,
              int rows, int width) {
  const size_t count = static_cast<size_t>(rows) * width;
  return std::memcmp(a.data() + static_cast<size_t>(a_first) * width,
                     b.data() + static_cast<size_t>(b_first) * width, count * sizeof(float)) == 0;
}

struct AttentionCase {
  std::string name;
  Heads heads;
  std::vector<int32_t> lengths;
  float qk_scale = 1.0f;
};

class AttentionMatchesCpuTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionMatchesCpuTest, OnPackedBatch) {
  SCULPT_SKIP_WITHOUT_GPU();
  const AttentionCase& test_case = GetParam();
  SCOPED_TRACE(absl::StrCat("heads ", test_case.heads.n_heads, "/", test_case.heads.n_kv_heads,
                            ", head_dim ", test_case.heads.head_dim, ", lengths {",
                            absl::StrJoin(test_case.lengths, ", "), "}"));
  Batch batch = RandomBatch(test_case.heads, test_case.lengths, /*seed=*/2024, test_case.qk_scale);
  const std::vector<float> expected = CpuAttention(batch, test_case.heads);
  ExpectMatchesCpu(GpuAttention(batch, test_case.heads), expected, test_case.heads);
}

// Fast paths are head_dim 64 and 128 with 16-byte aligned rows; everything else is generic.
INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionMatchesCpuTest,
    ::testing::Values(AttentionCase{"Dim64SingleToken", {4, 4, 64}, {1}},
                      AttentionCase{"Dim128EmptyAndFive", {8, 4, 128}, {0, 5}},
                      AttentionCase{"Dim24Gqa4Mixed", {8, 2, 24}, {7, 131, 1, 64}},
                      AttentionCase{"Dim32Gqa8TwoLong", {8, 1, 32}, {257, 500}},
                      AttentionCase{"Dim64Gqa2Mixed", {8, 4, 64}, {7, 131, 1, 64}},
                      AttentionCase{"Dim128Gqa8TwoLong", {8, 1, 128}, {257, 500}},
                      AttentionCase{"Dim80Gqa2Mixed", {4, 2, 80}, {7, 131, 1, 64}},
                      AttentionCase{"Dim72Gqa8EmptyAndFive", {16, 2, 72}, {0, 5}},
                      AttentionCase{"Dim7NotFloat4", {3, 1, 7}, {7, 131, 1, 64}},
                      AttentionCase{"Dim1", {2, 1, 1}, {1, 33}},
                      AttentionCase{"Dim256Largest", {2, 1, 256}, {257, 33}},
                      AttentionCase{"Dim128LongSequence", {4, 2, 128}, {1500}},
                      AttentionCase{"Dim32LongSequence", {4, 4, 32}, {1499}},
                      // q and k at 30x: logits of a thousand or more, so an exp without the running
                      // max overflows.
                      AttentionCase{"Dim64ExtremeLogits", {4, 2, 64}, {257, 500}, 30.0f},
                      AttentionCase{"Dim24ExtremeLogits", {4, 1, 24}, {7, 131, 1, 64}, 30.0f}),
    [](const ::testing::TestParamInfo<AttentionCase>& param_info) {
      return param_info.param.name;
    });

TEST(AttentionTest, UnalignedRowsTakeTheGenericPath) {
  SCULPT_SKIP_WITHOUT_GPU();
  for (const Heads heads : {Heads{4, 2, 64}, Heads{4, 1, 128}}) {
    SCOPED_TRACE(absl::StrCat("head_dim ", heads.head_dim));
    Batch batch = RandomBatch(heads, {7, 131, 1, 64}, /*seed=*/7);
    const std::vector<float> expected = CpuAttention(batch, heads);
    ExpectMatchesCpu(GpuAttention(batch, heads, /*pointer_offset=*/1), expected, heads);
  }
}

TEST(AttentionTest, RowsAreBitIdenticalAloneAndInABatch) {
  SCULPT_SKIP_WITHOUT_GPU();
  for (const Heads heads : {Heads{8, 2, 128}, Heads{6, 3, 24}}) {
    SCOPED_TRACE(absl::StrCat("head_dim ", heads.head_dim));
    constexpr int kLength = 131;
    constexpr int kFirst = 64;  // where the sequence sits in the batch
    const Batch alone = RandomBatch(heads, {kLength}, /*seed=*/11);
    Batch batched = RandomBatch(heads, {kFirst, kLength, 500, 7}, /*seed=*/12);
    std::copy(alone.q.begin(), alone.q.end(), batched.q.begin() + kFirst * heads.q_width());
    std::copy(alone.k.begin(), alone.k.end(), batched.k.begin() + kFirst * heads.kv_width());
    std::copy(alone.v.begin(), alone.v.end(), batched.v.begin() + kFirst * heads.kv_width());

    const std::vector<float> alone_out = GpuAttention(alone, heads);
    const std::vector<float> batched_out = GpuAttention(batched, heads);
    EXPECT_TRUE(SameRows(alone_out, 0, batched_out, kFirst, kLength, heads.q_width()));
    const std::vector<float> again = GpuAttention(batched, heads);
    EXPECT_TRUE(SameRows(batched_out, 0, again, 0, batched.num_tokens(), heads.q_width()));

    // Negative control: the comparison does see a change to one key of the sequence.
    batched.k[static_cast<size_t>(kFirst + 100) * heads.kv_width() + 3] += 0.5f;
    const std::vector<float> changed = GpuAttention(batched, heads);
    EXPECT_FALSE(SameRows(alone_out, 0, changed, kFirst, kLength, heads.q_width()));
  }
}

TEST(AttentionTest, RejectsImpossibleParamsAndSkipsEmptyBatches) {
  SCULPT_SKIP_WITHOUT_GPU();
  const DeviceArray<float> buffer(1024);
  const DeviceArray<int32_t> offsets(std::vector<int32_t>{0, 4});
  cuda::AttentionKernelParams valid;
  valid.q = valid.k = valid.v = buffer.data();
  valid.out = buffer.data();
  valid.sequence_offsets = offsets.data();
  valid.num_sequences = 1;
  valid.max_sequence_length = 4;
  valid.n_heads = 4;
  valid.n_kv_heads = 2;
  valid.head_dim = 32;
  valid.softmax_scale = 1.0f / std::sqrt(32.0f);

  auto expect_invalid = [&](cuda::AttentionKernelParams params, const char* what) {
    EXPECT_EQ(cuda::LaunchAttention(params, nullptr).code(), absl::StatusCode::kInvalidArgument)
        << what;
  };
  cuda::AttentionKernelParams params = valid;
  params.n_kv_heads = 3;
  expect_invalid(params, "n_heads % n_kv_heads != 0");
  params = valid;
  params.head_dim = 0;
  expect_invalid(params, "head_dim 0");
  params = valid;
  params.head_dim = 257;
  expect_invalid(params, "head_dim 257");
  params = valid;
  params.q = nullptr;
  expect_invalid(params, "null q");
  params = valid;
  params.sequence_offsets = nullptr;
  expect_invalid(params, "null offsets");

  // Nothing to attend: OK without touching any buffer.
  params = valid;
  params.num_sequences = 0;
  params.q = params.k = params.v = params.out = nullptr;
  params.sequence_offsets = nullptr;
  EXPECT_TRUE(cuda::LaunchAttention(params, nullptr).ok());
  params.num_sequences = 1;
  params.max_sequence_length = 0;
  EXPECT_TRUE(cuda::LaunchAttention(params, nullptr).ok());
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

}  // namespace
}  // namespace sculpt
