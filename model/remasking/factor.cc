// `factor` (Fast-dLLM's dynamic rule): with confidences sorted c_0 >= c_1 >= ..., commit the
// prefix before the first c_j < 1 - factor / (j + 2) (c_0 always passes). Reproduces the
// reference's edge rule too: when the first failure is the last candidate, or nothing fails,
// all candidates commit.
#include "model/remasking/policies.h"
#include "model/remasking/selection.h"

namespace sculpt {

std::vector<size_t> FactorRemasking::Select(const SelectionContext& context,
                                            std::span<const int32_t> positions,
                                            std::span<const double> scores) const {
  std::vector<size_t> order = TopK(positions, scores, positions.size());
  if (order.empty()) return order;
  const size_t last = order.size() - 1;
  size_t stop = last;  // the reference's loop variable when the loop does not break
  for (size_t j = 1; j < order.size(); ++j) {
    const double threshold = 1.0 - context.factor / static_cast<double>(j + 2);
    if (scores[order[j]] < threshold) {
      stop = j;
      break;
    }
  }
  if (stop == last) ++stop;
  order.resize(stop);
  return order;
}

}  // namespace sculpt
