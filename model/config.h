// Model hyper-parameters and special token ids, read from a Hugging Face config.json.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace sculpt {

enum class ModelFamily {
  kLLaDA,  // model_type "llada": predicts the token at each position from that position
  kDream,  // model_type "Dream" (Qwen2 layout): predicts position i from the logits of i - 1
};

struct ModelConfig {
  ModelFamily family = ModelFamily::kLLaDA;
  std::string model_type;  // as written in config.json
  int d_model = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int n_layers = 0;
  int mlp_hidden_size = 0;
  int vocab_size = 0;
  int embedding_size = 0;  // rows of the embedding and LM head; >= vocab_size
  int max_sequence_length = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;
  bool include_bias = false;
  bool include_qkv_bias = false;
  bool weight_tying = false;
  int32_t mask_token_id = -1;
  int32_t eos_token_id = -1;
  int32_t pad_token_id = -1;  // -1 when the config has none
  int32_t bos_token_id = -1;  // -1 when the config has none

  int head_dim() const { return d_model / n_heads; }
  // Whether the token at position i is read from the logits of position i - 1 (position 0
  // keeps its own), as Dream was trained.
  bool shifted_predictions() const { return family == ModelFamily::kDream; }
};

// Parses config.json text; `source` names the file in error messages.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text,
                                             const std::string& source);
// Reads DIR/config.json.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);

}  // namespace sculpt
