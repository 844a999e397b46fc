// Row gather on the device: out[i] = x[rows[i]], fp32 (the hidden states of the positions whose
// logits a step needs), or with out_rows the scatter out[out_rows[i]] = x[rows[i]] (fresh keys
// and values into a KV cache).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"

namespace sculpt::cuda {

struct GatherRowsKernelParams {
  const float* x = nullptr;       // [x_rows, cols], device, read
  const int32_t* rows = nullptr;  // [n_out], device, read; each in [0, x_rows)
  float* out = nullptr;           // [n_out, cols], device, written
  int64_t n_out = 0;
  int64_t cols = 0;
  const int32_t* out_rows = nullptr;  // [n_out] distinct rows of out, device, read; or null
};

// The caller checks the row indices (they come from the host); the kernel trusts them.
absl::Status LaunchGatherRows(const GatherRowsKernelParams& params, cudaStream_t stream);

}  // namespace sculpt::cuda
