// Pre-tokenizers of HF tokenizer.json that byte-level BPE families use: Split, ByteLevel,
// Digits and Sequence. Each turns a list of pieces (byte ranges of the text being encoded) into
// a finer list; BPE then runs on every piece on its own.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sculpt {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits each piece further. Pieces are owned strings because ByteLevel may prepend a space.
  virtual void Split(std::vector<std::string>& pieces) const = 0;
  // Whether the final pieces must be mapped to the byte-level alphabet before BPE.
  virtual bool maps_to_byte_level() const { return false; }
};

// Builds from a tokenizer.json `pre_tokenizer` object (null gives nullptr); an unsupported type
// or option is INVALID_ARGUMENT naming it.
absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& config);

}  // namespace sculpt
