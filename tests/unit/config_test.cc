#include "model/config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace sculpt {
namespace {

// The fields of the real LLaDA-8B config.json that Sculpt reads, with their real values.
nlohmann::json LLaDA8BConfig() {
  return {
      {"model_type", "llada"},
      {"architectures", {"LLaDAModelLM"}},
      {"activation_type", "silu"},
      {"alibi", false},
      {"attention_layer_norm", false},
      {"block_type", "llama"},
      {"d_model", 4096},
      {"embedding_size", 126464},
      {"eos_token_id", 126081},
      {"include_bias", false},
      {"include_qkv_bias", false},
      {"input_emb_norm", false},
      {"layer_norm_type", "rms"},
      {"layer_norm_with_affine", true},
      {"bias_for_layer_norm", false},
      {"mask_token_id", 126336},
      {"max_sequence_length", 4096},
      {"mlp_hidden_size", 12288},
      {"mlp_ratio", 4},
      {"n_heads", 32},
      {"n_kv_heads", 32},
      {"n_layers", 32},
      {"pad_token_id", 126081},
      {"rms_norm_eps", 1e-5},
      {"rope", true},
      {"rope_theta", 500000.0},
      {"scale_logits", false},
      {"vocab_size", 126464},
      {"weight_tying", false},
      {"clip_qkv", nullptr},
  };
}

absl::Status ParseError(const nlohmann::json& config) {
  return ParseModelConfig(config.dump(), "config.json").status();
}

TEST(ConfigTest, ParsesLLaDA8B) {
  auto config = ParseModelConfig(LLaDA8BConfig().dump(), "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->family, ModelFamily::kLLaDA);
  EXPECT_EQ(config->d_model, 4096);
  EXPECT_EQ(config->n_layers, 32);
  EXPECT_EQ(config->n_heads, 32);
  EXPECT_EQ(config->n_kv_heads, 32);
  EXPECT_EQ(config->head_dim(), 128);
  EXPECT_EQ(config->mlp_hidden_size, 12288);
  EXPECT_EQ(config->vocab_size, 126464);
  EXPECT_EQ(config->embedding_size, 126464);
  EXPECT_EQ(config->max_sequence_length, 4096);
  EXPECT_DOUBLE_EQ(config->rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-5);
  EXPECT_EQ(config->mask_token_id, 126336);
  EXPECT_EQ(config->eos_token_id, 126081);
  EXPECT_EQ(config->pad_token_id, 126081);
  EXPECT_FALSE(config->weight_tying);
}

TEST(ConfigTest, DefaultsForOptionalFields) {
  nlohmann::json config = LLaDA8BConfig();
  config.erase("n_kv_heads");
  config.erase("embedding_size");
  config.erase("mlp_hidden_size");
  auto parsed = ParseModelConfig(config.dump(), "config.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->n_kv_heads, 32);
  EXPECT_EQ(parsed->embedding_size, 126464);
  EXPECT_EQ(parsed->mlp_hidden_size, 4 * 4096);  // from mlp_ratio
}

TEST(ConfigTest, UnknownModelTypeIsNamed) {
  nlohmann::json config = LLaDA8BConfig();
  config["model_type"] = "mamba";
  const absl::Status status = ParseError(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("model_type"), std::string::npos) << status;
  EXPECT_NE(status.message().find("mamba"), std::string::npos) << status;
}

TEST(ConfigTest, MissingAndInvalidFieldsAreNamed) {
  for (const char* field : {"d_model", "n_heads", "n_layers", "vocab_size", "mask_token_id",
                            "eos_token_id", "max_sequence_length", "model_type"}) {
    nlohmann::json config = LLaDA8BConfig();
    config.erase(field);
    const absl::Status status = ParseError(config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(status.message().find(field), std::string::npos) << status;
    EXPECT_NE(status.message().find("missing"), std::string::npos) << status;
  }
  const std::vector<std::pair<std::string, nlohmann::json>> invalid = {
      {"d_model", "4096"},     {"d_model", 0},
      {"n_heads", 3},          {"n_kv_heads", 5},
      {"rope_theta", "big"},   {"rms_norm_eps", -1.0},
      {"weight_tying", 1},     {"mask_token_id", 200000},
      {"embedding_size", 100}, {"n_layers", 1ll << 40},
      {"mlp_hidden_size", 0},
  };
  for (const auto& [field, value] : invalid) {
    nlohmann::json config = LLaDA8BConfig();
    config[field] = value;
    const absl::Status status = ParseError(config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field << "=" << value;
    EXPECT_NE(status.message().find(field), std::string::npos) << status;
  }
}

TEST(ConfigTest, UnsupportedArchitectureOptionsAreRefused) {
  const std::vector<std::pair<std::string, nlohmann::json>> unsupported = {
      {"alibi", true},
      {"rope", false},
      {"block_type", "sequential"},
      {"layer_norm_type", "default"},
      {"activation_type", "gelu"},
      {"scale_logits", true},
      {"include_bias", true},
      {"attention_layer_norm", true},
      {"clip_qkv", 8.0},
  };
  for (const auto& [field, value] : unsupported) {
    nlohmann::json config = LLaDA8BConfig();
    config[field] = value;
    const absl::Status status = ParseError(config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(status.message().find(field), std::string::npos) << status;
    EXPECT_NE(status.message().find("not supported"), std::string::npos) << status;
  }
}

TEST(ConfigTest, NotJsonOrNotAnObject) {
  EXPECT_NE(
      ParseModelConfig("{not json", "x/config.json").status().message().find("not valid JSON"),
      std::string::npos);
  EXPECT_NE(
      ParseModelConfig("[1, 2]", "x/config.json").status().message().find("not a JSON object"),
      std::string::npos);
}

TEST(ConfigTest, MissingFileNamesThePath) {
  const auto status = LoadModelConfig("/nonexistent-model-dir").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("/nonexistent-model-dir/config.json"), std::string::npos);
}

}  // namespace
}  // namespace sculpt
