#include "cuda/cuda_check.cuh"
#include "cuda/embed.cuh"
#include "cuda/load_element.cuh"

namespace sculpt::cuda {
namespace {

template <DType kTable>
__global__ void EmbedKernel(EmbedKernelParams params) {
  const int64_t row = blockIdx.x;
  const int64_t id = params.token_ids[row];
  float* out = params.out + row * params.d_model;
  for (int64_t j = threadIdx.x; j < params.d_model; j += blockDim.x) {
    out[j] = LoadAsFloat<kTable>(params.table, id * params.d_model + j);
  }
}

}  // namespace

absl::Status LaunchEmbed(const EmbedKernelParams& params, cudaStream_t stream) {
  if (params.n_tokens == 0) return absl::OkStatus();
  const int threads = params.d_model >= 256 ? 256 : 128;
  DispatchDType(params.table_dtype, [&](auto table) {
    EmbedKernel<decltype(table)::value>
        <<<static_cast<unsigned>(params.n_tokens), threads, 0, stream>>>(params);
  });
  return LaunchStatus("embed");
}

}  // namespace sculpt::cuda
