// Token choice and confidence per row of logits, with LLaDA's float64 Gumbel-max sampling.
#include <cmath>
#include <vector>

#include "common/rng.h"
#include "cpu/cpu_ops.h"

namespace sculpt::cpu {

absl::Status ChooseTokens(const ChooseTokensParams& params) {
  const int64_t n = params.logits.rows;
  const int64_t vocab = params.logits.cols;
  const bool guided = params.uncond_logits.data != nullptr;
  const float guidance = static_cast<float>(params.cfg_scale + 1.0);

#pragma omp parallel
  {
    std::vector<double> logits(vocab);
#pragma omp for schedule(dynamic, 1)
    for (int64_t r = 0; r < n; ++r) {
      const float* cond = params.logits.f32() + r * vocab;
      if (guided) {
        // The reference guides in the logits' own precision (fp32), then widens.
        const float* uncond = params.uncond_logits.f32() + r * vocab;
        for (int64_t v = 0; v < vocab; ++v) {
          logits[v] = static_cast<double>(uncond[v] + guidance * (cond[v] - uncond[v]));
        }
      } else {
        for (int64_t v = 0; v < vocab; ++v) logits[v] = static_cast<double>(cond[v]);
      }

      int64_t best = 0;
      if (params.temperature == 0.0) {
        for (int64_t v = 1; v < vocab; ++v) {
          if (logits[v] > logits[best]) best = v;
        }
      } else {
        const auto position = static_cast<uint32_t>(params.positions[r]);
        double best_score = -INFINITY;
        for (int64_t v = 0; v < vocab; ++v) {
          const double u = UniformOpen01(params.seed, params.step, position,
                                         static_cast<uint32_t>(v), RngStream::kGumbel);
          const double score = std::exp(logits[v]) / std::pow(-std::log(u), params.temperature);
          if (score > best_score || v == 0) {
            best_score = score;
            best = v;
          }
        }
      }

      double max_logit = logits[0];
      for (int64_t v = 1; v < vocab; ++v) max_logit = std::max(max_logit, logits[v]);
      double denominator = 0.0;
      for (int64_t v = 0; v < vocab; ++v) denominator += std::exp(logits[v] - max_logit);
      params.tokens[r] = static_cast<int32_t>(best);
      params.confidences[r] = std::exp(logits[best] - max_logit) / denominator;
    }
  }
  return absl::OkStatus();
}

}  // namespace sculpt::cpu
