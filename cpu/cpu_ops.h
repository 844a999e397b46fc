// The CPU implementations of the backend ops, one concern per source file (GEMMs: gemm.h).
#pragma once

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
absl::Status Attention(const AttentionParams& params);        // attention.cc
absl::Status ChooseTokens(const ChooseTokensParams& params);  // choose_tokens.cc

}  // namespace sculpt::cpu
