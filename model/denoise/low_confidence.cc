// `low_confidence` (LLaDA's default): each step commits a fixed share of the block's masks,
// the predictions the model is surest of; the others are remasked.
#include "model/denoise/policies.h"
#include "model/denoise/selection.h"

namespace sculpt {

std::vector<size_t> LowConfidenceRemasking::Select(const SelectionContext& context,
                                                   std::span<const int32_t> positions,
                                                   std::span<const double> scores) const {
  const int count = NumTransferTokens(context.block_masks_at_start,
                                      context.steps_per_block)[context.step_in_block];
  return TopK(positions, scores, static_cast<size_t>(count));
}

}  // namespace sculpt
