// The model a server process serves: weights, tokenizer and what clients may ask about it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "model/backend.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace sculpt {

struct ServedModel {
  std::string name;  // what requests put in `model`: the directory's last component
  std::string dir;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Transformer> transformer;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the directory has no tokenizer.json
  std::optional<ChatFormat> chat_format;
  uint64_t parameters = 0;
  std::string device = "cpu";  // the backend's name, e.g. "cuda:0 (NVIDIA H200, ...)"
  // ContentRevision of the directory (the hash of what decides its answers), and the model
  // card's own `revision` ("" when it has none); model_revision.h.
  std::string revision;
  std::string card_revision;

  const ModelConfig& config() const { return transformer->config(); }
};

// The shipped models/sculpt-code-mini, found from the working directory or next to the binary
// (build/sculpt); empty when neither has it.
std::string DefaultModelDir();

// What a command needs of a model directory.
enum class ModelParts {
  kAll,        // config, weights and (when there is one) the tokenizer: serve, generate, eval
  kTokenizer,  // tokenizer.json only, which must exist: tokenize, detokenize
};

// The one loader of a model directory for every command: loads DIR onto `backend` (the CPU
// when null; see MakeBackend). Errors name the file that is wrong. With kTokenizer only
// `name`, `dir`, `tokenizer` and `chat_format` are set.
absl::StatusOr<std::unique_ptr<ServedModel>> LoadServedModel(
    const std::string& dir, std::unique_ptr<Backend> backend = nullptr,
    ModelParts parts = ModelParts::kAll);

}  // namespace sculpt
