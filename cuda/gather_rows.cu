#include "cuda/cuda_check.cuh"
#include "cuda/gather_rows.cuh"

namespace sculpt::cuda {
namespace {

__global__ void GatherRowsKernel(GatherRowsKernelParams params) {
  const float* source = params.x + static_cast<int64_t>(params.rows[blockIdx.x]) * params.cols;
  const int64_t out_row = params.out_rows == nullptr ? blockIdx.x : params.out_rows[blockIdx.x];
  float* out = params.out + out_row * params.cols;
  for (int64_t j = threadIdx.x; j < params.cols; j += blockDim.x) out[j] = source[j];
}

}  // namespace

absl::Status LaunchGatherRows(const GatherRowsKernelParams& params, cudaStream_t stream) {
  if (params.n_out == 0) return absl::OkStatus();
  GatherRowsKernel<<<static_cast<unsigned>(params.n_out), 256, 0, stream>>>(params);
  return LaunchStatus("gather_rows");
}

}  // namespace sculpt::cuda
