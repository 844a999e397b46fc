// Row-wise and elementwise CPU ops: embedding gather, RMSNorm, SwiGLU, residual add.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "cpu/cpu_ops.h"
#include "cpu/vector_math.h"

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
    if (params.table.dtype == DType::kBF16) {
      ConvertToFloat(DType::kBF16, static_cast<const uint16_t*>(params.table.data) + id * d, d,
                     params.out.f32() + i * d);
    } else {
      std::memcpy(params.out.f32() + i * d, params.table.f32() + id * d, d * sizeof(float));
    }
  }
  return absl::OkStatus();
}

namespace {

// One row of RMSNorm, after x += residual when there is one (the fused residual add); the weight
// is fp32 or bf16, as the backend stores weights.
template <typename Weight>
void NormalizeRow(float* x, const float* residual, const Weight* weight, float* out, int64_t d,
                  float eps) {
  float sum_squares = 0.0f;
  for (int64_t j = 0; j < d; ++j) {
    if (residual != nullptr) x[j] += residual[j];
    sum_squares += x[j] * x[j];
  }
  const float inverse_rms = 1.0f / std::sqrt(sum_squares / static_cast<float>(d) + eps);
  for (int64_t j = 0; j < d; ++j) {
    if constexpr (std::is_same_v<Weight, uint16_t>) {
      out[j] = x[j] * inverse_rms * BF16ToFloat(weight[j]);
    } else {
      out[j] = x[j] * inverse_rms * weight[j];
    }
  }
}

template <typename Weight>
void NormalizeRows(const TensorView& x, const float* residual, const TensorView& weight,
                   const TensorView& out, float eps) {
  const int64_t d = x.cols;
  const auto* w = static_cast<const Weight*>(weight.data);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < x.rows; ++r) {
    NormalizeRow(x.f32() + r * d, residual == nullptr ? nullptr : residual + r * d, w,
                 out.f32() + r * d, d, eps);
  }
}

void NormalizeRows(const TensorView& x, const float* residual, const TensorView& weight,
                   const TensorView& out, float eps) {
  if (weight.dtype == DType::kBF16) {
    NormalizeRows<uint16_t>(x, residual, weight, out, eps);
  } else {
    NormalizeRows<float>(x, residual, weight, out, eps);
  }
}

}  // namespace

absl::Status RmsNorm(const RmsNormParams& params) {
  // x is only read without a residual.
  NormalizeRows(params.x, nullptr, params.weight, params.out, params.eps);
  return absl::OkStatus();
}

absl::Status AddRmsNorm(const AddRmsNormParams& params) {
  NormalizeRows(params.x, params.residual.f32(), params.weight, params.out, params.eps);
  return absl::OkStatus();
}

absl::Status SwiGlu(const SwiGluParams& params) {
  const int64_t count = params.gate.num_elements();
  const float* gate = params.gate.f32();
  const float* up = params.up.f32();
  float* out = params.out.f32();
  // Chunks of whole vectors, the same for any thread count.
  constexpr int64_t kChunk = 4096;
#pragma omp parallel for schedule(static)
  for (int64_t first = 0; first < count; first += kChunk) {
    const int64_t n = std::min(kChunk, count - first);
    SiluMultiply(gate + first, up + first, out + first, n);
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
    const int64_t out_row = params.out_rows.empty() ? static_cast<int64_t>(i) : params.out_rows[i];
    std::memcpy(params.out.f32() + out_row * d, params.x.f32() + row * d, d * sizeof(float));
  }
  return absl::OkStatus();
}

}  // namespace sculpt::cpu
