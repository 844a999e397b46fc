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

  const ModelConfig& config() const { return transformer->config(); }
};

// The shipped models/sculpt-code-mini, found from the working directory or next to the binary
// (build/sculpt); empty when neither has it.
std::string DefaultModelDir();

// Loads DIR onto `backend` (the CPU when null; see MakeBackend). Errors name the file
// that is wrong.
absl::StatusOr<std::unique_ptr<ServedModel>> LoadServedModel(
    const std::string& dir, std::unique_ptr<Backend> backend = nullptr);

}  // namespace sculpt
