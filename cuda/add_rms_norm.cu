#include "cuda/add_rms_norm.cuh"
#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/load_element.cuh"

namespace sculpt::cuda {
namespace {

constexpr int kThreads = 256;

template <DType kWeight>
__global__ void __launch_bounds__(kThreads) AddRmsNormKernel(AddRmsNormKernelParams params) {
  __shared__ float partial[32];
  const int64_t offset = static_cast<int64_t>(blockIdx.x) * params.cols;
  float* x = params.x + offset;
  const float* residual = params.residual + offset;
  float* out = params.out + offset;
  float sum_squares = 0.0f;
  // Each thread reads back only the elements it wrote, so no barrier is needed between passes.
  for (int64_t j = threadIdx.x; j < params.cols; j += blockDim.x) {
    const float sum = x[j] + residual[j];
    x[j] = sum;
    sum_squares += sum * sum;
  }
  sum_squares = BlockSum(sum_squares, partial);
  const float inverse_rms =
      1.0f / sqrtf(sum_squares / static_cast<float>(params.cols) + params.eps);
  for (int64_t j = threadIdx.x; j < params.cols; j += blockDim.x) {
    out[j] = x[j] * inverse_rms * LoadAsFloat<kWeight>(params.weight, j);
  }
}

}  // namespace

absl::Status LaunchAddRmsNorm(const AddRmsNormKernelParams& params, cudaStream_t stream) {
  if (params.rows == 0) return absl::OkStatus();
  DispatchDType(params.weight_dtype, [&](auto weight) {
    AddRmsNormKernel<decltype(weight)::value>
        <<<static_cast<unsigned>(params.rows), kThreads, 0, stream>>>(params);
  });
  return LaunchStatus("add_rms_norm");
}

}  // namespace sculpt::cuda
