// cuda::LaunchAttention's own contract: rows bit-identical alone and in a batch, impossible params
// refused at the kernel. Its results against the CPU's, on awkward shapes, are in
// tests/backend/backend_ops_test.cc.
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

// Bit-for-bit equality of `rows` rows starting at row `a_first` of a and `b_first` of b.
bool SameRows(const std::vector<float>& a, int a_first, const std::vector<float>& b, int b_first,
              int rows, int width) {
  const size_t count = static_cast<size_t>(rows) * width;
  return std::memcmp(a.data() + static_cast<size_t>(a_first) * width,
                     b.data() + static_cast<size_t>(b_first) * width, count * sizeof(float)) == 0;
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
