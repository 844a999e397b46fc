// How token choice works, in a header of its own so that the CUDA kernels' parameters use the
// same enums as the backend interface (model/backend.h).
#pragma once

namespace sculpt {

// How a step turns a row of logits into a token and a confidence.
enum class TokenChoiceStyle {
  // LLaDA: argmax at temperature 0, else the float64 Gumbel-max argmax of
  // exp(l) / (-log u)^temperature with u from RngStream::kGumbel; confidence = float64
  // softmax(l)[token].
  kLLaDA,
  // Dream's sample_tokens: l / temperature, then top_p and top_k, then a float32 softmax;
  // argmax of the probabilities at temperature 0, else a categorical draw (Gumbel-max over
  // log p with u from RngStream::kDreamSample).
  kDream,
};

// What "confidence" means for the chosen token (Dream's algorithms; LLaDA uses kProbability).
enum class ConfidenceKind {
  kProbability,  // p(token)
  kMargin,       // top-1 minus top-2 probability
  kNegEntropy,   // sum p log(p + 1e-10)
};

// The most alternatives a row's log-probabilities list (OpenAI's top_logprobs bound).
inline constexpr int kMaxTopLogprobs = 20;

}  // namespace sculpt
