// Remasking policies: how a step ranks the positions it may commit. One policy per file.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"

namespace sculpt {

enum class Remasking { kLowConfidence, kRandom };

absl::StatusOr<Remasking> ParseRemasking(std::string_view name);
std::string_view RemaskingName(Remasking remasking);

struct RemaskingContext {
  uint64_t seed = 0;
  uint32_t step = 0;  // global step index of the generation
};

class RemaskingPolicy {
 public:
  virtual ~RemaskingPolicy() = default;
  // Writes a score per candidate; the step commits the highest scores.
  // positions: canvas positions; model_confidence: softmax probability of each chosen token.
  virtual void Score(const RemaskingContext& context, std::span<const int32_t> positions,
                     std::span<const double> model_confidence, std::span<double> scores) const = 0;
};

// The policy objects are stateless; one shared instance per kind.
const RemaskingPolicy& GetRemaskingPolicy(Remasking remasking);

}  // namespace sculpt
