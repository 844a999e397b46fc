#include <algorithm>

#include "cuda/cuda_check.cuh"
#include "cuda/fill_random.cuh"
#include "cuda/load_element.cuh"

namespace sculpt::cuda {
namespace {

template <DType kType>
__global__ void FillRandomKernel(FillRandomKernelParams params) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < params.count;
       i += stride) {
    const float value = RandomFillValue(params.seed, i, params.scale, params.offset);
    StoreFromFloat<kType>(params.data, i, value);
  }
}

}  // namespace

absl::Status LaunchFillRandom(const FillRandomKernelParams& params, cudaStream_t stream) {
  if (params.count == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  const auto blocks =
      static_cast<unsigned>(std::min<int64_t>((params.count + kThreads - 1) / kThreads, 65535));
  DispatchDType(params.dtype, [&](auto type) {
    FillRandomKernel<decltype(type)::value><<<blocks, kThreads, 0, stream>>>(params);
  });
  return LaunchStatus("fill_random");
}

}  // namespace sculpt::cuda
