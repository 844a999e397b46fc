// Non-causal attention over a packed batch: each sequence attends to all of its own rows.
// Plain loops with a fixed reduction order, so a row's result never depends on what else is
// in the batch.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu_ops.h"

namespace sculpt::cpu {
namespace {

// Eight independent partial sums let the compiler vectorise without reassociating.
inline float Dot(const float* a, const float* b, int n) {
  float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int lane = 0; lane < 8; ++lane) partial[lane] += a[i + lane] * b[i + lane];
  }
  float sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
              ((partial[4] + partial[5]) + (partial[6] + partial[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace

absl::Status Attention(const AttentionParams& params) {
  const int head_dim = params.head_dim;
  const int group = params.n_heads / params.n_kv_heads;
  const int64_t q_stride = params.q.cols;
  const int64_t kv_stride = params.k.cols;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const auto& offsets = params.layout.sequence_offsets;
  const int32_t n_tokens = params.layout.num_tokens();

  // One work item per (query row, head); rows of every sequence share the loop.
#pragma omp parallel
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic, 16)
    for (int64_t item = 0; item < static_cast<int64_t>(n_tokens) * params.n_heads; ++item) {
      const int32_t row = static_cast<int32_t>(item / params.n_heads);
      const int head = static_cast<int>(item % params.n_heads);
      const int kv_head = head / group;
      const int32_t sequence =
          static_cast<int32_t>(std::upper_bound(offsets.begin(), offsets.end(), row) -
                               offsets.begin()) -
          1;
      const int32_t begin = offsets[sequence];
      const int32_t length = offsets[sequence + 1] - begin;

      const float* query = params.q.f32() + row * q_stride + head * head_dim;
      const float* keys = params.k.f32() + begin * kv_stride + kv_head * head_dim;
      const float* values = params.v.f32() + begin * kv_stride + kv_head * head_dim;
      scores.resize(length);
      float max_score = -INFINITY;
      for (int32_t j = 0; j < length; ++j) {
        scores[j] = Dot(query, keys + j * kv_stride, head_dim) * scale;
        max_score = std::max(max_score, scores[j]);
      }
      float denominator = 0.0f;
      for (int32_t j = 0; j < length; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        denominator += scores[j];
      }
      float* out = params.out.f32() + row * q_stride + head * head_dim;
      std::fill(out, out + head_dim, 0.0f);
      for (int32_t j = 0; j < length; ++j) {
        const float weight = scores[j];
        const float* value = values + j * kv_stride;
        for (int c = 0; c < head_dim; ++c) out[c] += weight * value[c];
      }
      const float inverse = 1.0f / denominator;
      for (int c = 0; c < head_dim; ++c) out[c] *= inverse;
    }
  }
  return absl::OkStatus();
}

}  // namespace sculpt::cpu
