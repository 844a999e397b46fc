#include <algorithm>

#include "cuda/convert.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/load_element.cuh"

namespace sculpt::cuda {
namespace {

template <DType kSrc, DType kDst>
__global__ void ConvertKernel(ConvertKernelParams params) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < params.count;
       i += stride) {
    const float value = LoadAsFloat<kSrc>(params.src, i);
    StoreFromFloat<kDst>(params.dst, i, value);
  }
}

}  // namespace

absl::Status LaunchConvert(const ConvertKernelParams& params, cudaStream_t stream) {
  if (params.count == 0) return absl::OkStatus();
  if (params.src_dtype == params.dst_dtype) {
    return CudaStatus(
        cudaMemcpyAsync(params.dst, params.src,
                        static_cast<size_t>(params.count) * DTypeSize(params.src_dtype),
                        cudaMemcpyDeviceToDevice, stream),
        "convert (copy)");
  }
  constexpr int kThreads = 256;
  const auto blocks =
      static_cast<unsigned>(std::min<int64_t>((params.count + kThreads - 1) / kThreads, 65535));
  DispatchDType(params.src_dtype, [&](auto src) {
    DispatchDType(params.dst_dtype, [&](auto dst) {
      ConvertKernel<decltype(src)::value, decltype(dst)::value>
          <<<blocks, kThreads, 0, stream>>>(params);
    });
  });
  return LaunchStatus("convert");
}

}  // namespace sculpt::cuda
