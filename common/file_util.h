// Whole-file reads with errors that name the path.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace sculpt {

absl::StatusOr<std::string> ReadFileToString(const std::string& path);
bool FileExists(const std::string& path);

}  // namespace sculpt
