// SwiGLU on the device: out = silu(gate) * up, elementwise, fp32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"

namespace sculpt::cuda {

struct SwiGluKernelParams {
  const float* gate = nullptr;  // [count], device, read
  const float* up = nullptr;    // [count], device, read
  float* out = nullptr;         // [count], device, written (may alias gate)
  int64_t count = 0;
};

absl::Status LaunchSwiGlu(const SwiGluKernelParams& params, cudaStream_t stream);

}  // namespace sculpt::cuda
