// Random tensors made on the device, for benchmarks at real model sizes without a checkpoint:
// element i is offset + scale * sqrt(3) * (2u - 1) with u uniform in [0, 1) from a hash of
// (seed, i), so its standard deviation is `scale`. RandomFillValue is the CPU twin.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"

#ifndef SCULPT_HOST_DEVICE
#ifdef __CUDACC__
#define SCULPT_HOST_DEVICE __host__ __device__
#else
#define SCULPT_HOST_DEVICE
#endif
#endif

namespace sculpt::cuda {

struct FillRandomKernelParams {
  void* data = nullptr;  // [count] of dtype, device, written
  DType dtype = DType::kBF16;
  int64_t count = 0;
  uint64_t seed = 0;
  float scale = 0.02f;
  float offset = 0.0f;
};

// The value of element `index` before rounding to the dtype (splitmix64 of seed and index).
inline SCULPT_HOST_DEVICE float RandomFillValue(uint64_t seed, int64_t index, float scale,
                                                float offset) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(index) + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // 24 bits: exact in fp32
  return offset + scale * 1.7320508f * (2.0f * u - 1.0f);
}

absl::Status LaunchFillRandom(const FillRandomKernelParams& params, cudaStream_t stream);

}  // namespace sculpt::cuda
