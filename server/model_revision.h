// What a served model is, beyond its name: a content hash of the files that decide its answers,
// so that an update of the weights, tokenizer or config never silently changes what a client
// gets (a request may pin the revision it expects).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace sculpt {

// The first 16 hex digits of a SHA-256 over the model directory's config (config.json,
// generation_config.json), tokenizer (tokenizer.json, tokenizer_config.json,
// special_tokens_map.json, chat_template.jinja) and weights (*.safetensors and their index),
// in file-name order, each as its name, a NUL byte, its size (8 bytes, little-endian) and its
// bytes. The model card and other files do not count. Errors name the file that cannot be read.
absl::StatusOr<std::string> ContentRevision(const std::string& dir);

// The `revision:` of the model card's YAML front matter (README.md between `---` lines), or ""
// when the card has none.
std::string CardRevision(const std::string& dir);

}  // namespace sculpt
