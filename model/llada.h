// LLaDA (OLMo "llama" block): RMSNorm, RoPE, non-causal attention, SwiGLU.
#pragma once

#include <memory>

#include "model/safetensors.h"
#include "model/transformer.h"

namespace sculpt {

absl::StatusOr<std::unique_ptr<Transformer>> LoadLLaDA(const ModelConfig& config,
                                                       const Checkpoint& checkpoint,
                                                       Backend& backend);

}  // namespace sculpt
