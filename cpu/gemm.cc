// Dense projections through OpenBLAS: out[m, n] = x[m, k] * weight[n, k]^T (+ bias).
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/cpu_ops.h"

namespace sculpt::cpu {
namespace {

// OpenBLAS (0.3.21 on x86-64) sends small GEMMs to a "small matrix" kernel whose summation
// order differs from its packed kernel, so a row's result would depend on how many rows share
// the call, and a batched forward would differ from an unbatched one. Our x * W^T is its
// column-major "TN" case, which that kernel only takes while n * m <= 1200; calls with fewer
// rows are padded with zero rows (discarded) past that bound. The invariance is asserted by
// tests/unit/cpu_ops_test.cc, which fails loudly if a future OpenBLAS changes the rule.
constexpr int kSmallKernelMaxOutputs = 1200;
constexpr int kMinGemmRows = 8;

int MinRowsForPackedKernel(int n) { return std::max(kMinGemmRows, kSmallKernelMaxOutputs / n + 1); }

void Sgemm(int m, int n, int k, const float* x, const float* weight, float* out) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, weight, k, 0.0f, out,
              n);
}

}  // namespace

absl::Status Gemm(const GemmParams& params) {
  const int m = static_cast<int>(params.x.rows);
  const int k = static_cast<int>(params.x.cols);
  const int n = static_cast<int>(params.weight.rows);
  if (m == 0) return absl::OkStatus();
  const int min_rows = MinRowsForPackedKernel(n);
  if (m >= min_rows) {
    Sgemm(m, n, k, params.x.f32(), params.weight.f32(), params.out.f32());
  } else {
    std::vector<float> padded_x(static_cast<size_t>(min_rows) * k, 0.0f);
    std::vector<float> padded_out(static_cast<size_t>(min_rows) * n);
    std::memcpy(padded_x.data(), params.x.f32(), static_cast<size_t>(m) * k * sizeof(float));
    Sgemm(min_rows, n, k, padded_x.data(), params.weight.f32(), padded_out.data());
    std::memcpy(params.out.f32(), padded_out.data(), static_cast<size_t>(m) * n * sizeof(float));
  }
  if (params.bias.data != nullptr) {
    const float* bias = params.bias.f32();
#pragma omp parallel for schedule(static)
    for (int r = 0; r < m; ++r) {
      float* row = params.out.f32() + static_cast<int64_t>(r) * n;
      for (int j = 0; j < n; ++j) row[j] += bias[j];
    }
  }
  return absl::OkStatus();
}

}  // namespace sculpt::cpu
