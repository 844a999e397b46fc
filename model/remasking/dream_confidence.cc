// Dream's confidence algorithms (maskgit_plus, topk_margin, entropy): commit the
// int(n * (1 - s/t)) best-scored candidates (all at the block's last step), or with alg_temp
// draw them without replacement from softmax(score / alg_temp).
#include "model/remasking/policies.h"
#include "model/remasking/selection.h"

namespace sculpt {

std::vector<size_t> DreamConfidenceRemasking::Select(const SelectionContext& context,
                                                     std::span<const int32_t> positions,
                                                     std::span<const double> scores) const {
  const int count = DreamTransferCount(static_cast<int>(positions.size()), context.step_in_block,
                                       context.steps_per_block, kDreamEps);
  if (count <= 0) return {};
  return SelectCount(context, positions, scores, static_cast<size_t>(count));
}

std::vector<size_t> DreamConfidenceRemasking::SelectCount(const SelectionContext& context,
                                                          std::span<const int32_t> positions,
                                                          std::span<const double> scores,
                                                          size_t count) const {
  if (count == 0) return {};
  if (context.alg_temp > 0.0)
    return GumbelTopK(context, positions, scores, count, context.alg_temp);
  return TopK(positions, scores, count);
}

}  // namespace sculpt
