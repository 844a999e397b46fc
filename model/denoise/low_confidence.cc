// `low_confidence`: commit the predictions the model is surest of (LLaDA's default), i.e.
// remask the low-confidence ones.
#include "model/denoise/low_confidence.h"

#include <algorithm>

namespace sculpt {

void LowConfidenceRemasking::Score(const RemaskingContext& /*context*/,
                                   std::span<const int32_t> /*positions*/,
                                   std::span<const double> model_confidence,
                                   std::span<double> scores) const {
  std::copy(model_confidence.begin(), model_confidence.end(), scores.begin());
}

}  // namespace sculpt
