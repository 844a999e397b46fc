// Token-choice test cases shared by the backend op-parity harness and the CUDA kernel's own
// tests: every option, fixed-seed logits with no near-ties that an ulp of exp/log could tip, and
// how far confidences may drift between backends.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/rng.h"
#include "model/token_choice.h"

namespace sculpt::testing {

struct TokenChoiceCase {
  int n_rows = 1;
  int vocab = 1;
  TokenChoiceStyle style = TokenChoiceStyle::kLLaDA;
  ConfidenceKind confidence = ConfidenceKind::kProbability;
  double temperature = 0.0;
  double top_p = 1.0;
  int top_k = 0;
  bool guided = false;
  bool suppress = false;

  std::string Name() const {
    return absl::StrCat(n_rows, "x", vocab, style == TokenChoiceStyle::kDream ? " dream" : " llada",
                        " confidence=", static_cast<int>(confidence), " t=", temperature,
                        " top_p=", top_p, " top_k=", top_k, guided ? " cfg" : "",
                        suppress ? " suppressed" : "");
  }
};

struct TokenChoiceInputs {
  std::vector<float> cond;    // [n_rows, vocab]
  std::vector<float> uncond;  // [n_rows, vocab]
  std::vector<int32_t> positions;
  std::vector<int32_t> suppressed;
  double cfg_scale = 1.5;
  uint64_t seed = 0x5eed5eed1234ull;
  uint32_t step = 7;
};

struct TokenChoiceOutputs {
  std::vector<int32_t> tokens;
  std::vector<double> confidences;
};

// kFlat: N(0, 2) everywhere. kPeaked: up to 8 tokens get 20 + N(0, 1.5) on top, so nearly all
// the mass sits in a few tokens and top_p's cut falls between them, not among 1e5 tiny ones.
// kExtreme: +-1e4 only, so probabilities are exactly 0 or 1/k and ties are exact.
enum class RowKind { kFlat, kPeaked, kExtreme };

inline void FillRow(RowKind kind, std::mt19937& generator, float* cond, float* uncond, int vocab) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> token(0, vocab - 1);
  for (int v = 0; v < vocab; ++v) {
    if (kind == RowKind::kExtreme) {
      cond[v] = generator() % 2 ? 1e4f : -1e4f;
      uncond[v] = generator() % 2 ? 1e4f : -1e4f;
    } else {
      cond[v] = 2.0f * normal(generator);
      uncond[v] = cond[v] + 0.5f * normal(generator);
    }
  }
  if (kind != RowKind::kPeaked) return;
  for (int i = 0; i < std::min(vocab, 8); ++i) {
    const int v = token(generator);
    cond[v] += 20.0f + 1.5f * normal(generator);
    uncond[v] = cond[v] + 0.5f * normal(generator);
  }
}

// The row the CPU's choice starts from: guided, suppressed and tempered in float32, as
// cpu/choose_tokens.cc does it.
inline std::vector<float> PreparedRow(const TokenChoiceCase& c, const TokenChoiceInputs& in,
                                      int r) {
  const int vocab = c.vocab;
  const float guidance = static_cast<float>(in.cfg_scale + 1.0);
  std::vector<float> row(in.cond.begin() + r * vocab, in.cond.begin() + (r + 1) * vocab);
  if (c.guided) {
    for (int v = 0; v < vocab; ++v) {
      const float u = in.uncond[r * vocab + v];
      row[v] = u + guidance * (row[v] - u);
    }
  }
  if (c.suppress) {
    for (int32_t token : in.suppressed) {
      if (token >= 0 && token < vocab) row[token] = -INFINITY;
    }
  }
  if (c.style == TokenChoiceStyle::kDream && c.temperature > 0.0) {
    for (float& logit : row) logit /= static_cast<float>(c.temperature);
  }
  return row;
}

// Whether every discrete decision on the row is far from a near-tie, where CUDA's expf, exp and
// log (an ulp or two from glibc's) could tip it: top_p's cumulative sum crossing top_p, Dream's
// argmax of float32 probabilities, and Dream's Gumbel-max over log p. Exact ties are fine: both
// sides then compute identical values and take the lowest index. LLaDA's decisions are float
// comparisons or float64 scores and need no margin.
inline bool IsDecisive(const TokenChoiceCase& c, const TokenChoiceInputs& in, int r) {
  const std::vector<float> row = PreparedRow(c, in, r);
  const int vocab = c.vocab;
  std::vector<int> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
  const double max_logit = row[order[0]];
  if (max_logit == -INFINITY) return true;  // all suppressed: nothing to decide
  if (c.top_p < 1.0) {
    // float64 here, float32 on both backends: they differ by far less than the margin, since
    // the peaked rows keep the mass that float32 sums lose below 1e-3.
    constexpr double kMargin = 0.01;
    double total = 0.0;
    for (float logit : row) total += std::exp(logit - max_logit);
    double cumulative = 0.0;
    for (int v : order) {
      const double before = cumulative;
      cumulative += std::exp(row[v] - max_logit) / total;
      if (cumulative > c.top_p) {
        if (cumulative - c.top_p < kMargin || c.top_p - before < kMargin) return false;
        break;
      }
    }
  }
  if (c.style == TokenChoiceStyle::kDream && c.temperature == 0.0) {
    for (int i = 1; i < vocab; ++i) {
      if (row[order[i]] == row[order[0]]) continue;
      if (max_logit - row[order[i]] < 1e-3) return false;
      break;
    }
  }
  if (c.style == TokenChoiceStyle::kDream && c.temperature > 0.0) {
    // The kept tokens are a prefix of `order`; the winner of every prefix must win clearly.
    const auto position = static_cast<uint32_t>(in.positions[r]);
    double best = -INFINITY, second = -INFINITY;
    for (int i = 0; i < vocab && row[order[i]] > -INFINITY; ++i) {
      const int v = order[i];
      const double u = UniformOpen01(in.seed, in.step, position, v, RngStream::kDreamSample);
      const double score = row[v] - std::log(-std::log(u));
      if (score > best) {
        second = best;
        best = score;
      } else if (score > second) {
        second = score;
      }
      if (i > 0 && best - second < 1e-4) return false;
    }
  }
  return true;
}

// Fixed-seed inputs for `c`; a row that would be a near-tie (IsDecisive) is drawn again.
inline TokenChoiceInputs MakeInputs(const TokenChoiceCase& c, uint32_t seed, bool extreme = false) {
  TokenChoiceInputs in;
  const int vocab = c.vocab;
  in.cond.resize(static_cast<size_t>(c.n_rows) * vocab);
  in.uncond.resize(in.cond.size());
  for (int r = 0; r < c.n_rows; ++r) in.positions.push_back(3 * r + 1);
  in.suppressed = {2, vocab - 1, vocab + 5, -1};  // out-of-vocab ids are ignored
  std::mt19937 generator(seed);
  for (int r = 0; r < c.n_rows; ++r) {
    RowKind kind = r % 2 ? RowKind::kPeaked : RowKind::kFlat;
    if (c.top_p < 1.0) kind = RowKind::kPeaked;
    if (extreme) kind = RowKind::kExtreme;
    int attempts = 0;
    do {
      FillRow(kind, generator, &in.cond[r * vocab], &in.uncond[r * vocab], vocab);
      if (extreme) break;
      EXPECT_LT(++attempts, 100) << "no decisive row for " << c.Name();
    } while (!IsDecisive(c, in, r) && attempts < 100);
  }
  return in;
}

// Every style x confidence x temperature x top_p x top_k x guidance x suppression.
inline std::vector<TokenChoiceCase> EveryOption(int n_rows, int vocab) {
  std::vector<TokenChoiceCase> cases;
  for (TokenChoiceStyle style : {TokenChoiceStyle::kLLaDA, TokenChoiceStyle::kDream}) {
    for (ConfidenceKind confidence :
         {ConfidenceKind::kProbability, ConfidenceKind::kMargin, ConfidenceKind::kNegEntropy}) {
      for (double temperature : {0.0, 0.7}) {
        for (double top_p : {1.0, 0.9}) {
          for (int top_k : {0, 50}) {
            for (int flags = 0; flags < 4; ++flags) {
              cases.push_back(TokenChoiceCase{n_rows, vocab, style, confidence, temperature, top_p,
                                              top_k, (flags & 1) != 0, (flags & 2) != 0});
            }
          }
        }
      }
    }
  }
  return cases;
}

}  // namespace sculpt::testing
