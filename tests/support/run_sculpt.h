// Runs the built `sculpt` binary as a real process, for the CLI's integration tests.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace sculpt::testing {

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout, and stderr where `stderr_to` is "&1"
};

// `sculpt ARGUMENTS` through the shell; stderr goes to `stderr_to` (a shell redirection target).
inline Outcome RunSculpt(const std::string& arguments, const std::string& stderr_to = "&1") {
  std::string command = SCULPT_BINARY_DIR;
  command.append("/sculpt ").append(arguments).append(" 2>").append(stderr_to);
  Outcome outcome;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return outcome;
  std::array<char, 4096> buffer;
  size_t read;
  while ((read = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    outcome.output.append(buffer.data(), read);
  }
  const int status = pclose(pipe);
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

}  // namespace sculpt::testing
