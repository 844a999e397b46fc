// RMSNorm on the device, alone or fused with the residual add before it: out = x / sqrt(mean(x^2)
// + eps) * weight per row, fp32 in and out, the gain stored as the weights are (bf16 or fp32).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"

namespace sculpt::cuda {

struct RmsNormKernelParams {
  const float* x = nullptr;      // [rows, cols], device, read
  const void* weight = nullptr;  // [cols] of weight_dtype, device, read
  DType weight_dtype = DType::kBF16;
  float* out = nullptr;  // [rows, cols], device, written (may alias x)
  int64_t rows = 0;
  int64_t cols = 0;
  float eps = 1e-5f;
};

absl::Status LaunchRmsNorm(const RmsNormKernelParams& params, cudaStream_t stream);

// The residual add fused with the norm that follows it: x += residual, then out = RMSNorm(x);
// one pass over the row instead of two kernels.
struct AddRmsNormKernelParams {
  float* x = nullptr;               // [rows, cols], device, read and written (x + residual)
  const float* residual = nullptr;  // [rows, cols], device, read
  const void* weight = nullptr;     // [cols] of weight_dtype, device, read
  DType weight_dtype = DType::kBF16;
  float* out = nullptr;  // [rows, cols], device, written (no alias of x or residual)
  int64_t rows = 0;
  int64_t cols = 0;
  float eps = 1e-5f;
};

absl::Status LaunchAddRmsNorm(const AddRmsNormKernelParams& params, cudaStream_t stream);

}  // namespace sculpt::cuda
