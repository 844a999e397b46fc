// Non-causal attention over a packed batch on the CPU, its matrix products through oneDNN in
// fixed tiles (kernels chosen by the CPU's features, as for the projections: cpu/gemm.h).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "model/backend.h"

namespace dnnl {
struct engine;
struct stream;
}  // namespace dnnl

namespace sculpt::cpu {

// Query rows and keys of one tile. A sequence's queries are cut into blocks of kMaxQueryTile rows
// from its first row, the last block in the smallest of kQueryTiles that holds it (a cached
// window of 32 rows is one 32-row tile), and its keys into tiles of kKeyTile, the last of each
// padded (padded keys get no weight); every product is then one of a few fixed shapes, chosen by
// the sequence's own lengths, so a row's result depends on its own sequence only.
inline constexpr std::array<int64_t, 3> kQueryTiles = {16, 32, 64};
inline constexpr int64_t kMaxQueryTile = kQueryTiles.back();
inline constexpr int64_t kKeyTile = 128;

class AttentionRunner {
 public:
  AttentionRunner();
  ~AttentionRunner();
  AttentionRunner(const AttentionRunner&) = delete;
  AttentionRunner& operator=(const AttentionRunner&) = delete;

  // AttentionParams (model/backend.h): every row attends to all rows of its own sequence.
  // scores = q k^T / sqrt(head_dim) per key tile, a softmax over the whole row (in key order),
  // then out = sum over key tiles of p v, tile after tile, divided by the softmax's sum.
  absl::Status Run(const AttentionParams& params);

  // Sizes the buffers for batches of up to `max_tokens` rows in up to `max_sequences` sequences
  // (each attending to at most `max_tokens` keys), so that such calls then allocate nothing.
  absl::Status Reserve(int64_t max_tokens, int64_t max_sequences, int n_heads, int n_kv_heads,
                       int head_dim);

 private:
  // What the tile kernels are made for: keys and values are read where they lie (in the batch's
  // k and v, or in the KV cache), so their row stride is part of the kernel.
  struct Shape {
    int64_t head_dim = 0;
    int64_t key_stride = 0;
    auto operator<=>(const Shape&) const = default;
  };
  struct Kernels;
  struct WorkItem {
    int32_t sequence;
    int32_t first_row;  // within the sequence
    int32_t rows;       // query rows of the block, at most its tile's
    int32_t tile;       // index into kQueryTiles
    int32_t head;
  };
  absl::StatusOr<Kernels*> KernelsFor(const Shape& shape);
  // Grows the per-thread buffers and bindings to `threads` threads and score rows of
  // `longest_padded` keys.
  void Grow(Kernels& kernels, int64_t longest_padded, int threads);

  std::unique_ptr<dnnl::engine> engine_;
  std::vector<dnnl::stream> streams_;  // one per thread
  std::map<Shape, std::unique_ptr<Kernels>> kernels_;
  // Grow-only, per thread: a query tile, a row block of scores, an output tile, the last (partial)
  // key and value tile of the current sequence staged with zero padding, and oneDNN's scratchpad.
  struct ThreadBuffers {
    std::vector<float> queries, scores, out, tail_keys, tail_values, inverse_sums;
    std::vector<uint8_t> scratchpad;
  };
  std::vector<ThreadBuffers> thread_buffers_;
  std::vector<WorkItem> items_;
};

}  // namespace sculpt::cpu
