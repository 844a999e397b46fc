// `threshold` (Fast-dLLM's parallel decoding): every candidate whose confidence reaches
// confidence_threshold commits at once, and always at least the most confident one, so each
// step makes progress. Blocks run until their masks are gone.
#include "model/remasking/policies.h"
#include "model/remasking/selection.h"

namespace sculpt {

std::vector<size_t> ThresholdRemasking::Select(const SelectionContext& context,
                                               std::span<const int32_t> positions,
                                               std::span<const double> scores) const {
  std::vector<size_t> order = TopK(positions, scores, positions.size());
  size_t kept = order.empty() ? 0 : 1;
  while (kept < order.size() && scores[order[kept]] >= context.confidence_threshold) ++kept;
  order.resize(kept);
  return order;
}

}  // namespace sculpt
