// Process-wide logging setup (spdlog to stderr, so stdout stays machine-readable).
#pragma once

#include <string>

#include "absl/status/status.h"

namespace sculpt {

// level: trace, debug, info, warn, error, off. format: "text" (human-readable lines) or
// "json" (one JSON object per line: time, level, message).
absl::Status SetupLogging(const std::string& level, const std::string& format = "text");

}  // namespace sculpt
