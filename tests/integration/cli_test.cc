// The real `sculpt` binary as a user runs it: exit codes, messages and --json output.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/test_data.h"

namespace sculpt {
namespace {

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

Outcome RunSculpt(const std::string& arguments) {
  const std::string command = std::string(SCULPT_BINARY_DIR) + "/sculpt " + arguments + " 2>&1";
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

TEST(CliTest, HelpDocumentsEveryFlag) {
  const Outcome top = RunSculpt("--help");
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.output.find("generate"), std::string::npos);
  const Outcome help = RunSculpt("generate --help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag :
       {"--model", "--prompt-ids", "--gen-length", "--steps", "--block-length", "--remasking",
        "--temperature", "--cfg-scale", "--seed", "--json", "--threads"}) {
    EXPECT_NE(help.output.find(flag), std::string::npos) << flag;
  }
}

TEST(CliTest, JsonGenerationMatchesTheReference) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/golden/data/generate.json");
  for (const nlohmann::json& test_case : fixture["cases"]) {
    if (test_case["name"] != "low_conf_2blocks" && test_case["name"] != "low_conf_cfg1") continue;
    std::string ids;
    for (int id : test_case["prompt_ids"]) {
      if (!ids.empty()) ids += ',';
      ids += std::to_string(id);
    }
    const std::string arguments =
        "generate --json --threads 1 --model " + testing::TestModelDir(test_case["model"]) +
        " --prompt-ids " + ids + " --gen-length " +
        std::to_string(test_case["gen_length"].get<int>()) + " --steps " +
        std::to_string(test_case["steps"].get<int>()) + " --block-length " +
        std::to_string(test_case["block_length"].get<int>()) + " --remasking " +
        test_case["remasking"].get<std::string>() + " --cfg-scale " +
        std::to_string(test_case["cfg_scale"].get<double>());
    const Outcome outcome = RunSculpt(arguments);
    ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
    const nlohmann::json result = nlohmann::json::parse(outcome.output);
    EXPECT_EQ(result["token_ids"], test_case["token_ids"]) << test_case["name"];
    const int steps = test_case["steps"];
    EXPECT_EQ(result["steps"], steps);
    EXPECT_EQ(result["forward_passes"],
              test_case["cfg_scale"].get<double>() > 0 ? 2 * steps : steps);
  }
}

TEST(CliTest, BadInputGivesAClearErrorAndExitCode) {
  const std::string model = " --model " + testing::TestModelDir("tiny-llada");
  struct Case {
    std::string arguments;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"frobnicate", 2, "unknown command 'frobnicate'"},
      {"generate --prompt-ids 1,2", 2, "--model DIR is required"},
      {"generate --nonsense" + model, 2, "unknown flag --nonsense"},
      {"generate --gen-length 12 --block-length 5" + model, 2,
       "block_length (5) must divide gen_length (12)"},
      {"generate --gen-length 12 --block-length 4 --steps 7" + model, 2,
       "steps (7) must be a multiple"},
      {"generate --remasking sometimes" + model, 2, "unknown policy 'sometimes'"},
      {"generate --temperature -1" + model, 2, "temperature must be"},
      {"generate --prompt-ids 1,abc" + model, 2, "'abc' is not one"},
      {"generate --prompt-ids 5000" + model, 2, "outside the vocabulary"},
      {"generate --gen-length 600" + model, 2, "max_sequence_length"},
      {"generate --model /nonexistent/model", 1, "/nonexistent/model/config.json"},
  };
  for (const Case& c : cases) {
    const Outcome outcome = RunSculpt(c.arguments);
    EXPECT_EQ(outcome.exit_code, c.exit_code) << c.arguments << "\n" << outcome.output;
    EXPECT_NE(outcome.output.find(c.message), std::string::npos) << c.arguments << "\n"
                                                                 << outcome.output;
  }
}

TEST(CliTest, CorruptCheckpointIsAClearErrorNotACrash) {
  // A real model directory whose safetensors file lost its second half.
  const std::string dir = ::testing::TempDir() + "/sculpt_cli_truncated_model";
  std::filesystem::create_directories(dir);
  const std::string source = testing::TestModelDir("tiny-llada");
  std::filesystem::copy_file(source + "/config.json", dir + "/config.json",
                             std::filesystem::copy_options::overwrite_existing);
  auto bytes = ReadFileToString(source + "/model.safetensors");
  ASSERT_TRUE(bytes.ok());
  std::ofstream(dir + "/model.safetensors", std::ios::binary)
      .write(bytes->data(), static_cast<std::streamsize>(bytes->size() / 2));

  const Outcome outcome = RunSculpt("generate --prompt-ids 1,2 --gen-length 4 --model " + dir);
  EXPECT_EQ(outcome.exit_code, 1) << outcome.output;
  EXPECT_NE(outcome.output.find("model.safetensors"), std::string::npos) << outcome.output;
  EXPECT_NE(outcome.output.find("data_offsets"), std::string::npos) << outcome.output;
}

TEST(CliTest, NoArgumentsPrintsUsage) {
  const Outcome outcome = RunSculpt("");
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_NE(outcome.output.find("Usage: sculpt COMMAND"), std::string::npos);
}

}  // namespace
}  // namespace sculpt
