#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/load_element.cuh"
#include "cuda/rms_norm.cuh"

namespace sculpt::cuda {
namespace {

constexpr int kThreads = 256;

// One block per row. With a residual, x += residual first; each thread reads back only the
// elements it wrote, so no barrier is needed between the passes.
template <DType kWeight, bool kAddResidual>
__global__ void __launch_bounds__(kThreads) RmsNormKernel(AddRmsNormKernelParams params) {
  __shared__ float partial[32];
  const int64_t offset = static_cast<int64_t>(blockIdx.x) * params.cols;
  float* x = params.x + offset;
  float* out = params.out + offset;
  float sum_squares = 0.0f;
  for (int64_t j = threadIdx.x; j < params.cols; j += blockDim.x) {
    float value = x[j];
    if constexpr (kAddResidual) {
      value += params.residual[offset + j];
      x[j] = value;
    }
    sum_squares += value * value;
  }
  sum_squares = BlockSum(sum_squares, partial);
  // Same expression as the CPU twin; only the summation order differs.
  const float inverse_rms =
      1.0f / sqrtf(sum_squares / static_cast<float>(params.cols) + params.eps);
  for (int64_t j = threadIdx.x; j < params.cols; j += blockDim.x) {
    out[j] = x[j] * inverse_rms * LoadAsFloat<kWeight>(params.weight, j);
  }
}

template <bool kAddResidual>
absl::Status Launch(const AddRmsNormKernelParams& params, cudaStream_t stream) {
  if (params.rows == 0) return absl::OkStatus();
  DispatchDType(params.weight_dtype, [&](auto weight) {
    RmsNormKernel<decltype(weight)::value, kAddResidual>
        <<<static_cast<unsigned>(params.rows), kThreads, 0, stream>>>(params);
  });
  return LaunchStatus(kAddResidual ? "add_rms_norm" : "rms_norm");
}

}  // namespace

absl::Status LaunchRmsNorm(const RmsNormKernelParams& params, cudaStream_t stream) {
  // x is only read without a residual.
  return Launch<false>({const_cast<float*>(params.x), nullptr, params.weight, params.weight_dtype,
                        params.out, params.rows, params.cols, params.eps},
                       stream);
}

absl::Status LaunchAddRmsNorm(const AddRmsNormKernelParams& params, cudaStream_t stream) {
  return Launch<true>(params, stream);
}

}  // namespace sculpt::cuda
