// The LM-head epilogue on the device: one chosen token and one confidence per row of logits, the
// CUDA twin of cpu/choose_tokens.cc. Only the two [n_rows] outputs need to go back to the host.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "model/token_choice.h"

namespace sculpt::cuda {

// The semantics are those of ChooseTokensParams (model/backend.h); every pointer is device memory.
struct ChooseTokensKernelParams {
  // [n_rows, vocab], read; overwritten with the guided, tempered, suppressed and filtered logits
  // when any of those applies (the CPU op's contract allows it).
  float* logits = nullptr;
  const float* uncond_logits = nullptr;  // [n_rows, vocab] or nullptr (no guidance), read
  int32_t n_rows = 0;
  int32_t vocab = 0;
  double cfg_scale = 0.0;
  double temperature = 0.0;
  double top_p = 1.0;  // 1 = off
  int32_t top_k = 0;   // 0 = off
  TokenChoiceStyle style = TokenChoiceStyle::kLLaDA;
  ConfidenceKind confidence = ConfidenceKind::kProbability;  // Dream only; LLaDA's: probability
  const int32_t* suppressed_tokens = nullptr;  // [n_suppressed], read; ids outside the vocab
  int32_t n_suppressed = 0;                    // are ignored
  uint64_t seed = 0;
  uint32_t step = 0;
  const int32_t* positions = nullptr;  // [n_rows], read: canvas position of each row (RNG key)
  int32_t* tokens = nullptr;           // [n_rows], written
  double* confidences = nullptr;       // [n_rows], written
  // Device scratch of at least ChooseTokensScratchBytes(n_rows, vocab) bytes; used only when
  // top_p or top_k filters (may be null otherwise). Allocated once by the caller, never here.
  void* scratch = nullptr;
  size_t scratch_bytes = 0;
};

// Scratch that LaunchChooseTokens needs for up to n_rows rows of `vocab` logits: two sort
// buffers of n_rows * vocab floats plus a little for the sort itself. Callers that need less
// memory launch the rows in chunks; a row's result does not depend on the other rows.
size_t ChooseTokensScratchBytes(int n_rows, int vocab);

// Enqueues the op on `stream` (nothing is synchronized). Invalid params give InvalidArgument
// before anything is enqueued; a launch failure gives Internal.
[[nodiscard]] absl::Status LaunchChooseTokens(const ChooseTokensKernelParams& params,
                                              cudaStream_t stream);

}  // namespace sculpt::cuda
