#include <algorithm>

#include "cuda/add.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/load_element.cuh"

namespace sculpt::cuda {
namespace {

template <DType kB, bool kBroadcast>
__global__ void AddKernel(AddKernelParams params) {
  const int64_t count = params.rows * params.cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const int64_t b_index = kBroadcast ? i % params.cols : i;
    params.out[i] = params.a[i] + LoadAsFloat<kB>(params.b, b_index);
  }
}

}  // namespace

absl::Status LaunchAdd(const AddKernelParams& params, cudaStream_t stream) {
  const int64_t count = params.rows * params.cols;
  if (count == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  const auto blocks =
      static_cast<unsigned>(std::min<int64_t>((count + kThreads - 1) / kThreads, 65535));
  DispatchDType(params.b_dtype, [&](auto b) {
    constexpr DType kB = decltype(b)::value;
    if (params.broadcast_b) {
      AddKernel<kB, true><<<blocks, kThreads, 0, stream>>>(params);
    } else {
      AddKernel<kB, false><<<blocks, kThreads, 0, stream>>>(params);
    }
  });
  return LaunchStatus("add");
}

}  // namespace sculpt::cuda
