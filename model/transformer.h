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

struct SequenceInput {
  std::span<const int32_t> tokens;           // the whole sequence (canvas)
  std::span<const int32_t> logit_positions;  // positions (within the sequence) needing logits
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

  // One forward for all sequences at once, each attending only to itself. Returns the logits
  // [total logit positions, embedding_size] in batch order, in backend memory that stays valid
  // until the next call.
  virtual absl::StatusOr<TensorView> Forward(std::span<const SequenceInput> batch,
                                             const ForwardObserver* observer = nullptr) = 0;
};

// Reads DIR/config.json and the checkpoint, and builds the family's transformer on `backend`.
absl::StatusOr<std::unique_ptr<Transformer>> LoadTransformer(const std::string& model_dir,
                                                             Backend& backend);

}  // namespace sculpt
