// The CPU implementations of the backend ops, one concern per source file (GEMMs: gemm.h).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "model/backend.h"

namespace sculpt::cpu {

absl::Status Embed(const EmbedParams& params);            // elementwise.cc
absl::Status RmsNorm(const RmsNormParams& params);        // elementwise.cc
absl::Status AddRmsNorm(const AddRmsNormParams& params);  // elementwise.cc
absl::Status SwiGlu(const SwiGluParams& params);          // elementwise.cc
absl::Status Add(const AddParams& params);                // elementwise.cc
absl::Status GatherRows(const GatherRowsParams& params);  // elementwise.cc
absl::Status Rope(const RopeParams& params);              // rope.cc
// A shared AttentionRunner, for callers without a backend (tests).
absl::Status Attention(const AttentionParams& params);  // attention.cc
// ChooseTokens' reused storage: the step's (group, row) tasks and each thread's working row.
struct TokenChoiceScratch {
  struct Row {
    std::vector<float> logits, sorted;
    std::vector<float> guided;  // the guided row, kept for log-probabilities
    std::vector<int32_t> order;
  };
  std::vector<std::pair<int32_t, int32_t>> tasks;
  std::vector<Row> per_thread;
  // Sized for `rows` rows of `vocab` logits on every thread, so that calls within it allocate
  // nothing.
  void Reserve(int64_t rows, int64_t vocab);
};
absl::Status ChooseTokens(const ChooseTokensParams& params,
                          TokenChoiceScratch& scratch);  // choose_tokens.cc

}  // namespace sculpt::cpu
