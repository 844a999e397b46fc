#include "model/config.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"

namespace sculpt {
namespace {

using nlohmann::json;

// Reads fields of one config object; every error names the file and the field.
class FieldReader {
 public:
  FieldReader(const json& object, const std::string& source) : object_(object), source_(source) {}

  absl::Status Error(const std::string& field, const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": field '", field, "' ", what));
  }

  bool Has(const std::string& field) const {
    auto it = object_.find(field);
    return it != object_.end() && !it->is_null();
  }

  absl::StatusOr<std::optional<int64_t>> OptionalInt(const std::string& field) const {
    auto it = object_.find(field);
    if (it == object_.end() || it->is_null()) return std::optional<int64_t>();
    if (!it->is_number_integer()) return Error(field, "must be an integer");
    // Every count and token id must fit the int32 the engine stores it in.
    if (it->is_number_unsigned()
            ? it->get<uint64_t>() > INT32_MAX
            : (it->get<int64_t>() > INT32_MAX || it->get<int64_t>() < INT32_MIN)) {
      return Error(field, "is out of range");
    }
    return std::optional<int64_t>(it->get<int64_t>());
  }

  absl::StatusOr<int64_t> RequiredInt(const std::string& field, int64_t min_value) const {
    SCULPT_ASSIGN_OR_RETURN(auto value, OptionalInt(field));
    if (!value) return Error(field, "is missing");
    if (*value < min_value)
      return Error(field, absl::StrCat("must be >= ", min_value, ", got ", *value));
    return *value;
  }

  absl::StatusOr<double> Number(const std::string& field, double default_value) const {
    auto it = object_.find(field);
    if (it == object_.end() || it->is_null()) return default_value;
    if (!it->is_number()) return Error(field, "must be a number");
    return it->get<double>();
  }

  absl::StatusOr<bool> Bool(const std::string& field, bool default_value) const {
    auto it = object_.find(field);
    if (it == object_.end() || it->is_null()) return default_value;
    if (!it->is_boolean()) return Error(field, "must be true or false");
    return it->get<bool>();
  }

  absl::StatusOr<std::string> String(const std::string& field,
                                     const std::string& default_value) const {
    auto it = object_.find(field);
    if (it == object_.end() || it->is_null()) return default_value;
    if (!it->is_string()) return Error(field, "must be a string");
    return it->get<std::string>();
  }

  // The architecture options of the LLaDA/OLMo family that Sculpt does not implement: a
  // checkpoint using one must be refused, not run with silently different maths.
  absl::Status RequireBool(const std::string& field, bool supported, bool default_value) const {
    SCULPT_ASSIGN_OR_RETURN(bool value, Bool(field, default_value));
    if (value != supported) {
      return Error(field, absl::StrCat("= ", value ? "true" : "false", " is not supported (only ",
                                       supported ? "true" : "false", ")"));
    }
    return absl::OkStatus();
  }

  absl::Status RequireString(const std::string& field, const std::string& supported) const {
    SCULPT_ASSIGN_OR_RETURN(std::string value, String(field, supported));
    if (value != supported) {
      return Error(field,
                   absl::StrCat("= \"", value, "\" is not supported (only \"", supported, "\")"));
    }
    return absl::OkStatus();
  }

 private:
  const json& object_;
  const std::string& source_;
};

// The fields every family spells alike: special token ids, RoPE's base and the norm's epsilon.
absl::Status ParseSharedFields(const FieldReader& fields, double default_rms_norm_eps,
                               ModelConfig& config) {
  SCULPT_ASSIGN_OR_RETURN(auto pad, fields.OptionalInt("pad_token_id"));
  config.pad_token_id = static_cast<int32_t>(pad.value_or(-1));
  SCULPT_ASSIGN_OR_RETURN(auto bos, fields.OptionalInt("bos_token_id"));
  config.bos_token_id = static_cast<int32_t>(bos.value_or(-1));
  SCULPT_ASSIGN_OR_RETURN(config.rope_theta, fields.Number("rope_theta", 10000.0));
  SCULPT_ASSIGN_OR_RETURN(config.rms_norm_eps, fields.Number("rms_norm_eps", default_rms_norm_eps));
  return absl::OkStatus();
}

absl::Status ParseLLaDA(const FieldReader& fields, ModelConfig& config) {
  SCULPT_RETURN_IF_ERROR(fields.RequireString("block_type", "llama"));
  SCULPT_RETURN_IF_ERROR(fields.RequireString("layer_norm_type", "rms"));
  SCULPT_RETURN_IF_ERROR(fields.RequireString("activation_type", "silu"));
  SCULPT_RETURN_IF_ERROR(fields.RequireBool("rope", true, true));
  SCULPT_RETURN_IF_ERROR(fields.RequireBool("alibi", false, false));
  SCULPT_RETURN_IF_ERROR(fields.RequireBool("attention_layer_norm", false, false));
  SCULPT_RETURN_IF_ERROR(fields.RequireBool("scale_logits", false, false));
  SCULPT_RETURN_IF_ERROR(fields.RequireBool("input_emb_norm", false, false));
  SCULPT_RETURN_IF_ERROR(fields.RequireBool("layer_norm_with_affine", true, true));
  SCULPT_RETURN_IF_ERROR(fields.RequireBool("bias_for_layer_norm", false, false));
  SCULPT_RETURN_IF_ERROR(fields.RequireBool("include_bias", false, false));
  SCULPT_ASSIGN_OR_RETURN(auto clip_qkv, fields.Number("clip_qkv", 0.0));
  if (clip_qkv != 0.0) return fields.Error("clip_qkv", "is not supported (must be null)");

  SCULPT_ASSIGN_OR_RETURN(config.d_model, fields.RequiredInt("d_model", 1));
  SCULPT_ASSIGN_OR_RETURN(config.n_heads, fields.RequiredInt("n_heads", 1));
  SCULPT_ASSIGN_OR_RETURN(config.n_layers, fields.RequiredInt("n_layers", 1));
  SCULPT_ASSIGN_OR_RETURN(config.vocab_size, fields.RequiredInt("vocab_size", 1));
  SCULPT_ASSIGN_OR_RETURN(config.max_sequence_length, fields.RequiredInt("max_sequence_length", 1));
  SCULPT_ASSIGN_OR_RETURN(config.mask_token_id, fields.RequiredInt("mask_token_id", 0));
  SCULPT_ASSIGN_OR_RETURN(config.eos_token_id, fields.RequiredInt("eos_token_id", 0));
  SCULPT_ASSIGN_OR_RETURN(auto n_kv_heads, fields.OptionalInt("n_kv_heads"));
  config.n_kv_heads = static_cast<int>(n_kv_heads.value_or(config.n_heads));

  SCULPT_ASSIGN_OR_RETURN(auto mlp_hidden_size, fields.OptionalInt("mlp_hidden_size"));
  if (mlp_hidden_size) {
    config.mlp_hidden_size = static_cast<int>(*mlp_hidden_size);
  } else {
    SCULPT_ASSIGN_OR_RETURN(auto mlp_ratio, fields.OptionalInt("mlp_ratio"));
    if (!mlp_ratio) return fields.Error("mlp_hidden_size", "is missing (and so is mlp_ratio)");
    config.mlp_hidden_size = static_cast<int>(*mlp_ratio * config.d_model);
  }
  if (config.mlp_hidden_size < 1) return fields.Error("mlp_hidden_size", "must be >= 1");

  SCULPT_ASSIGN_OR_RETURN(auto embedding_size, fields.OptionalInt("embedding_size"));
  config.embedding_size = static_cast<int>(embedding_size.value_or(config.vocab_size));
  if (config.embedding_size < config.vocab_size) {
    return fields.Error("embedding_size", absl::StrCat("must be >= vocab_size (", config.vocab_size,
                                                       "), got ", config.embedding_size));
  }
  SCULPT_RETURN_IF_ERROR(ParseSharedFields(fields, /*default_rms_norm_eps=*/1e-5, config));
  SCULPT_ASSIGN_OR_RETURN(config.include_qkv_bias, fields.Bool("include_qkv_bias", false));
  SCULPT_ASSIGN_OR_RETURN(config.weight_tying, fields.Bool("weight_tying", false));
  return absl::OkStatus();
}

// Dream (and DiffuCoder): the Qwen2 config layout.
absl::Status ParseDream(const FieldReader& fields, ModelConfig& config) {
  SCULPT_RETURN_IF_ERROR(fields.RequireString("hidden_act", "silu"));
  SCULPT_RETURN_IF_ERROR(fields.RequireBool("use_sliding_window", false, false));
  SCULPT_RETURN_IF_ERROR(fields.RequireBool("tie_word_embeddings", false, false));
  if (fields.Has("rope_scaling"))
    return fields.Error("rope_scaling", "is not supported (must be null)");

  SCULPT_ASSIGN_OR_RETURN(config.d_model, fields.RequiredInt("hidden_size", 1));
  SCULPT_ASSIGN_OR_RETURN(config.n_heads, fields.RequiredInt("num_attention_heads", 1));
  SCULPT_ASSIGN_OR_RETURN(config.n_layers, fields.RequiredInt("num_hidden_layers", 1));
  SCULPT_ASSIGN_OR_RETURN(config.vocab_size, fields.RequiredInt("vocab_size", 1));
  SCULPT_ASSIGN_OR_RETURN(config.mlp_hidden_size, fields.RequiredInt("intermediate_size", 1));
  SCULPT_ASSIGN_OR_RETURN(config.max_sequence_length,
                          fields.RequiredInt("max_position_embeddings", 1));
  SCULPT_ASSIGN_OR_RETURN(config.mask_token_id, fields.RequiredInt("mask_token_id", 0));
  SCULPT_ASSIGN_OR_RETURN(config.eos_token_id, fields.RequiredInt("eos_token_id", 0));
  SCULPT_ASSIGN_OR_RETURN(auto n_kv_heads, fields.OptionalInt("num_key_value_heads"));
  config.n_kv_heads = static_cast<int>(n_kv_heads.value_or(config.n_heads));
  config.embedding_size = config.vocab_size;
  config.include_qkv_bias = true;  // Qwen2: q/k/v projections have biases, o_proj none
  config.weight_tying = false;
  return ParseSharedFields(fields, /*default_rms_norm_eps=*/1e-6, config);
}

// Checks shared by every family once its fields are read; errors use the family's field names.
absl::Status ValidateShape(const FieldReader& fields, const ModelConfig& config,
                           const char* heads_field, const char* kv_heads_field,
                           const char* width_field) {
  if (config.n_kv_heads < 1 || config.n_heads % config.n_kv_heads != 0) {
    return fields.Error(kv_heads_field, absl::StrCat("must divide ", heads_field, " (",
                                                     config.n_heads, "), got ", config.n_kv_heads));
  }
  if (config.d_model % config.n_heads != 0) {
    return fields.Error(heads_field, absl::StrCat("must divide ", width_field, " (", config.d_model,
                                                  "), got ", config.n_heads));
  }
  if (config.head_dim() % 2 != 0) {
    return fields.Error(heads_field, absl::StrCat("gives an odd head dimension ", config.head_dim(),
                                                  "; rotary embeddings need an even one"));
  }
  if (config.mask_token_id >= config.embedding_size) {
    return fields.Error("mask_token_id",
                        absl::StrCat("must be < the vocabulary size (", config.embedding_size,
                                     "), got ", config.mask_token_id));
  }
  if (config.eos_token_id >= config.embedding_size) {
    return fields.Error("eos_token_id",
                        absl::StrCat("must be < the vocabulary size (", config.embedding_size,
                                     "), got ", config.eos_token_id));
  }
  if (!(config.rope_theta > 0)) return fields.Error("rope_theta", "must be > 0");
  if (!(config.rms_norm_eps > 0)) return fields.Error("rms_norm_eps", "must be > 0");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text,
                                             const std::string& source) {
  json root = json::parse(json_text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded())
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  if (!root.is_object())
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  FieldReader fields(root, source);
  ModelConfig config;
  SCULPT_ASSIGN_OR_RETURN(config.model_type, fields.String("model_type", ""));
  if (config.model_type.empty()) return fields.Error("model_type", "is missing");
  if (config.model_type == "llada") {
    config.family = ModelFamily::kLLaDA;
    SCULPT_RETURN_IF_ERROR(ParseLLaDA(fields, config));
    SCULPT_RETURN_IF_ERROR(ValidateShape(fields, config, "n_heads", "n_kv_heads", "d_model"));
    return config;
  }
  if (config.model_type == "Dream") {
    config.family = ModelFamily::kDream;
    SCULPT_RETURN_IF_ERROR(ParseDream(fields, config));
    SCULPT_RETURN_IF_ERROR(
        ValidateShape(fields, config, "num_attention_heads", "num_key_value_heads", "hidden_size"));
    return config;
  }
  return fields.Error("model_type", absl::StrCat("= \"", config.model_type,
                                                 "\" is not a supported model type (supported: "
                                                 "\"llada\", \"Dream\")"));
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  SCULPT_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseModelConfig(text, path);
}

}  // namespace sculpt
