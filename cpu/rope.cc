// Rotary position embedding (NeoX rotate-half), computed in fp32 as LLaDA's reference does.
#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "cpu/cpu_ops.h"

namespace sculpt::cpu {

absl::Status Rope(const RopeParams& params) {
  const int half = params.head_dim / 2;
  const int64_t width = params.x.cols;
  const int n_heads = static_cast<int>(width / params.head_dim);
  // On the stack: a forward allocates nothing. No model has heads near this wide.
  constexpr int kMaxHalf = 1024;
  if (half > kMaxHalf || half < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: head_dim ", params.head_dim, " is above ", 2 * kMaxHalf));
  }
  // The reference builds inv_freq in fp32 from theta ** (2j / head_dim).
  std::array<float, kMaxHalf> inverse_frequency;
  for (int j = 0; j < half; ++j) {
    const float exponent = static_cast<float>(2 * j) / static_cast<float>(params.head_dim);
    inverse_frequency[j] = 1.0f / std::pow(static_cast<float>(params.theta), exponent);
  }
  const auto& offsets = params.layout.sequence_offsets;
  for (int32_t s = 0; s + 1 < static_cast<int32_t>(offsets.size()); ++s) {
    const int32_t begin = offsets[s];
    const int32_t end = offsets[s + 1];
#pragma omp parallel for schedule(static)
    for (int32_t row = begin; row < end; ++row) {
      const auto position = static_cast<float>(params.layout.position(s, row));
      float* x = params.x.f32() + static_cast<int64_t>(row) * width;
      for (int j = 0; j < half; ++j) {
        const float angle = position * inverse_frequency[j];
        const float cosine = std::cos(angle);
        const float sine = std::sin(angle);
        for (int h = 0; h < n_heads; ++h) {
          float* head = x + h * params.head_dim;
          const float first = head[j];
          const float second = head[j + half];
          head[j] = first * cosine - second * sine;
          head[j + half] = second * cosine + first * sine;
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace sculpt::cpu
