// Token choice and confidence per row of logits: LLaDA's float64 Gumbel-max and Dream's
// sample_tokens (temperature, top_p, top_k, float32 softmax), with guidance and suppression.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "common/rng.h"
#include "common/status.h"
#include "cpu/cpu_ops.h"
#include "cpu/vector_math.h"

namespace sculpt::cpu {
namespace {

constexpr float kRemoved = std::numeric_limits<float>::lowest();  // torch.finfo(float32).min

// Dream's top_p: keep the smallest prefix of the sorted distribution whose mass exceeds top_p
// (always the most likely token).
void FilterTopP(std::vector<float>& logits, double top_p, std::vector<int32_t>& order) {
  order.resize(logits.size());
  std::iota(order.begin(), order.end(), 0);
  // A stable sort by logit, without the buffer std::stable_sort allocates: ties keep index order.
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  const float max_logit = logits[order[0]];
  float total = 0.0f;
  for (int32_t v : order) total += std::exp(logits[v] - max_logit);
  float cumulative = 0.0f;
  bool remove_next = false;
  for (int32_t v : order) {
    const float probability = std::exp(logits[v] - max_logit) / total;
    const bool remove = remove_next;
    cumulative += probability;
    remove_next = cumulative > static_cast<float>(top_p);
    if (remove) logits[v] = kRemoved;
  }
}

// Dream's top_k: remove logits below the k-th largest.
void FilterTopK(std::vector<float>& logits, int top_k, std::vector<float>& scratch) {
  if (top_k <= 0 || static_cast<size_t>(top_k) >= logits.size()) return;
  scratch = logits;
  std::nth_element(scratch.begin(), scratch.begin() + (top_k - 1), scratch.end(), std::greater<>());
  const float kth = scratch[top_k - 1];
  for (float& logit : logits) {
    if (logit < kth) logit = kRemoved;
  }
}

void ChooseLLaDA(const TokenChoiceGroup& params, const std::vector<float>& logits_f32,
                 uint32_t position, int32_t* token, double* confidence) {
  const int64_t vocab = static_cast<int64_t>(logits_f32.size());
  int64_t best = 0;
  if (params.temperature == 0.0) {
    for (int64_t v = 1; v < vocab; ++v) {
      if (logits_f32[v] > logits_f32[best]) best = v;
    }
  } else {
    double best_score = -INFINITY;
    for (int64_t v = 0; v < vocab; ++v) {
      const double u = UniformOpen01(params.seed, params.step, position, static_cast<uint32_t>(v),
                                     RngStream::kGumbel);
      const double score =
          std::exp(static_cast<double>(logits_f32[v])) / std::pow(-std::log(u), params.temperature);
      if (score > best_score || v == 0) {
        best_score = score;
        best = v;
      }
    }
  }
  double max_logit = -INFINITY;
  for (float logit : logits_f32) max_logit = std::max(max_logit, static_cast<double>(logit));
  const double denominator = SumExpShifted(logits_f32.data(), vocab, max_logit);
  *token = static_cast<int32_t>(best);
  *confidence = std::exp(static_cast<double>(logits_f32[best]) - max_logit) / denominator;
}

void ChooseDream(const TokenChoiceGroup& params, const std::vector<float>& probabilities,
                 uint32_t position, int32_t* token, double* confidence) {
  const int64_t vocab = static_cast<int64_t>(probabilities.size());
  int64_t best = 0;
  if (params.temperature == 0.0) {
    for (int64_t v = 1; v < vocab; ++v) {
      if (probabilities[v] > probabilities[best]) best = v;
    }
  } else {
    double best_score = -INFINITY;
    for (int64_t v = 0; v < vocab; ++v) {
      if (!(probabilities[v] > 0.0f)) continue;
      const double u = UniformOpen01(params.seed, params.step, position, static_cast<uint32_t>(v),
                                     RngStream::kDreamSample);
      const double score = std::log(static_cast<double>(probabilities[v])) - std::log(-std::log(u));
      if (score > best_score) {
        best_score = score;
        best = v;
      }
    }
  }
  *token = static_cast<int32_t>(best);
  switch (params.confidence) {
    case ConfidenceKind::kProbability:
      *confidence = probabilities[best];
      return;
    case ConfidenceKind::kMargin: {
      float first = -1.0f, second = -1.0f;
      for (float p : probabilities) {
        if (p > first) {
          second = first;
          first = p;
        } else if (p > second) {
          second = p;
        }
      }
      *confidence = static_cast<double>(first - second);
      return;
    }
    case ConfidenceKind::kNegEntropy: {
      double sum = 0.0;
      for (float p : probabilities) {
        sum += static_cast<double>(p) * std::log(static_cast<double>(p) + 1e-10);
      }
      *confidence = sum;
      return;
    }
  }
}

// The row's log-softmax normalizer and its top alternatives (TokenChoiceGroup::top_logprobs).
// Returns max + log(sum exp(l - max)), so that a token's log-probability is l[t] - it.
double RowLogprobs(const std::vector<float>& guided, const TokenChoiceGroup& group, int64_t r) {
  double max_logit = -INFINITY;
  for (float logit : guided) {
    if (!std::isnan(logit)) max_logit = std::max(max_logit, static_cast<double>(logit));
  }
  const double normalizer =
      max_logit +
      std::log(SumExpShifted(guided.data(), static_cast<int64_t>(guided.size()), max_logit));
  const int k = group.top_logprobs;
  int32_t* ids = group.top_ids.data() + r * k;
  double* values = group.top_values.data() + r * k;
  // Insertion into the k best seen so far, scanning ids upwards: an equal logit ranks after
  // the ones already held (the lower id wins a tie).
  int held = 0;
  for (int32_t v = 0; v < static_cast<int32_t>(guided.size()) && k > 0; ++v) {
    const double value = guided[v];
    if (std::isnan(value) || (held == k && !(value > values[k - 1]))) continue;
    int at = held < k ? held++ : k - 1;
    while (at > 0 && value > values[at - 1]) {
      ids[at] = ids[at - 1];
      values[at] = values[at - 1];
      --at;
    }
    ids[at] = v;
    values[at] = value;
  }
  for (int i = 0; i < held; ++i) values[i] -= normalizer;
  for (int i = held; i < k; ++i) {  // a vocabulary smaller than k, or NaN logits
    ids[i] = -1;
    values[i] = -INFINITY;
  }
  return normalizer;
}

}  // namespace

void TokenChoiceScratch::Reserve(int64_t rows, int64_t vocab) {
  tasks.reserve(static_cast<size_t>(rows));
  const auto threads = static_cast<size_t>(std::max(1, omp_get_max_threads()));
  if (per_thread.size() < threads) per_thread.resize(threads);
  for (Row& row : per_thread) {
    row.logits.reserve(vocab);
    row.sorted.reserve(vocab);
    row.order.reserve(vocab);
    row.guided.reserve(vocab);
  }
}

absl::Status ChooseTokens(const ChooseTokensParams& params, TokenChoiceScratch& scratch) {
  SCULPT_RETURN_IF_ERROR(ValidateOp(params));
  const int64_t vocab = params.logits.cols;
  // Every row of every group is one task, so many small generations still fill the threads.
  auto& tasks = scratch.tasks;  // (group, row within the group)
  tasks.clear();
  for (size_t g = 0; g < params.groups.size(); ++g) {
    for (size_t r = 0; r < params.groups[g].positions.size(); ++r) {
      tasks.emplace_back(static_cast<int32_t>(g), static_cast<int32_t>(r));
    }
  }
  const int threads = std::max(1, omp_get_max_threads());
  if (scratch.per_thread.size() < static_cast<size_t>(threads)) scratch.per_thread.resize(threads);

#pragma omp parallel num_threads(threads)
  {
    TokenChoiceScratch::Row& working = scratch.per_thread[omp_get_thread_num()];
    std::vector<float>& logits = working.logits;
    logits.resize(vocab);
#pragma omp for schedule(dynamic, 1)
    for (size_t task = 0; task < tasks.size(); ++task) {
      const TokenChoiceGroup& group = params.groups[tasks[task].first];
      const int64_t r = tasks[task].second;
      const bool dream = group.style == TokenChoiceStyle::kDream;
      const float* cond = params.logits.f32() + (group.first_row + r) * vocab;
      if (group.uncond_first_row >= 0) {
        const float guidance = static_cast<float>(group.cfg_scale + 1.0);
        const float* uncond = params.logits.f32() + (group.uncond_first_row + r) * vocab;
        for (int64_t v = 0; v < vocab; ++v)
          logits[v] = uncond[v] + guidance * (cond[v] - uncond[v]);
      } else {
        std::copy(cond, cond + vocab, logits.begin());
      }
      double normalizer = 0.0;
      if (group.top_logprobs >= 0) {
        working.guided = logits;
        normalizer = RowLogprobs(working.guided, group, r);
      }
      // The chosen token's log-probability, once it is chosen.
      const auto record_logprob = [&] {
        if (group.top_logprobs < 0) return;
        group.logprobs[r] = static_cast<double>(working.guided[group.tokens[r]]) - normalizer;
      };
      for (int32_t suppressed : group.suppressed_tokens) {
        if (suppressed >= 0 && suppressed < vocab) logits[suppressed] = -INFINITY;
      }
      if (dream && group.temperature > 0.0) {
        const float temperature = static_cast<float>(group.temperature);
        for (float& logit : logits) logit /= temperature;
      }
      if (group.top_p < 1.0) FilterTopP(logits, group.top_p, working.order);
      FilterTopK(logits, group.top_k, working.sorted);
      const auto position = static_cast<uint32_t>(group.positions[r]);
      if (!dream) {
        ChooseLLaDA(group, logits, position, &group.tokens[r], &group.confidences[r]);
        record_logprob();
        continue;
      }
      // Dream's float32 softmax.
      const float max_logit = *std::max_element(logits.begin(), logits.end());
      float total = 0.0f;
      for (float& logit : logits) total += (logit = std::exp(logit - max_logit));
      for (float& probability : logits) probability /= total;
      ChooseDream(group, logits, position, &group.tokens[r], &group.confidences[r]);
      record_logprob();
    }
  }
  return absl::OkStatus();
}

}  // namespace sculpt::cpu
