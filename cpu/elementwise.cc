// Row-wise and elementwise CPU ops: embedding gather, RMSNorm, SwiGLU, residual add.
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "cpu/cpu_ops.h"

namespace sculpt::cpu {

absl::Status Embed(const EmbedParams& params) {
  const int64_t d = params.table.cols;
  const int64_t n = static_cast<int64_t>(params.token_ids.size());
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = params.token_ids[i];
    if (id < 0 || id >= params.table.rows) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token id ", id, " is outside the embedding table [0, ", params.table.rows, ")"));
    }
    std::memcpy(params.out.f32() + i * d, params.table.f32() + id * d, d * sizeof(float));
  }
  return absl::OkStatus();
}

namespace {

// One row of RMSNorm, after x += residual when there is one (the fused residual add).
void NormalizeRow(float* x, const float* residual, const float* weight, float* out, int64_t d,
                  float eps) {
  float sum_squares = 0.0f;
  for (int64_t j = 0; j < d; ++j) {
    if (residual != nullptr) x[j] += residual[j];
    sum_squares += x[j] * x[j];
  }
  const float inverse_rms = 1.0f / std::sqrt(sum_squares / static_cast<float>(d) + eps);
  for (int64_t j = 0; j < d; ++j) out[j] = x[j] * inverse_rms * weight[j];
}

}  // namespace

absl::Status RmsNorm(const RmsNormParams& params) {
  const int64_t d = params.x.cols;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < params.x.rows; ++r) {
    // x is only read without a residual.
    NormalizeRow(params.x.f32() + r * d, nullptr, params.weight.f32(), params.out.f32() + r * d, d,
                 params.eps);
  }
  return absl::OkStatus();
}

absl::Status AddRmsNorm(const AddRmsNormParams& params) {
  const int64_t d = params.x.cols;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < params.x.rows; ++r) {
    NormalizeRow(params.x.f32() + r * d, params.residual.f32() + r * d, params.weight.f32(),
                 params.out.f32() + r * d, d, params.eps);
  }
  return absl::OkStatus();
}

absl::Status SwiGlu(const SwiGluParams& params) {
  const int64_t count = params.gate.num_elements();
  const float* gate = params.gate.f32();
  const float* up = params.up.f32();
  float* out = params.out.f32();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
  return absl::OkStatus();
}

absl::Status Add(const AddParams& params) {
  const int64_t count = params.a.num_elements();
  const float* a = params.a.f32();
  const float* b = params.b.f32();
  float* out = params.out.f32();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) out[i] = a[i] + b[i];
  return absl::OkStatus();
}

absl::Status GatherRows(const GatherRowsParams& params) {
  const int64_t d = params.x.cols;
  for (size_t i = 0; i < params.rows.size(); ++i) {
    const int32_t row = params.rows[i];
    if (row < 0 || row >= params.x.rows) {
      return absl::InternalError(absl::StrCat("gather row ", row, " out of range ", params.x.rows));
    }
    std::memcpy(params.out.f32() + i * d, params.x.f32() + row * d, d * sizeof(float));
  }
  return absl::OkStatus();
}

}  // namespace sculpt::cpu
