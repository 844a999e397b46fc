// Dense projections on the device through cuBLAS: out[m, n] = x[m, k] * weight[n, k]^T, the
// layout of torch.nn.Linear. bf16 weights: x is rounded to bf16 into a scratch buffer and the
// product accumulates in fp32 (tensor cores); fp32 weights: a full-fp32 product without TF32, the
// CPU twin's arithmetic (parity tests use it).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"

namespace sculpt::cuda {

struct GemmKernelParams {
  const float* x = nullptr;      // [m, k], device, read
  const void* weight = nullptr;  // [n, k] of weight_dtype (kF32 or kBF16), device, read
  DType weight_dtype = DType::kBF16;
  float* out = nullptr;  // [m, n], device, written
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  void* x_scratch = nullptr;  // [m, k] bf16, device, written (bf16 weights only)
};

// `cublas` must be bound to `stream`.
absl::Status LaunchGemm(const GemmKernelParams& params, cublasHandle_t cublas, cudaStream_t stream);

}  // namespace sculpt::cuda
