// LLaDA (OLMo "llama" block): RMSNorm, RoPE, non-causal attention, SwiGLU.
#pragma once

#include <memory>

#include "model/dense_transformer.h"
#include "model/safetensors.h"
#include "model/transformer.h"

namespace sculpt {

// The HF LLaDA checkpoints' tensor names.
TensorNames LLaDATensorNames();

absl::StatusOr<std::unique_ptr<Transformer>> LoadLLaDA(const ModelConfig& config,
                                                       std::shared_ptr<const Checkpoint> checkpoint,
                                                       Backend& backend);

}  // namespace sculpt
