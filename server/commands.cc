#include "server/commands.h"

#include <iostream>

namespace sculpt {

int RunCommand(const char* command, const std::string& usage, FlagSet flags,
               const std::vector<std::string>& args,
               const std::function<absl::Status(const FlagSet&)>& body) {
  absl::Status status = flags.Parse(args);
  if (status.ok() && flags.GetBool("help")) {
    std::cout << usage << "\n\nFlags:\n" << flags.Usage();
    return 0;
  }
  if (status.ok()) status = body(flags);
  if (status.ok()) return 0;
  std::cerr << "sculpt " << command << ": " << status.message() << "\n";
  return ExitCodeFor(status);
}

}  // namespace sculpt
