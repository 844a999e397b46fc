// A transformer family's forward over a packed batch of whole sequences.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "model/backend.h"
#include "model/config.h"

namespace sculpt {

// How a sequence of a forward uses the model's KV cache arena (Transformer::ReserveKvCache).
enum class KvCacheUse {
  kNone,    // the whole canvas, its keys and values kept nowhere
  kFill,    // the whole canvas, every position's keys and values written to the sequence's rows
  kWindow,  // canvas positions [window_begin, window_end) only, against the sequence's rows,
            // which the window's fresh keys and values overwrite first
};

struct SequenceInput {
  std::span<const int32_t> tokens;           // the whole sequence (canvas)
  std::span<const int32_t> logit_positions;  // positions (within the sequence) needing logits;
                                             // inside the window with KvCacheUse::kWindow
  KvCacheUse cache = KvCacheUse::kNone;
  RowRange kv_rows;  // with a cache: the arena's rows of this sequence, one per canvas position
  int32_t window_begin = 0;
  int32_t window_end = 0;
};

// Sees every named intermediate of a forward (`embed`, `layers.{i}.q`, ..., `ln_f`, `logits`),
// rows in packed-batch order; used by golden tests to find the first layer that diverges.
using ForwardObserver = std::function<void(const std::string& name, const TensorView& tensor)>;

class Transformer {
 public:
  virtual ~Transformer() = default;
  virtual const ModelConfig& config() const = 0;
  virtual Backend& backend() = 0;

  // Sizes the activations and the backend's scratch for forwards within `limits` (and their
  // token choice), so that such forwards allocate nothing. Forwards beyond them still run, growing
  // the workspace.
  virtual absl::Status Reserve(const WorkspaceLimits& limits) = 0;

  // The approximate KV cache: an arena of rows in backend memory, each holding one canvas
  // position's keys and values in every layer (fp32). Bytes one row takes:
  virtual int64_t kv_cache_row_bytes() const = 0;
  // Sizes the arena to `rows`, dropping what it holds: call it before any sequence uses rows.
  virtual absl::Status ReserveKvCache(int64_t rows) = 0;
  virtual int64_t kv_cache_rows() const = 0;

  // One forward for all sequences at once, each attending only to itself. Returns the logits
  // [total logit positions, embedding_size] in batch order, in backend memory that stays valid
  // until the next call. A sequence's logits depend on its own tokens and cache rows alone.
  virtual absl::StatusOr<TensorView> Forward(std::span<const SequenceInput> batch,
                                             const ForwardObserver* observer = nullptr) = 0;
};

// Reads DIR/config.json and the checkpoint, and builds the family's transformer on `backend`.
absl::StatusOr<std::unique_ptr<Transformer>> LoadTransformer(const std::string& model_dir,
                                                             Backend& backend);

}  // namespace sculpt
