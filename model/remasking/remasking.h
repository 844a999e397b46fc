// Remasking policies: how a step scores the candidate positions and which of them it commits.
// One policy per file; the shared schedules and selections are in selection.h.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/backend.h"

namespace sculpt {

enum class Remasking {
  kLowConfidence,  // LLaDA: commit the most confident, a fixed count per step
  kRandom,         // LLaDA: commit random positions, a fixed count per step
  kThreshold,      // Fast-dLLM: every candidate with confidence >= confidence_threshold
  kFactor,         // Fast-dLLM: as many as the factor rule allows
  kOrigin,         // Dream: each candidate commits with probability 1 - s/t
  kMaskgitPlus,    // Dream: top-1 probability, Dream's schedule
  kTopkMargin,     // Dream: top-1 minus top-2 probability
  kEntropy,        // Dream: negative entropy
};

// Accepts the names above in snake_case, and "margin" for topk_margin.
absl::StatusOr<Remasking> ParseRemasking(std::string_view name);
std::string_view RemaskingName(Remasking remasking);
// "low_confidence, random, ..." for error messages and --help.
std::string_view RemaskingNames();

struct SelectionContext {
  uint64_t seed = 0;
  uint32_t step = 0;  // global step index of the generation
  int step_in_block = 0;
  int steps_per_block = 1;
  int block_masks_at_start = 0;  // masks the current block had when it started
  double alg_temp = 0.0;
  double confidence_threshold = 0.9;
  double factor = 1.0;
};

class RemaskingPolicy {
 public:
  virtual ~RemaskingPolicy() = default;
  virtual TokenChoiceStyle style() const = 0;
  virtual ConfidenceKind confidence_kind() const { return ConfidenceKind::kProbability; }
  // Fixed: a block runs steps / num_blocks steps. Otherwise it runs until its masks are gone.
  virtual bool fixed_steps() const { return true; }
  // The score each candidate is ranked by; by default the model's confidence.
  virtual void Score(const SelectionContext& context, std::span<const int32_t> positions,
                     std::span<const double> confidences, std::span<double> scores) const;
  // Indices (into positions) of the candidates this step commits.
  virtual std::vector<size_t> Select(const SelectionContext& context,
                                     std::span<const int32_t> positions,
                                     std::span<const double> scores) const = 0;
  // The policy's ranking with its count replaced by `count` (remdm_remask sets the count): the
  // best scored by default, drawn as the policy draws with alg_temp.
  virtual std::vector<size_t> SelectCount(const SelectionContext& context,
                                          std::span<const int32_t> positions,
                                          std::span<const double> scores, size_t count) const;
};

const RemaskingPolicy& GetRemaskingPolicy(Remasking remasking);

}  // namespace sculpt
