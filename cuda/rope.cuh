// Rotary position embedding on the device (NeoX rotate-half), in place, fp32 as the reference
// computes it; the position of each row within its sequence comes from the host.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"

namespace sculpt::cuda {

struct RopeKernelParams {
  float* x = nullptr;                  // [rows, width], device, read and written
  const int32_t* positions = nullptr;  // [rows], device, read: row's position in its sequence
  int64_t rows = 0;
  int width = 0;     // n_heads * head_dim
  int head_dim = 0;  // even
  float theta = 10000.0f;
};

absl::Status LaunchRope(const RopeKernelParams& params, cudaStream_t stream);

}  // namespace sculpt::cuda
