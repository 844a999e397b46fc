// Embedding gather on the device: one row of the (bf16 or fp32) table per token, widened to fp32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"

namespace sculpt::cuda {

struct EmbedKernelParams {
  const int32_t* token_ids = nullptr;  // [n_tokens], device, read; each in [0, vocab)
  int64_t n_tokens = 0;
  const void* table = nullptr;  // [vocab, d_model] of table_dtype, device, read
  DType table_dtype = DType::kBF16;
  int64_t d_model = 0;
  float* out = nullptr;  // [n_tokens, d_model], device, written
};

// The caller checks the ids (they come from the host); the kernel trusts them.
absl::Status LaunchEmbed(const EmbedKernelParams& params, cudaStream_t stream);

}  // namespace sculpt::cuda
