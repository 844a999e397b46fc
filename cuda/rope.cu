#include "cuda/cuda_check.cuh"
#include "cuda/rope.cuh"

namespace sculpt::cuda {
namespace {

// One block per row; a thread per (head, frequency) pair.
__global__ void RopeKernel(RopeKernelParams params) {
  const int half = params.head_dim / 2;
  const int pairs = params.width / 2;
  float* x = params.x + static_cast<int64_t>(blockIdx.x) * params.width;
  const float position = static_cast<float>(params.positions[blockIdx.x]);
  for (int pair = threadIdx.x; pair < pairs; pair += blockDim.x) {
    const int head = pair / half;
    const int j = pair % half;
    // As the CPU twin (and LLaDA's reference): inv_freq in fp32 from theta ** (2j / head_dim).
    const float exponent = static_cast<float>(2 * j) / static_cast<float>(params.head_dim);
    const float inverse_frequency = 1.0f / powf(params.theta, exponent);
    const float angle = position * inverse_frequency;
    const float cosine = cosf(angle);
    const float sine = sinf(angle);
    float* head_x = x + head * params.head_dim;
    const float first = head_x[j];
    const float second = head_x[j + half];
    head_x[j] = first * cosine - second * sine;
    head_x[j + half] = second * cosine + first * sine;
  }
}

}  // namespace

absl::Status LaunchRope(const RopeKernelParams& params, cudaStream_t stream) {
  if (params.head_dim <= 0 || params.head_dim % 2 != 0 || params.width % params.head_dim != 0) {
    return absl::InvalidArgumentError("rope: head_dim must be even and divide the row width");
  }
  if (params.rows == 0) return absl::OkStatus();
  RopeKernel<<<static_cast<unsigned>(params.rows), 128, 0, stream>>>(params);
  return LaunchStatus("rope");
}

}  // namespace sculpt::cuda
