// Non-causal attention over a packed batch on the CPU, its matrix products through oneDNN in
// fixed tiles (kernels chosen by the CPU's features, as for the projections: cpu/gemm.h).
#pragma once

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

// Query rows and keys of one tile. A sequence's queries are cut into blocks of kQueryTile rows
// from its first row and its keys into tiles of kKeyTile, the last of each padded (padded keys
// get no weight); every product is then one of two fixed shapes, and a row's result depends on
// its own sequence only.
inline constexpr int64_t kQueryTile = 64;
inline constexpr int64_t kKeyTile = 128;

class AttentionRunner {
 public:
  AttentionRunner();
  ~AttentionRunner();
  AttentionRunner(const AttentionRunner&) = delete;
  AttentionRunner& operator=(const AttentionRunner&) = delete;

  // AttentionParams (model/backend.h): every row attends to all rows of its own sequence.
  // scores = q k^T / sqrt(head_dim) per key tile, a softmax over the whole row (in key order),
  // then out = sum over key tiles of p v, tile after tile.
  absl::Status Run(const AttentionParams& params);

  // Sizes the staging for batches of up to `max_tokens` rows in up to `max_sequences` sequences,
  // so that such calls then allocate nothing.
  absl::Status Reserve(int64_t max_tokens, int64_t max_sequences, int n_heads, int n_kv_heads,
                       int head_dim);

 private:
  struct Kernels;
  struct WorkItem {
    int32_t sequence;
    int32_t first_row;  // within the sequence
    int32_t head;
  };
  absl::StatusOr<Kernels*> KernelsFor(int head_dim);
  // Grows the staging to `staged_floats` keys (and values), score rows of `longest_padded` keys
  // and `threads` threads' buffers and bindings.
  void Grow(Kernels& kernels, int64_t head_dim, int64_t staged_floats, int64_t longest_padded,
            int threads);

  std::unique_ptr<dnnl::engine> engine_;
  std::vector<dnnl::stream> streams_;  // one per thread
  std::map<int, std::unique_ptr<Kernels>> kernels_;
  // Grow-only staging (sized by Reserve): the keys and values of every (sequence, kv head), dense
  // and padded to whole key tiles, and per thread a query tile, a row block of scores, an output
  // tile and oneDNN's scratchpad.
  std::vector<float> keys_, values_;
  struct ThreadBuffers {
    std::vector<float> queries, scores, out;
    std::vector<uint8_t> scratchpad;
  };
  std::vector<ThreadBuffers> thread_buffers_;
  std::vector<int64_t> staged_;  // where each sequence's keys start in keys_ (and values_)
  std::vector<WorkItem> items_;
};

}  // namespace sculpt::cpu
