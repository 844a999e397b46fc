// Loading the served model.
#include "server/served_model.h"

#include <filesystem>

#include "common/file_util.h"
#include "common/status.h"
#include "cpu/cpu_backend.h"
#include "model/safetensors.h"
#include "server/model_revision.h"

namespace sculpt {

std::string DefaultModelDir() {
  const std::string relative = "models/sculpt-code-mini";
  if (FileExists(relative + "/config.json")) return relative;
  std::error_code error;
  const auto executable = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    const auto beside = executable.parent_path().parent_path() / relative;
    if (FileExists((beside / "config.json").string())) return beside.string();
  }
  return "";
}

absl::StatusOr<std::unique_ptr<ServedModel>> LoadServedModel(const std::string& dir,
                                                             std::unique_ptr<Backend> backend,
                                                             ModelParts parts) {
  auto served = std::make_unique<ServedModel>();
  served->dir = dir;
  std::filesystem::path path(dir);
  if (!path.has_filename()) path = path.parent_path();
  served->name = path.filename().string();
  const bool weights = parts == ModelParts::kAll;
  if (weights) {
    served->backend = backend ? std::move(backend) : MakeCpuBackend();
    served->device = served->backend->name();
    SCULPT_ASSIGN_OR_RETURN(served->transformer, LoadTransformer(dir, *served->backend));
    SCULPT_ASSIGN_OR_RETURN(served->revision, ContentRevision(dir));
    served->card_revision = CardRevision(dir);
  }
  // Optional beside weights (id-only models have none), required on its own.
  if (!weights || FileExists(dir + "/tokenizer.json")) {
    SCULPT_ASSIGN_OR_RETURN(served->tokenizer, Tokenizer::Load(dir));
    auto format = DetectChatFormat(served->tokenizer->chat_template());
    if (format.ok()) served->chat_format = *format;
  }
  if (!weights) return served;
  const ModelConfig& config = served->config();
  // Counted from the config, as the checkpoint's tensors are owned by the backend.
  const uint64_t d = config.d_model;
  const uint64_t kv = static_cast<uint64_t>(config.n_kv_heads) * config.head_dim();
  const uint64_t per_layer =
      d * d * 2 + d * kv * 2 + 3 * d * static_cast<uint64_t>(config.mlp_hidden_size) + 2 * d;
  served->parameters =
      per_layer * config.n_layers +
      static_cast<uint64_t>(config.embedding_size) * d * (config.weight_tying ? 1 : 2) + d;
  return served;
}

}  // namespace sculpt
