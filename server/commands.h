// The subcommands of the `sculpt` binary. Each returns the process exit code.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/status.h"
#include "server/flags.h"

namespace sculpt {

// A failure that is not the caller's usage, whatever its status code (a model directory that
// cannot be loaded: a config.json that is invalid is INVALID_ARGUMENT, yet no flag is wrong).
inline constexpr char kNotUsage[] = "type.sculpt.dev/not-usage";
inline absl::Status NotUsage(absl::Status status) {
  return WithMarker(std::move(status), kNotUsage);
}

// A command's exit code for a failure: 2 for a usage error (INVALID_ARGUMENT: a flag or input
// the caller must fix), 1 for anything else.
inline int ExitCodeFor(const absl::Status& status) {
  return absl::IsInvalidArgument(status) && !HasMarker(status, kNotUsage) ? 2 : 1;
}

// Every command's frame: parses `args` into `flags`, prints `usage` and the flags for --help,
// else runs `body`; a failure is printed as "sculpt COMMAND: message" and exits by ExitCodeFor.
int RunCommand(const char* command, const std::string& usage, FlagSet flags,
               const std::vector<std::string>& args,
               const std::function<absl::Status(const FlagSet&)>& body);

int RunGenerateCommand(const std::vector<std::string>& args);
int RunTokenizeCommand(const std::vector<std::string>& args);
int RunDetokenizeCommand(const std::vector<std::string>& args);
int RunEvalCommand(const std::vector<std::string>& args);
int RunServeCommand(const std::vector<std::string>& args);

}  // namespace sculpt
