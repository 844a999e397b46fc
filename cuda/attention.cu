// Non-causal, grouped-query flash attention over a packed variable-length batch, in fp32 on the
// CUDA cores: the twin of cpu/attention.cc, tiled as FlashAttention-2 is.
//
// Why it is not faster: every multiply-add here runs on the fp32 CUDA cores, which give an H200
// about 67 TFLOP/s against roughly 990 dense for bf16 on its tensor cores. The next step is bf16
// (or tf32) mma for Q K^T and P V with fp32 accumulation and the same online softmax, K/V tiles
// fed by a deeper cp.async/TMA pipeline (FlashAttention-2/3); that also frees the shared memory
// that now caps an SM at two CTAs for head_dim 128.
//
// Layout of one CTA: 128 threads own a tile of kBlockM query rows of one head of one sequence and
// stream that sequence's K/V through shared memory kBlockN rows at a time. The threads form 16 row
// groups of 8; thread (g, c) holds query rows g + 16 i, score columns c + 8 j and output columns
// [4 c + 32 j, 4 c + 32 j + 4). Interleaved rows and a shared row stride of round_up(head_dim, 4)
// + 4 floats keep the float4 shared-memory reads of the inner loops free of bank conflicts.
#include <cuda_pipeline_primitives.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "cuda/attention.cuh"
#include "cuda/cuda_check.cuh"

namespace sculpt::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kColumnThreads = 8;  // threads that share one query row
constexpr int kRowGroups = kThreads / kColumnThreads;
constexpr int kMaxHeadDim = 256;
constexpr int kMaxGridYZ = 65535;
constexpr float kLog2e = 1.4426950408889634f;

// One tile shape. kExact: head_dim is exactly kHeadDim and every row is float4-aligned, so loops
// have compile-time trip counts and copies move 16 bytes; otherwise head_dim is read at run time
// and may be anything up to kHeadDim.
template <int kHeadDimArg, bool kExactArg, int kRowsPerThreadArg, int kBlockNArg>
struct TileConfig {
  static constexpr int kHeadDim = kHeadDimArg;
  static constexpr bool kExact = kExactArg;
  static constexpr int kRowsPerThread = kRowsPerThreadArg;
  static constexpr int kBlockM = kRowGroups * kRowsPerThread;
  static constexpr int kBlockN = kBlockNArg;
  static constexpr int kScoresPerRow = kBlockN / kColumnThreads;      // per thread
  static constexpr int kOutChunks = kHeadDim / (4 * kColumnThreads);  // float4s per thread, row
  static constexpr int kPStride = kBlockN + 4;  // keeps interleaved rows on distinct banks
  static_assert(kHeadDim % (4 * kColumnThreads) == 0, "output chunks must tile head_dim");
  static_assert(kBlockN % kColumnThreads == 0 && kBlockN % 4 == 0, "bad kBlockN");
};

// 64 x 32 tiles: 44 KiB of shared memory at head_dim 64 and 75 KiB at 128 (two CTAs an SM).
using HeadDim64 = TileConfig<64, true, 4, 32>;
using HeadDim128 = TileConfig<128, true, 4, 32>;
// 32 x 16 tiles, so that head_dim 256 needs 68 KiB and fits sm_89's 99 KiB per block.
using AnyHeadDim = TileConfig<kMaxHeadDim, false, 2, 16>;

__host__ __device__ constexpr int RoundUp4(int x) { return (x + 3) / 4 * 4; }

// Floats per row of a Q/K/V tile in shared memory: a multiple of 4 for float4 reads, and for a
// head_dim that is a multiple of 8 (every fast path, every model we serve) 4 more than a multiple
// of 8, so that 8 consecutive rows start on 8 distinct 4-bank groups.
__host__ __device__ constexpr int SharedRowStride(int head_dim) { return RoundUp4(head_dim) + 4; }

template <class Config>
size_t SharedBytes(int head_dim) {
  const size_t stride = static_cast<size_t>(SharedRowStride(head_dim));
  return sizeof(float) *
         ((Config::kBlockM + 2 * Config::kBlockN) * stride + Config::kBlockM * Config::kPStride);
}

__device__ __forceinline__ float Component(const float4& x, int index) {
  return index == 0 ? x.x : index == 1 ? x.y : index == 2 ? x.z : x.w;
}

// Starts copying kRows rows of one head ([kRows, head_dim] at `source`, row stride `ld`) into
// `tile` ([kRows, stride]). Rows at or past `valid_rows`, and columns [head_dim, round_up(head_dim,
// 4)), become zero, so partial tiles add nothing to the dot products.
template <class Config, int kRows>
__device__ __forceinline__ void LoadTileAsync(float* tile, const float* source, int64_t ld,
                                              int valid_rows, int head_dim, int stride) {
  if constexpr (Config::kExact) {
    constexpr int kChunksPerRow = Config::kHeadDim / 4;
    static_assert(kRows * kChunksPerRow % kThreads == 0, "tile does not split evenly");
#pragma unroll
    for (int i = 0; i < kRows * kChunksPerRow / kThreads; ++i) {
      const int chunk = i * kThreads + static_cast<int>(threadIdx.x);
      const int row = chunk / kChunksPerRow;
      const int column = chunk % kChunksPerRow * 4;
      const bool valid = row < valid_rows;
      // A zero-filled copy reads nothing, but its source must still be a global address.
      const float* from = source + (valid ? row * ld : 0) + column;
      __pipeline_memcpy_async(tile + row * stride + column, from, 16, valid ? 0 : 16);
    }
  } else {
    const int padded_dim = RoundUp4(head_dim);
    for (int element = threadIdx.x; element < kRows * padded_dim; element += kThreads) {
      const int row = element / padded_dim;
      const int column = element - row * padded_dim;
      float* to = tile + row * stride + column;
      if (row < valid_rows && column < head_dim) {
        __pipeline_memcpy_async(to, source + row * ld + column, 4);
      } else {
        *to = 0.0f;
      }
    }
  }
}

// Grid: (query tiles, n_heads, num_sequences). A CTA walks its sequence's query tiles with a
// stride of gridDim.x, so a short max_sequence_length still covers every row.
template <class Config>
__global__ void __launch_bounds__(kThreads) AttentionKernel(const AttentionKernelParams params) {
  constexpr int kRows = Config::kRowsPerThread;
  constexpr int kScores = Config::kScoresPerRow;
  constexpr int kChunks = Config::kOutChunks;
  constexpr int kBlockM = Config::kBlockM;
  constexpr int kBlockN = Config::kBlockN;
  constexpr int kPStride = Config::kPStride;

  const int sequence = blockIdx.z;
  const int head = blockIdx.y;
  const int32_t begin = params.sequence_offsets[sequence];
  const int length = params.sequence_offsets[sequence + 1] - begin;
  const int2 key_rows =
      params.kv_rows != nullptr ? params.kv_rows[sequence] : make_int2(begin, length);
  const int key_count = key_rows.y;
  const int head_dim = Config::kExact ? Config::kHeadDim : params.head_dim;
  const int padded_dim = RoundUp4(head_dim);
  const int stride = SharedRowStride(head_dim);
  const int kv_head = head / (params.n_heads / params.n_kv_heads);
  const int64_t q_ld = int64_t{params.n_heads} * head_dim;
  const int64_t kv_ld = int64_t{params.n_kv_heads} * head_dim;
  const float* q = params.q + begin * q_ld + head * head_dim;
  const float* k = params.k + int64_t{key_rows.x} * kv_ld + kv_head * head_dim;
  const float* v = params.v + int64_t{key_rows.x} * kv_ld + kv_head * head_dim;
  float* out = params.out + begin * q_ld + head * head_dim;

  extern __shared__ float4 shared[];
  float* q_tile = reinterpret_cast<float*>(shared);  // [kBlockM, stride]
  float* k_tile = q_tile + kBlockM * stride;         // [kBlockN, stride]
  float* v_tile = k_tile + kBlockN * stride;         // [kBlockN, stride]
  float* p_tile = v_tile + kBlockN * stride;         // [kBlockM, kPStride]

  const int column_thread = threadIdx.x % kColumnThreads;
  const int row_group = threadIdx.x / kColumnThreads;
  // Scores live in the log2 domain so that each probability is one exp2.
  const float scale_log2 = params.softmax_scale * kLog2e;
  const int causal_block = params.causal_blocks != nullptr ? params.causal_blocks[sequence] : 0;
  // Key j sits at position j of a cache's canvas, at the position of its row without a cache.
  const int first_key_position =
      causal_block > 0 && params.kv_rows == nullptr && length > 0 ? params.positions[begin] : 0;
  // The keys query row `row` sees: all, or those before the end of its block.
  const auto visible_keys = [&](int row) {
    if (causal_block == 0) return key_count;
    const int position = params.positions[begin + min(row, length - 1)];
    return max(0,
               min(key_count, (position / causal_block + 1) * causal_block - first_key_position));
  };

  for (int first_row = blockIdx.x * kBlockM; first_row < length; first_row += gridDim.x * kBlockM) {
    int row_keys[kRows];
#pragma unroll
    for (int i = 0; i < kRows; ++i)
      row_keys[i] = visible_keys(first_row + row_group + kRowGroups * i);
    // The tile's last row sees the most keys; key tiles past them are skipped.
    const int tile_keys = visible_keys(min(first_row + kBlockM, length) - 1);
    const int kv_tiles = (tile_keys + kBlockN - 1) / kBlockN;
    __syncthreads();  // the previous query tile is done with every shared buffer
    // Async groups, oldest first: {Q, K_0}, {V_0}, then {K_t+1} and {V_t+1} per key tile, so
    // "all but the newest group" is always the buffer about to be read.
    LoadTileAsync<Config, kBlockM>(q_tile, q + first_row * q_ld, q_ld, length - first_row, head_dim,
                                   stride);
    LoadTileAsync<Config, kBlockN>(k_tile, k, kv_ld, key_count, head_dim, stride);
    __pipeline_commit();
    LoadTileAsync<Config, kBlockN>(v_tile, v, kv_ld, key_count, head_dim, stride);
    __pipeline_commit();

    float acc[kRows][kChunks][4] = {};  // unnormalized output, [row][chunk][lane of float4]
    float row_max[kRows];               // running max of the scaled log2 scores
    float row_sum[kRows];               // this thread's share of the softmax denominator
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      row_max[i] = -INFINITY;
      row_sum[i] = 0.0f;
    }

    for (int tile = 0; tile < kv_tiles; ++tile) {
      const int first_key = tile * kBlockN;
      const int valid_keys = key_count - first_key;
      __pipeline_wait_prior(1);
      __syncthreads();  // K_tile (and Q) landed for every thread

      float scores[kRows][kScores] = {};
      const int dim_steps = padded_dim / 4;
#pragma unroll 4
      for (int step = 0; step < dim_steps; ++step) {
        float4 query[kRows];
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
          query[i] = *reinterpret_cast<const float4*>(
              q_tile + (row_group + kRowGroups * i) * stride + 4 * step);
        }
#pragma unroll
        for (int j = 0; j < kScores; ++j) {
          const float4 key = *reinterpret_cast<const float4*>(
              k_tile + (column_thread + kColumnThreads * j) * stride + 4 * step);
#pragma unroll
          for (int i = 0; i < kRows; ++i) {
            scores[i][j] = fmaf(query[i].x, key.x, scores[i][j]);
            scores[i][j] = fmaf(query[i].y, key.y, scores[i][j]);
            scores[i][j] = fmaf(query[i].z, key.z, scores[i][j]);
            scores[i][j] = fmaf(query[i].w, key.w, scores[i][j]);
          }
        }
      }

      // Online softmax: fold this tile into the running max and sum, rescaling what came before.
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        float tile_max = -INFINITY;
#pragma unroll
        for (int j = 0; j < kScores; ++j) {
          const bool valid = first_key + column_thread + kColumnThreads * j < row_keys[i];
          scores[i][j] = valid ? scores[i][j] * scale_log2 : -INFINITY;
          tile_max = fmaxf(tile_max, scores[i][j]);
        }
#pragma unroll
        for (int offset = kColumnThreads / 2; offset > 0; offset /= 2) {
          tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
        }
        const float new_max = fmaxf(row_max[i], tile_max);
        // While a row has seen only -inf scores, exp2(-inf - -inf) would be NaN: measure from 0,
        // which turns every such probability and the rescale of the empty past into 0.
        const float reference = new_max == -INFINITY ? 0.0f : new_max;
        const float rescale = exp2f(row_max[i] - reference);
        row_max[i] = new_max;
        row_sum[i] *= rescale;
        float* p_row = p_tile + (row_group + kRowGroups * i) * kPStride;
#pragma unroll
        for (int j = 0; j < kScores; ++j) {
          const float p = exp2f(scores[i][j] - reference);
          row_sum[i] += p;
          p_row[column_thread + kColumnThreads * j] = p;
        }
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[i][c][e] *= rescale;
        }
      }
      __syncthreads();  // P is whole, and K_tile is free for the next key tile
      if (tile + 1 < kv_tiles) {
        LoadTileAsync<Config, kBlockN>(k_tile, k + (first_key + kBlockN) * kv_ld, kv_ld,
                                       valid_keys - kBlockN, head_dim, stride);
      }
      __pipeline_commit();
      __pipeline_wait_prior(1);
      __syncthreads();  // V_tile landed for every thread

      // acc += P V. Key rows past the sequence are zero in V and have p == 0.
#pragma unroll
      for (int key = 0; key < kBlockN; key += 4) {
        float4 p[kRows];
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
          p[i] = *reinterpret_cast<const float4*>(p_tile + (row_group + kRowGroups * i) * kPStride +
                                                  key);
        }
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          const float* v_row = v_tile + (key + kk) * stride + 4 * column_thread;
#pragma unroll
          for (int c = 0; c < kChunks; ++c) {
            if (!Config::kExact && 4 * column_thread + 4 * kColumnThreads * c >= padded_dim) {
              continue;
            }
            const float4 value = *reinterpret_cast<const float4*>(v_row + 4 * kColumnThreads * c);
#pragma unroll
            for (int i = 0; i < kRows; ++i) {
              const float weight = Component(p[i], kk);
              acc[i][c][0] = fmaf(weight, value.x, acc[i][c][0]);
              acc[i][c][1] = fmaf(weight, value.y, acc[i][c][1]);
              acc[i][c][2] = fmaf(weight, value.z, acc[i][c][2]);
              acc[i][c][3] = fmaf(weight, value.w, acc[i][c][3]);
            }
          }
        }
      }
      __syncthreads();  // V_tile and P are free for the next key tile
      if (tile + 1 < kv_tiles) {
        LoadTileAsync<Config, kBlockN>(v_tile, v + (first_key + kBlockN) * kv_ld, kv_ld,
                                       valid_keys - kBlockN, head_dim, stride);
      }
      __pipeline_commit();
    }

#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      float sum = row_sum[i];
#pragma unroll
      for (int offset = kColumnThreads / 2; offset > 0; offset /= 2) {
        sum += __shfl_xor_sync(0xffffffffu, sum, offset);
      }
      const int row = first_row + row_group + kRowGroups * i;
      if (row >= length) continue;
      // sum >= 1: the row's largest score contributes exp2(0).
      const float inverse = 1.0f / sum;
      float* out_row = out + row * q_ld + 4 * column_thread;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int column = 4 * column_thread + 4 * kColumnThreads * c;
        if constexpr (Config::kExact) {
          *reinterpret_cast<float4*>(out_row + 4 * kColumnThreads * c) =
              make_float4(acc[i][c][0] * inverse, acc[i][c][1] * inverse, acc[i][c][2] * inverse,
                          acc[i][c][3] * inverse);
        } else {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            if (column + e < head_dim) out_row[4 * kColumnThreads * c + e] = acc[i][c][e] * inverse;
          }
        }
      }
    }
  }
}

template <class Config>
absl::Status Launch(const AttentionKernelParams& params, cudaStream_t stream) {
  const size_t shared_bytes = SharedBytes<Config>(params.head_dim);
  if (shared_bytes > 48 * 1024) {
    SCULPT_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(AttentionKernel<Config>,
                                                     cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                     static_cast<int>(shared_bytes)));
  }
  const int64_t query_tiles =
      (int64_t{params.max_sequence_length} + Config::kBlockM - 1) / Config::kBlockM;
  const dim3 grid(static_cast<unsigned>(query_tiles), static_cast<unsigned>(params.n_heads),
                  static_cast<unsigned>(params.num_sequences));
  AttentionKernel<Config><<<grid, kThreads, shared_bytes, stream>>>(params);
  return LaunchStatus("attention");
}

// Turns the runtime head_dim into a tile configuration, as flash-attention's static_switch.h and
// flashinfer's DISPATCH_HEAD_DIM turn runtime sizes into template constants; any head_dim
// without a fast path, or rows that are not 16-byte aligned, take the generic one.
template <typename LaunchFn>
absl::Status DispatchHeadDim(int head_dim, bool float4_aligned, LaunchFn&& launch) {
  if (float4_aligned && head_dim == 64) return launch(HeadDim64{});
  if (float4_aligned && head_dim == 128) return launch(HeadDim128{});
  return launch(AnyHeadDim{});
}

bool Float4Aligned(const void* pointer) {
  return reinterpret_cast<uintptr_t>(pointer) % alignof(float4) == 0;
}

}  // namespace

absl::Status LaunchAttention(const AttentionKernelParams& params, cudaStream_t stream) {
  if (params.num_sequences < 0 || params.max_sequence_length < 0) {
    return absl::InvalidArgumentError("attention: negative num_sequences or max_sequence_length");
  }
  if (params.n_heads <= 0 || params.n_kv_heads <= 0 || params.n_heads % params.n_kv_heads != 0) {
    return absl::InvalidArgumentError(
        "attention: n_heads and n_kv_heads must be positive, n_heads a multiple of n_kv_heads");
  }
  if (params.head_dim < 1 || params.head_dim > kMaxHeadDim) {
    return absl::InvalidArgumentError("attention: head_dim must be in [1, 256]");
  }
  if (params.num_sequences == 0 || params.max_sequence_length == 0) return absl::OkStatus();
  if (params.q == nullptr || params.k == nullptr || params.v == nullptr || params.out == nullptr ||
      params.sequence_offsets == nullptr) {
    return absl::InvalidArgumentError("attention: null buffer with tokens to attend");
  }
  if (params.n_heads > kMaxGridYZ || params.num_sequences > kMaxGridYZ) {
    return absl::InvalidArgumentError("attention: more than 65535 heads or sequences");
  }
  if (!std::isfinite(params.softmax_scale)) {
    return absl::InvalidArgumentError("attention: softmax_scale is not finite");
  }
  const bool float4_aligned = params.head_dim % 4 == 0 && Float4Aligned(params.q) &&
                              Float4Aligned(params.k) && Float4Aligned(params.v) &&
                              Float4Aligned(params.out);
  return DispatchHeadDim(params.head_dim, float4_aligned,
                         [&](auto config) { return Launch<decltype(config)>(params, stream); });
}

}  // namespace sculpt::cuda
