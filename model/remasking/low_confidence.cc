// `low_confidence` (LLaDA's default): each step commits a fixed share of the block's masks,
// the predictions the model is surest of; the others are remasked.
#include "model/remasking/policies.h"
#include "model/remasking/selection.h"

namespace sculpt {

std::vector<size_t> LowConfidenceRemasking::Select(const SelectionContext& context,
                                                   std::span<const int32_t> positions,
                                                   std::span<const double> scores) const {
  return ScheduledShare(context, positions, scores);
}

}  // namespace sculpt
