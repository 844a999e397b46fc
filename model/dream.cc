// Dream as the shared dense transformer: Qwen2 tensor names (q/k/v biases, untied lm_head).
// The shift of its predictions (position i read from the logits of i - 1) is applied where
// logit positions are chosen (ModelConfig::shifted_predictions), so only needed rows are computed.
#include "model/dream.h"

#include "model/dense_transformer.h"

namespace sculpt {

absl::StatusOr<std::unique_ptr<Transformer>> LoadDream(const ModelConfig& config,
                                                       std::shared_ptr<const Checkpoint> checkpoint,
                                                       Backend& backend) {
  const std::string layer = "model.layers.{i}.";
  TensorNames names{
      .embedding = "model.embed_tokens.weight",
      .final_norm = "model.norm.weight",
      .lm_head = "lm_head.weight",
      .attn_norm = layer + "input_layernorm.weight",
      .q_proj = layer + "self_attn.q_proj",
      .k_proj = layer + "self_attn.k_proj",
      .v_proj = layer + "self_attn.v_proj",
      .attn_out = layer + "self_attn.o_proj.weight",
      .ff_norm = layer + "post_attention_layernorm.weight",
      .gate_proj = layer + "mlp.gate_proj.weight",
      .up_proj = layer + "mlp.up_proj.weight",
      .down_proj = layer + "mlp.down_proj.weight",
  };
  return LoadDenseTransformer(config, std::move(names), checkpoint, backend);
}

}  // namespace sculpt
