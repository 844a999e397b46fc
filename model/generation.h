// One masked-diffusion generation as a step-by-step state machine (LLaDA's generate()), so a
// scheduler can advance many of them through shared forwards.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/denoise/remasking.h"

namespace sculpt {

struct GenerationParams {
  int gen_length = 128;
  int steps = 128;
  int block_length = 128;
  Remasking remasking = Remasking::kLowConfidence;
  double temperature = 0.0;
  double cfg_scale = 0.0;
  uint64_t seed = 0;
};

// INVALID_ARGUMENT naming the parameter for any combination LLaDA's generate() rejects or the
// model cannot hold; checked before anything is allocated.
absl::Status ValidateGenerationParams(const GenerationParams& params, const ModelConfig& config,
                                      std::span<const int32_t> prompt);

// How many masks each of `steps` steps commits so that `masked` are committed in all, evenly,
// the earlier steps taking the remainder (LLaDA's get_num_transfer_tokens).
std::vector<int> NumTransferTokens(int masked, int steps);

class Generation {
 public:
  static absl::StatusOr<Generation> Create(std::span<const int32_t> prompt,
                                           const GenerationParams& params,
                                           const ModelConfig& config);

  bool finished() const { return block_ >= num_blocks_; }
  bool guided() const { return params_.cfg_scale > 0.0; }
  const GenerationParams& params() const { return params_; }

  // [prompt | generated], masks where nothing is committed yet.
  std::span<const int32_t> canvas() const { return canvas_; }
  // The canvas with the prompt masked too: the unconditional input of classifier-free guidance.
  std::vector<int32_t> UnconditionalCanvas() const;
  // Canvas positions whose predictions this step may commit: masked and before the current
  // block's end. Only these need logits.
  const std::vector<int32_t>& candidate_positions() const { return candidates_; }
  uint32_t global_step() const { return static_cast<uint32_t>(steps_run_); }

  // Takes the chosen token and its model confidence for every candidate position, scores the
  // candidates with the remasking policy and commits this step's share of them.
  void Commit(std::span<const int32_t> tokens, std::span<const double> confidences);

  std::span<const int32_t> generated() const {
    return std::span<const int32_t>(canvas_).subspan(prompt_length_);
  }
  int steps_run() const { return steps_run_; }

 private:
  Generation() = default;
  void StartBlock();
  void UpdateCandidates();

  GenerationParams params_;
  int32_t mask_id_ = 0;
  int prompt_length_ = 0;
  std::vector<int32_t> canvas_;
  std::vector<bool> prompt_mask_;  // true where the initial canvas held a real (unmasked) token
  int num_blocks_ = 0;
  int steps_per_block_ = 0;
  int block_ = 0;
  int step_in_block_ = 0;
  int steps_run_ = 0;
  std::vector<int> transfer_counts_;
  std::vector<int32_t> candidates_;
};

}  // namespace sculpt
