// Dream (Qwen2 layout, shifted predictions), e.g. Dream-7B and DiffuCoder.
#pragma once

#include <memory>

#include "model/safetensors.h"
#include "model/transformer.h"

namespace sculpt {

absl::StatusOr<std::unique_ptr<Transformer>> LoadDream(const ModelConfig& config,
                                                       std::shared_ptr<const Checkpoint> checkpoint,
                                                       Backend& backend);

}  // namespace sculpt
