// The log-probabilities a request asks for (the API's `logprobs`) on the device: the chosen
// token's and the top alternatives' log-softmax of the guided logits, the CUDA twin of the
// log-probability part of cpu/choose_tokens.cc (semantics: TokenChoiceGroup, model/backend.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"

namespace sculpt::cuda {

struct TokenLogprobsKernelParams {
  const float* cond_logits = nullptr;    // [n_rows, vocab], device, read: as the model gave them
  const float* uncond_logits = nullptr;  // [n_rows, vocab] or nullptr (no guidance), read
  float guidance = 1.0f;                 // cfg_scale + 1, rounded to float as the CPU does
  int32_t n_rows = 0;
  int32_t vocab = 0;
  const int32_t* tokens = nullptr;  // [n_rows], device, read: the chosen tokens, each < vocab
  int32_t top_k = 0;                // alternatives per row, in [0, kMaxTopLogprobs]
  double* logprobs = nullptr;       // [n_rows], device, written
  int32_t* top_ids = nullptr;       // [n_rows, top_k], device, written (-1 past a small vocab)
  double* top_values = nullptr;     // [n_rows, top_k], device, written (-inf past it)
};

// Enqueues the op on `stream`. Invalid params give InvalidArgument before anything is enqueued.
[[nodiscard]] absl::Status LaunchTokenLogprobs(const TokenLogprobsKernelParams& params,
                                               cudaStream_t stream);

}  // namespace sculpt::cuda
