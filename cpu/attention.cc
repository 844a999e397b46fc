// Non-causal attention over a packed batch: each sequence attends to all of its own rows.
// Work items are (sequence, head, block of query rows); each runs two single-threaded sgemms
// (scores = Q K^T, out = P V) inside the OpenMP loop. An item's shapes depend only on its own
// sequence, so a row's result never depends on what else is in the batch.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/vector_math.h"

namespace sculpt::cpu {
namespace {

// Bounds the per-thread score buffer to kQueryBlock x sequence length.
constexpr int32_t kQueryBlock = 128;

struct WorkItem {
  int32_t sequence;
  int32_t first_row;  // within the sequence
  int32_t rows;
  int head;
};

}  // namespace

absl::Status Attention(const AttentionParams& params) {
  const int head_dim = params.head_dim;
  const int group = params.n_heads / params.n_kv_heads;
  const int64_t q_stride = params.q.cols;
  const int64_t kv_stride = params.k.cols;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const auto& offsets = params.layout.sequence_offsets;

  std::vector<WorkItem> items;
  for (int32_t s = 0; s + 1 < static_cast<int32_t>(offsets.size()); ++s) {
    const int32_t length = offsets[s + 1] - offsets[s];
    for (int32_t first = 0; first < length; first += kQueryBlock) {
      for (int head = 0; head < params.n_heads; ++head) {
        items.push_back({s, first, std::min(kQueryBlock, length - first), head});
      }
    }
  }

#pragma omp parallel
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic, 1)
    for (size_t i = 0; i < items.size(); ++i) {
      const WorkItem& item = items[i];
      const int32_t begin = offsets[item.sequence];
      const int32_t length = offsets[item.sequence + 1] - begin;
      const int kv_head = item.head / group;
      const float* queries =
          params.q.f32() + (begin + item.first_row) * q_stride + item.head * head_dim;
      const float* keys = params.k.f32() + begin * kv_stride + kv_head * head_dim;
      const float* values = params.v.f32() + begin * kv_stride + kv_head * head_dim;
      float* out = params.out.f32() + (begin + item.first_row) * q_stride + item.head * head_dim;

      scores.resize(static_cast<size_t>(item.rows) * length);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, item.rows, length, head_dim, scale,
                  queries, q_stride, keys, kv_stride, 0.0f, scores.data(), length);
      for (int32_t r = 0; r < item.rows; ++r) {
        float* row = scores.data() + static_cast<size_t>(r) * length;
        const float max_score = *std::max_element(row, row + length);
        const float inverse = 1.0f / ExpShiftedInPlace(row, length, max_score);
        for (int32_t j = 0; j < length; ++j) row[j] *= inverse;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, item.rows, head_dim, length, 1.0f,
                  scores.data(), length, values, kv_stride, 0.0f, out, q_stride);
    }
  }
  return absl::OkStatus();
}

}  // namespace sculpt::cpu
