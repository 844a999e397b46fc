#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/load_element.cuh"
#include "cuda/rms_norm.cuh"

namespace sculpt::cuda {
namespace {

constexpr int kThreads = 256;

template <DType kWeight>
__global__ void __launch_bounds__(kThreads) RmsNormKernel(RmsNormKernelParams params) {
  __shared__ float partial[32];
  const float* x = params.x + static_cast<int64_t>(blockIdx.x) * params.cols;
  float* out = params.out + static_cast<int64_t>(blockIdx.x) * params.cols;
  float sum_squares = 0.0f;
  for (int64_t j = threadIdx.x; j < params.cols; j += blockDim.x) sum_squares += x[j] * x[j];
  sum_squares = BlockSum(sum_squares, partial);
  // Same expression as the CPU twin; only the summation order differs.
  const float inverse_rms =
      1.0f / sqrtf(sum_squares / static_cast<float>(params.cols) + params.eps);
  for (int64_t j = threadIdx.x; j < params.cols; j += blockDim.x) {
    out[j] = x[j] * inverse_rms * LoadAsFloat<kWeight>(params.weight, j);
  }
}

}  // namespace

absl::Status LaunchRmsNorm(const RmsNormKernelParams& params, cudaStream_t stream) {
  if (params.rows == 0) return absl::OkStatus();
  DispatchDType(params.weight_dtype, [&](auto weight) {
    RmsNormKernel<decltype(weight)::value>
        <<<static_cast<unsigned>(params.rows), kThreads, 0, stream>>>(params);
  });
  return LaunchStatus("rms_norm");
}

}  // namespace sculpt::cuda
