// LLaDA (OLMo "llama" blocks) as the shared dense transformer: its tensor names.
#include "model/llada.h"

#include "model/dense_transformer.h"

namespace sculpt {

TensorNames LLaDATensorNames() {
  const std::string block = "model.transformer.blocks.{i}.";
  return TensorNames{
      .embedding = "model.transformer.wte.weight",
      .final_norm = "model.transformer.ln_f.weight",
      .lm_head = "model.transformer.ff_out.weight",
      .attn_norm = block + "attn_norm.weight",
      .q_proj = block + "q_proj",
      .k_proj = block + "k_proj",
      .v_proj = block + "v_proj",
      .attn_out = block + "attn_out.weight",
      .ff_norm = block + "ff_norm.weight",
      .gate_proj = block + "ff_proj.weight",
      .up_proj = block + "up_proj.weight",
      .down_proj = block + "ff_out.weight",
  };
}

absl::StatusOr<std::unique_ptr<Transformer>> LoadLLaDA(const ModelConfig& config,
                                                       std::shared_ptr<const Checkpoint> checkpoint,
                                                       Backend& backend) {
  return LoadDenseTransformer(config, LLaDATensorNames(), std::move(checkpoint), backend);
}

}  // namespace sculpt
