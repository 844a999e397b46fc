// `random`: commit uniformly random positions, drawn from the counter-based RNG so the choice
// depends only on (seed, step, position).
#include "model/denoise/random_remasking.h"

#include "common/rng.h"

namespace sculpt {

void RandomRemasking::Score(const RemaskingContext& context, std::span<const int32_t> positions,
                            std::span<const double> /*model_confidence*/,
                            std::span<double> scores) const {
  for (size_t i = 0; i < positions.size(); ++i) {
    scores[i] = UniformOpen01(context.seed, context.step, static_cast<uint32_t>(positions[i]), 0,
                              RngStream::kRandomRemasking);
  }
}

}  // namespace sculpt
