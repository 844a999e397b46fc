// The subcommands of the `sculpt` binary. Each returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace sculpt {

int RunGenerateCommand(const std::vector<std::string>& args);
int RunTokenizeCommand(const std::vector<std::string>& args);
int RunDetokenizeCommand(const std::vector<std::string>& args);
int RunEvalCommand(const std::vector<std::string>& args);
int RunServeCommand(const std::vector<std::string>& args);

}  // namespace sculpt
