// Grouped-query attention over a packed variable-length batch on the GPU, non-causal or
// block-causal; the twin of cpu/attention.cc. Host-only: safe to include from .cc files.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"

namespace sculpt::cuda {

// Sequence s owns token rows [sequence_offsets[s], sequence_offsets[s + 1]) of q, k, v and out;
// each of its rows attends to the rows of its own sequence (all, or block-causally those of its
// block and the blocks before, as AttentionParams says) and none of another's. Query head h
// reads kv head h / (n_heads / n_kv_heads). Rows are read with row strides n_heads * head_dim
// (q, out) and n_kv_heads * head_dim (k, v). A row's result depends only on its own sequence, so
// it is bit-identical whatever else is in the batch.
struct AttentionKernelParams {
  const float* q;  // [n_tokens, n_heads * head_dim], device, read
  const float* k;  // [n_tokens or more (kv_rows), n_kv_heads * head_dim], device, read
  const float* v;  // [like k], device, read
  float* out;      // [n_tokens, n_heads * head_dim], device, written; no overlap with k, v
  const int32_t* sequence_offsets;  // [num_sequences + 1], device, read (cu_seqlens)
  // [num_sequences] (first row, row count) of each sequence's keys in k and v, device, read; null:
  // the rows of its queries. Then k and v may have more rows than q.
  const int2* kv_rows;
  // [num_sequences] block sizes of block-causal sequences (AttentionParams::causal_blocks), 0 for
  // a sequence that sees every key, device, read; null: none is block-causal. With it, positions
  // [n_tokens] holds every query row's canvas position (device, read).
  const int32_t* causal_blocks;
  const int32_t* positions;
  int num_sequences;
  // The longest sequence (the host knows it). It only sizes the grid: a smaller positive value
  // stays correct, just slower; 0 means every sequence is empty.
  int max_sequence_length;
  int n_heads, n_kv_heads, head_dim;  // head_dim in [1, 256]; n_heads % n_kv_heads == 0
  float softmax_scale;                // 1/sqrt(head_dim) for our models
};

// Enqueues the attention on `stream`. InvalidArgument for impossible params; OK without a launch
// when there is nothing to do (no sequences, or all empty); an internal status if the launch
// fails. A fault inside the kernel is reported by whichever call next synchronizes.
[[nodiscard]] absl::Status LaunchAttention(const AttentionKernelParams& params,
                                           cudaStream_t stream);

}  // namespace sculpt::cuda
