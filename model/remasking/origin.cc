// `origin` (Dream): every candidate commits independently with probability 1 - s/t of Dream's
// schedule (all at the block's last step), the coin drawn per (seed, step, position).
#include "common/rng.h"
#include "model/remasking/policies.h"
#include "model/remasking/selection.h"

namespace sculpt {

std::vector<size_t> OriginRemasking::Select(const SelectionContext& context,
                                            std::span<const int32_t> positions,
                                            std::span<const double> /*scores*/) const {
  const double probability =
      DreamTransferProbability(context.step_in_block, context.steps_per_block, kDreamEps);
  std::vector<size_t> chosen;
  for (size_t i = 0; i < positions.size(); ++i) {
    const double u = UniformOpen01(context.seed, context.step, static_cast<uint32_t>(positions[i]),
                                   0, RngStream::kOriginTransfer);
    if (u < probability) chosen.push_back(i);
  }
  return chosen;
}

}  // namespace sculpt
