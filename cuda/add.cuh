// Elementwise add on the device: out = a + b, where b is either a full [rows, cols] fp32 tensor
// (the residual add) or one row broadcast to every row (a projection bias, stored as the
// weights are).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"

namespace sculpt::cuda {

struct AddKernelParams {
  const float* a = nullptr;  // [rows, cols], device, read
  const void* b = nullptr;   // [rows, cols] or [1, cols] (broadcast_b) of b_dtype, device, read
  DType b_dtype = DType::kF32;
  bool broadcast_b = false;
  float* out = nullptr;  // [rows, cols], device, written (may alias a)
  int64_t rows = 0;
  int64_t cols = 0;
};

absl::Status LaunchAdd(const AddKernelParams& params, cudaStream_t stream);

}  // namespace sculpt::cuda
