// `random` (LLaDA): a fixed share per step, at uniformly random positions drawn from the
// counter-based RNG, so the choice depends only on (seed, step, position).
#include "common/rng.h"
#include "model/remasking/policies.h"
#include "model/remasking/selection.h"

namespace sculpt {

void RandomRemasking::Score(const SelectionContext& context, std::span<const int32_t> positions,
                            std::span<const double> confidences, std::span<double> scores) const {
  for (size_t i = 0; i < positions.size(); ++i) {
    // A suppressed candidate (-inf) stays last whatever its draw.
    scores[i] = confidences[i] == -INFINITY
                    ? -INFINITY
                    : UniformOpen01(context.seed, context.step, static_cast<uint32_t>(positions[i]),
                                    0, RngStream::kRandomRemasking);
  }
}

std::vector<size_t> RandomRemasking::Select(const SelectionContext& context,
                                            std::span<const int32_t> positions,
                                            std::span<const double> scores) const {
  return ScheduledShare(context, positions, scores);
}

}  // namespace sculpt
