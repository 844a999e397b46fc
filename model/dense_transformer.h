// The pre-norm RoPE/SwiGLU transformer body shared by the LLaDA and Dream families.
#pragma once

#include <memory>
#include <string>

#include "model/safetensors.h"
#include "model/transformer.h"

namespace sculpt {

// Checkpoint tensor names of one family; "{i}" stands for the layer index. Projections are
// names without the ".weight"/".bias" suffix where a bias may follow.
struct TensorNames {
  std::string embedding;
  std::string final_norm;
  std::string lm_head;  // unused with weight tying
  std::string attn_norm;
  std::string q_proj, k_proj, v_proj;
  std::string attn_out;
  std::string ff_norm;
  std::string gate_proj, up_proj, down_proj;
};

absl::StatusOr<std::unique_ptr<Transformer>> LoadDenseTransformer(const ModelConfig& config,
                                                                  TensorNames names,
                                                                  const Checkpoint& checkpoint,
                                                                  Backend& backend);

}  // namespace sculpt
