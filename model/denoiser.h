// Advancing generations through shared forwards: the step loop the scheduler builds on.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/generation.h"
#include "model/transformer.h"

namespace sculpt {

// What a step of these generations forwards at most (their canvases, twice when guided): the
// workspace to reserve before stepping them.
WorkspaceLimits WorkspaceFor(std::span<Generation* const> generations);

// Runs denoising steps on one model, keeping the step's host-side inputs (canvases, logit rows,
// token choice groups and results) in storage reused from step to step.
class Denoiser {
 public:
  explicit Denoiser(Transformer& model) : model_(model) {}

  // Runs ONE forward for every unfinished generation given (plus its unconditional twin when
  // guided), then lets each choose and commit its tokens. Returns the number of sequences that
  // went through the forward.
  absl::StatusOr<int> Step(std::span<Generation* const> generations);

 private:
  // Per generation of the step; kept (with their capacity) across steps.
  struct Slot {
    std::vector<int32_t> positions, logit_rows, unconditional, tokens, top_ids;
    std::vector<double> confidences, logprobs, top_values;
  };
  Transformer& model_;
  std::vector<Slot> slots_;
  std::vector<SequenceInput> batch_;
  std::vector<Generation*> active_;
  std::vector<TokenChoiceGroup> groups_;
};

// Sees every step of a generation as it happens (the canvas after the step's commits).
using StepObserver = std::function<void(const StepEvent& event, std::span<const int32_t> canvas)>;

// Runs one prepared generation to completion on its own.
absl::StatusOr<GenerationResult> RunToCompletion(Transformer& model, Generation& generation,
                                                 const StepObserver& observer = nullptr);

// Runs one request to completion on its own.
absl::StatusOr<GenerationResult> Generate(Transformer& model, std::span<const int32_t> prompt,
                                          const GenerationParams& params,
                                          const StepObserver& observer = nullptr);

}  // namespace sculpt
