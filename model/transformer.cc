#include "model/transformer.h"

#include "common/status.h"
#include "model/dream.h"
#include "model/llada.h"
#include "model/safetensors.h"

namespace sculpt {

absl::StatusOr<std::unique_ptr<Transformer>> LoadTransformer(const std::string& model_dir,
                                                             Backend& backend) {
  SCULPT_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  SCULPT_ASSIGN_OR_RETURN(std::shared_ptr<const Checkpoint> checkpoint,
                          Checkpoint::Open(model_dir));
  switch (config.family) {
    case ModelFamily::kLLaDA:
      return LoadLLaDA(config, std::move(checkpoint), backend);
    case ModelFamily::kDream:
      return LoadDream(config, std::move(checkpoint), backend);
  }
  return absl::InternalError("unhandled model family");
}

}  // namespace sculpt
