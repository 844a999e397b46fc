// One CTA per row: the guided logits are recomputed from the untouched conditional and
// unconditional rows with the CPU's float32 operations (no FMA contraction), so they are the
// CPU's bit for bit; the float64 normalizer is a block reduction (its order differs from the
// CPU's, ~1e-15 relative); the alternatives are top_k rounds of a block argmax, each taking the
// best entry below the previous one in the total order (higher logit, then lower id), which
// gives exactly the CPU's list.
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/token_logprobs.cuh"
#include "model/token_choice.h"

namespace sculpt::cuda {
namespace {

constexpr int kBlock = 256;

struct Entry {
  float value;
  int32_t id;  // -1: none
};

__device__ __forceinline__ bool Better(const Entry& a, const Entry& b) {
  if (b.id < 0) return a.id >= 0;
  if (a.id < 0) return false;
  return a.value > b.value || (a.value == b.value && a.id < b.id);
}

__device__ __forceinline__ Entry WarpBest(Entry entry) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const Entry other{__shfl_xor_sync(0xffffffffu, entry.value, offset),
                      __shfl_xor_sync(0xffffffffu, entry.id, offset)};
    if (Better(other, entry)) entry = other;
  }
  return entry;
}

// Every thread gets the block's best entry.
__device__ Entry BlockBest(Entry entry, Entry* shared) {
  entry = WarpBest(entry);
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  __syncthreads();  // `shared` may still be read by the previous call
  if (lane == 0) shared[warp] = entry;
  __syncthreads();
  entry = lane < kBlock / 32 ? shared[lane] : Entry{0.0f, -1};
  return WarpBest(entry);
}

__device__ __forceinline__ float BlockMaxSkippingNaN(float value, float* shared) {
  for (int offset = 16; offset > 0; offset /= 2) {
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  value = lane < kBlock / 32 ? shared[lane] : -INFINITY;
  for (int offset = 16; offset > 0; offset /= 2) {
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  return value;
}

__global__ void __launch_bounds__(kBlock) TokenLogprobsKernel(const TokenLogprobsKernelParams p) {
  __shared__ Entry best_shared[32];
  __shared__ float max_shared[32];
  __shared__ double sum_shared[32];
  const int64_t row = blockIdx.x;
  const int vocab = p.vocab;
  const float* cond = p.cond_logits + row * vocab;
  const float* uncond = p.uncond_logits == nullptr ? nullptr : p.uncond_logits + row * vocab;
  const auto guided = [&](int v) {
    const float c = cond[v];
    if (uncond == nullptr) return c;
    const float u = uncond[v];
    return __fadd_rn(u, __fmul_rn(p.guidance, __fsub_rn(c, u)));
  };

  float thread_max = -INFINITY;
  for (int v = threadIdx.x; v < vocab; v += kBlock) thread_max = fmaxf(thread_max, guided(v));
  const double max_logit = BlockMaxSkippingNaN(thread_max, max_shared);
  double thread_sum = 0.0;
  for (int v = threadIdx.x; v < vocab; v += kBlock) {
    thread_sum += exp(static_cast<double>(guided(v)) - max_logit);
  }
  const double normalizer = max_logit + log(BlockSum(thread_sum, sum_shared));

  Entry previous{INFINITY, -1};  // nothing taken yet: every entry is below it
  for (int k = 0; k < p.top_k; ++k) {
    Entry best{0.0f, -1};
    for (int v = threadIdx.x; v < vocab; v += kBlock) {
      const float value = guided(v);
      if (isnan(value)) continue;
      const bool below = previous.id < 0 ? true
                                         : (value < previous.value ||
                                            (value == previous.value && v > previous.id));
      const Entry entry{value, v};
      if (below && Better(entry, best)) best = entry;
    }
    best = BlockBest(best, best_shared);
    if (threadIdx.x == 0) {
      p.top_ids[row * p.top_k + k] = best.id;
      p.top_values[row * p.top_k + k] =
          best.id < 0 ? -INFINITY : static_cast<double>(best.value) - normalizer;
    }
    if (best.id < 0) {
      for (int rest = k + 1 + static_cast<int>(threadIdx.x); rest < p.top_k; rest += kBlock) {
        p.top_ids[row * p.top_k + rest] = -1;
        p.top_values[row * p.top_k + rest] = -INFINITY;
      }
      break;
    }
    previous = best;
  }
  if (threadIdx.x == 0) {
    p.logprobs[row] = static_cast<double>(guided(p.tokens[row])) - normalizer;
  }
}

}  // namespace

absl::Status LaunchTokenLogprobs(const TokenLogprobsKernelParams& params, cudaStream_t stream) {
  if (params.n_rows < 0 || params.vocab < 1) {
    return absl::InvalidArgumentError(absl::StrCat("token_logprobs: n_rows (", params.n_rows,
                                                   ") must be >= 0 and vocab (", params.vocab,
                                                   ") >= 1"));
  }
  if (params.top_k < 0 || params.top_k > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat("token_logprobs: top_k must be in [0, ",
                                                   kMaxTopLogprobs, "], got ", params.top_k));
  }
  if (params.n_rows == 0) return absl::OkStatus();
  if (params.cond_logits == nullptr || params.tokens == nullptr || params.logprobs == nullptr ||
      (params.top_k > 0 && (params.top_ids == nullptr || params.top_values == nullptr))) {
    return absl::InvalidArgumentError(
        "token_logprobs: cond_logits, tokens, logprobs (and top_ids, top_values with top_k > 0) "
        "must be device pointers");
  }
  TokenLogprobsKernel<<<params.n_rows, kBlock, 0, stream>>>(params);
  return LaunchStatus("token_logprobs");
}

}  // namespace sculpt::cuda
