// Advancing generations through shared forwards: the step loop the scheduler builds on.
#pragma once

#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "model/generation.h"
#include "model/transformer.h"

namespace sculpt {

// Runs ONE forward for every unfinished generation given (plus its unconditional twin when
// guided), then lets each choose and commit its tokens. Returns the number of sequences that
// went through the forward.
absl::StatusOr<int> RunDenoisingStep(Transformer& model, std::span<Generation* const> generations);

struct GenerationResult {
  std::vector<int32_t> token_ids;  // the generated part of the canvas
  int steps = 0;
  int forward_passes = 0;  // sequences forwarded; a guided step counts two
};

// Runs one request to completion on its own.
absl::StatusOr<GenerationResult> Generate(Transformer& model, std::span<const int32_t> prompt,
                                          const GenerationParams& params);

}  // namespace sculpt
