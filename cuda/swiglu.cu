#include <algorithm>

#include "cuda/cuda_check.cuh"
#include "cuda/swiglu.cuh"

namespace sculpt::cuda {
namespace {

__global__ void SwiGluKernel(SwiGluKernelParams params) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < params.count;
       i += stride) {
    const float g = params.gate[i];
    params.out[i] = g / (1.0f + expf(-g)) * params.up[i];
  }
}

}  // namespace

absl::Status LaunchSwiGlu(const SwiGluKernelParams& params, cudaStream_t stream) {
  if (params.count == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((params.count + kThreads - 1) / kThreads, 65535);
  SwiGluKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(params);
  return LaunchStatus("swiglu");
}

}  // namespace sculpt::cuda
