// A compiled Unicode regex (PCRE2 with JIT, UTF and Unicode properties) for pre-tokenizers.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace sculpt {

class Regex {
 public:
  // INVALID_ARGUMENT with PCRE2's message and the offset when the pattern does not compile.
  static absl::StatusOr<Regex> Compile(const std::string& pattern);
  // A pattern matching `literal` exactly.
  static absl::StatusOr<Regex> Literal(std::string_view literal);

  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // Byte ranges [begin, end) of the successive non-overlapping matches in `text` (valid UTF-8).
  // Empty matches are skipped, as HF's splitting does.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

 private:
  struct Impl;
  explicit Regex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sculpt
