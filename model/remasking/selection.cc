#include "model/remasking/selection.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/rng.h"

namespace sculpt {

std::vector<int> NumTransferTokens(int masked, int steps) {
  std::vector<int> counts(steps, masked / steps);
  for (int i = 0; i < masked % steps; ++i) ++counts[i];
  return counts;
}

std::vector<float> DreamTimesteps(int steps, float eps) {
  const int count = steps + 1;
  std::vector<float> timesteps(count);
  const float start = 1.0f;
  const float step = (eps - start) / static_cast<float>(count - 1);
  const int halfway = count / 2;
  for (int i = 0; i < count; ++i) {
    timesteps[i] = i < halfway ? start + step * static_cast<float>(i)
                               : eps - step * static_cast<float>(count - i - 1);
  }
  return timesteps;
}

float DreamTransferProbability(int step, int steps, float eps) {
  if (step >= steps - 1) return 1.0f;
  const std::vector<float> timesteps = DreamTimesteps(steps, eps);
  return 1.0f - timesteps[step + 1] / timesteps[step];
}

int DreamTransferCount(int candidates, int step, int steps, float eps) {
  if (step >= steps - 1) return candidates;
  return static_cast<int>(static_cast<float>(candidates) *
                          DreamTransferProbability(step, steps, eps));
}

std::vector<size_t> TopK(std::span<const int32_t> positions, std::span<const double> scores,
                         size_t k) {
  std::vector<size_t> order(positions.size());
  std::iota(order.begin(), order.end(), 0);
  k = std::min(k, order.size());
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](size_t a, size_t b) {
    if (scores[a] != scores[b]) return scores[a] > scores[b];
    return positions[a] < positions[b];
  });
  order.resize(k);
  return order;
}

std::vector<size_t> GumbelTopK(const SelectionContext& context, std::span<const int32_t> positions,
                               std::span<const double> scores, size_t k, double temperature) {
  std::vector<double> perturbed(positions.size());
  for (size_t i = 0; i < positions.size(); ++i) {
    const double u = UniformOpen01(context.seed, context.step, static_cast<uint32_t>(positions[i]),
                                   0, RngStream::kAlgTemp);
    perturbed[i] = scores[i] / temperature - std::log(-std::log(u));
  }
  return TopK(positions, perturbed, k);
}

std::vector<size_t> ScheduledShare(const SelectionContext& context,
                                   std::span<const int32_t> positions,
                                   std::span<const double> scores) {
  const int count = NumTransferTokens(context.block_masks_at_start,
                                      context.steps_per_block)[context.step_in_block];
  return TopK(positions, scores, static_cast<size_t>(count));
}

}  // namespace sculpt
