// The `sculpt` binary: one entry point, one subcommand per job.
#include <iostream>
#include <string>
#include <vector>

#include "server/commands.h"

namespace {

constexpr const char* kUsage = R"(Sculpt: an inference server for text diffusion language models.

Usage: sculpt COMMAND [flags]

Commands:
  serve       serve a model over gRPC until SIGTERM/SIGINT
  generate    run one generation (on the CPU or a GPU: --device) and print the answer
  tokenize    encode text with the model's tokenizer.json
  detokenize  decode token ids to text
  eval        measure a model's masked-token accuracy and infilling on held-out code
  (sculpt COMMAND --help lists each command's flags)

Flags:
  --help      show this help
  --version   print the version
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "sculpt " << SCULPT_VERSION << "\n";
    return 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "serve") return sculpt::RunServeCommand(args);
  if (command == "generate") return sculpt::RunGenerateCommand(args);
  if (command == "tokenize") return sculpt::RunTokenizeCommand(args);
  if (command == "detokenize") return sculpt::RunDetokenizeCommand(args);
  if (command == "eval") return sculpt::RunEvalCommand(args);
  std::cerr << "sculpt: unknown command '" << command << "' (see sculpt --help)\n";
  return 2;
}
