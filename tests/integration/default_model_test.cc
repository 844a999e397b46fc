// The shipped default model through the real binary: a completion and an infill run and keep
// what they must keep. Quality is measured by `sculpt eval`, not asserted here.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "tests/support/test_data.h"

namespace sculpt {
namespace {

std::string RunSculpt(const std::string& arguments, int* exit_code) {
  const std::string command = std::string(SCULPT_BINARY_DIR) + "/sculpt " + arguments + " 2>&1";
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return output;
  char buffer[4096];
  size_t read;
  while ((read = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, read);
  const int status = pclose(pipe);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

const std::string kModel = " --model " + testing::SourcePath("models/sculpt-code-mini");

TEST(DefaultModelTest, CompletesAPrompt) {
  int exit_code = -1;
  const std::string output = RunSculpt(
      "generate --json --gen-length 32 --steps 32 --block-length 32 --prompt 'def fibonacci(n):'" +
          kModel,
      &exit_code);
  ASSERT_EQ(exit_code, 0) << output;
  const nlohmann::json result = nlohmann::json::parse(output);
  EXPECT_EQ(result["token_ids"].size(), 32u);
  EXPECT_EQ(result["steps"], 32);
  EXPECT_TRUE(result.contains("text"));
}

// The model was trained on windows that start with BOS (tools/train/README.md), so its tokenizer
// must put BOS before every prompt, and generate must send the prompt as the tokenizer encodes it.
TEST(DefaultModelTest, PromptsStartWithBosAsTheModelWasTrained) {
  int exit_code = -1;
  const std::string tokenized =
      RunSculpt("tokenize --json --text 'def fibonacci(n):'" + kModel, &exit_code);
  ASSERT_EQ(exit_code, 0) << tokenized;
  const nlohmann::json tokens = nlohmann::json::parse(tokenized)["tokens"];
  ASSERT_GE(tokens.size(), 2u);
  EXPECT_EQ(tokens[0], "<|startoftext|>");
  EXPECT_EQ(tokens[1], "def");

  const std::string plain = RunSculpt(
      "tokenize --json --no-special-tokens --text 'def fibonacci(n):'" + kModel, &exit_code);
  ASSERT_EQ(exit_code, 0) << plain;
  EXPECT_EQ(nlohmann::json::parse(plain)["tokens"].size(), tokens.size() - 1);

  const std::string output = RunSculpt(
      "generate --json --gen-length 8 --steps 8 --prompt 'def fibonacci(n):'" + kModel, &exit_code);
  ASSERT_EQ(exit_code, 0) << output;
  EXPECT_EQ(nlohmann::json::parse(output)["prompt_tokens"], tokens.size());
}

TEST(DefaultModelTest, InfillKeepsTheGivenCode) {
  int exit_code = -1;
  const std::string output = RunSculpt(
      "generate --json --remasking threshold --confidence-threshold 0.9 --infill "
      "'def add(a, b):\n<|mask:6|>\n    return total\n'" +
          kModel,
      &exit_code);
  ASSERT_EQ(exit_code, 0) << output;
  const nlohmann::json result = nlohmann::json::parse(output);
  const std::string text = result["text"];
  EXPECT_EQ(text.rfind("def add(a, b):", 0), 0u) << text;
  EXPECT_NE(text.find("\n    return total\n"), std::string::npos) << text;
  ASSERT_EQ(result["spans"].size(), 1u);
  // The newline before the span is the model's to write with the next line's indentation, as one
  // more token: 6 + 1.
  EXPECT_EQ(result["spans"][0]["token_ids"].size(), 7u);
}

}  // namespace
}  // namespace sculpt
