// Schedules and selections shared by the remasking policies.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/remasking/remasking.h"

namespace sculpt {

// LLaDA's get_num_transfer_tokens: `masked` spread over `steps`, the remainder first.
std::vector<int> NumTransferTokens(int masked, int steps);

// Dream's schedule: timesteps = torch.linspace(1, eps, steps + 1) in float32, reproduced
// bit for bit (torch fills the first half forwards and the second half backwards).
std::vector<float> DreamTimesteps(int steps, float eps);
// 1 - s/t in float32 for step i (1 at the last step).
float DreamTransferProbability(int step, int steps, float eps);
// int(float32(n) * (1 - s/t)) at step i, all n at the last step.
int DreamTransferCount(int candidates, int step, int steps, float eps);

inline constexpr float kDreamEps = 1e-3f;

// The k highest scores; equal scores take the earlier position first.
std::vector<size_t> TopK(std::span<const int32_t> positions, std::span<const double> scores,
                         size_t k);

// LLaDA's fixed schedule: this step's share of the block's masks (NumTransferTokens), the
// best-scored first.
std::vector<size_t> ScheduledShare(const SelectionContext& context,
                                   std::span<const int32_t> positions,
                                   std::span<const double> scores);

// k positions drawn without replacement with probabilities softmax(score / temperature), as the
// top-k of score / temperature + Gumbel noise from RngStream::kAlgTemp.
std::vector<size_t> GumbelTopK(const SelectionContext& context, std::span<const int32_t> positions,
                               std::span<const double> scores, size_t k, double temperature);

}  // namespace sculpt
