// Block-wide sums for row kernels (one block per row). Included by .cu files only.
#pragma once

namespace sculpt::cuda {

// Every thread of the block must call it; all get the sum. blockDim.x is a multiple of 32 and
// at most 1024. `shared` holds 32 values.
template <typename T>
__device__ __forceinline__ T BlockSum(T value, T* shared) {
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  const int warps = blockDim.x / 32;
  value = lane < warps ? shared[lane] : T(0);
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

}  // namespace sculpt::cuda
