// Process-wide logging setup (spdlog to stderr, so stdout stays machine-readable).
#pragma once

#include <string>

#include "absl/status/status.h"

namespace sculpt {

// level: trace, debug, info, warn, error, off.
absl::Status SetupLogging(const std::string& level);

}  // namespace sculpt
