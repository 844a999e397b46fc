// The real `sculpt` binary as a user runs it: exit codes, messages and --json output.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/support/run_sculpt.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

using testing::Outcome;
using testing::RunSculpt;

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

TEST(CliTest, TokenizeAndDetokenizeRoundTrip) {
  const std::string model = testing::TestModelDir("tiny-llada-text");
  const Outcome tokenized =
      RunSculpt("tokenize --json --model " + model + " --text 'Grüße, 你好 <|endoftext|>!'");
  ASSERT_EQ(tokenized.exit_code, 0) << tokenized.output;
  const nlohmann::json result = nlohmann::json::parse(tokenized.output);
  const std::vector<int32_t> ids = result["ids"];
  ASSERT_EQ(ids.size(), result["tokens"].size());
  EXPECT_EQ(ids.front(), 3000);  // the post-processor's BOS
  EXPECT_EQ(result["tokens"][ids.size() - 2], "<|endoftext|>");
  const std::string id_list = absl::StrJoin(ids.begin() + 1, ids.end(), ",");
  const Outcome detokenized = RunSculpt("detokenize --json --model " + model + " --ids " + id_list);
  ASSERT_EQ(detokenized.exit_code, 0) << detokenized.output;
  EXPECT_EQ(nlohmann::json::parse(detokenized.output)["text"], "Grüße, 你好 <|endoftext|>!");
  const Outcome skipped =
      RunSculpt("detokenize --skip-special-tokens --model " + model + " --ids " + id_list);
  EXPECT_EQ(skipped.output, "Grüße, 你好 !\n");
}

TEST(CliTest, TextGenerationDecodesItsOwnTokens) {
  const std::string model = testing::TestModelDir("tiny-llada-text");
  const Outcome outcome =
      RunSculpt("generate --json --threads 1 --gen-length 16 --steps 8 --model " + model +
                " --prompt 'def add(a, b):'");
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  const nlohmann::json result = nlohmann::json::parse(outcome.output);
  const Outcome prompt = RunSculpt("tokenize --model " + model + " --text 'def add(a, b):'");
  EXPECT_EQ(result["prompt_tokens"].get<size_t>(),
            std::count(prompt.output.begin(), prompt.output.end(), ',') + 1u);
  const std::string id_list = absl::StrJoin(result["token_ids"].get<std::vector<int>>(), ",");
  const Outcome text =
      RunSculpt("detokenize --json --skip-special-tokens --model " + model + " --ids " + id_list);
  EXPECT_EQ(result["text"], nlohmann::json::parse(text.output)["text"]);

  const Outcome chat = RunSculpt("generate --json --chat --gen-length 8 --steps 8 --model " +
                                 model + " --prompt 'hi'");
  ASSERT_EQ(chat.exit_code, 0) << chat.output;
  // <|startoftext|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|> + assistant header
  EXPECT_GT(nlohmann::json::parse(chat.output)["prompt_tokens"].get<int>(), 8);
}

TEST(CliTest, TokenizerErrorsAreClear) {
  const std::string text_model = " --model " + testing::TestModelDir("tiny-llada-text");
  const std::string id_model = " --model " + testing::TestModelDir("tiny-llada");
  struct Case {
    std::string arguments;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"tokenize --text \"$(printf 'caf\\303(')\"" + text_model, 2, "text is not valid UTF-8"},
      {"detokenize --ids 1,99999" + text_model, 2, "token id 99999 is outside the vocabulary"},
      {"detokenize --ids 1,x" + text_model, 2, "'x' is not one"},
      {"tokenize" + text_model, 2, "exactly one of --text TEXT and --input-jsonl FILE"},
      {"tokenize --text hi" + id_model, 1, "tokenizer.json"},
      // Text for a model without a tokenizer is the caller's mistake, as the server says too
      // (INVALID_ARGUMENT there, exit 2 here).
      {"generate --prompt hi" + id_model, 2, "tokenizer.json"},
      {"generate --prompt hi --prompt-ids 1" + text_model, 2, "not both"},
      {"generate --chat" + text_model, 2, "--chat needs --prompt"},
      {"tokenize --input-jsonl /nonexistent.jsonl" + text_model, 1, "/nonexistent.jsonl"},
  };
  for (const Case& c : cases) {
    const Outcome outcome = RunSculpt(c.arguments);
    EXPECT_EQ(outcome.exit_code, c.exit_code) << c.arguments << "\n" << outcome.output;
    EXPECT_NE(outcome.output.find(c.message), std::string::npos) << c.arguments << "\n"
                                                                 << outcome.output;
  }
}

TEST(CliTest, EventsInfillStopAndLiveView) {
  const std::string model = " --model " + testing::TestModelDir("tiny-llada-text");
  // One JSON line per step, then the result; the commits add up to the answer.
  const Outcome events =
      RunSculpt("generate --json --events --gen-length 12 --steps 6 --prompt hi" + model);
  ASSERT_EQ(events.exit_code, 0) << events.output;
  std::vector<nlohmann::json> lines;
  for (absl::string_view line : absl::StrSplit(events.output, '\n', absl::SkipEmpty())) {
    lines.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(lines.size(), 7u);
  size_t committed = 0;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["event"], "step");
    EXPECT_EQ(lines[i]["step"], i);
    committed += lines[i]["committed"].size();
  }
  EXPECT_EQ(committed, 12u);
  EXPECT_EQ(lines.back()["steps"], 6);

  const Outcome infill = RunSculpt("generate --json --infill 'x = <|mask:3|> + 1'" + model);
  ASSERT_EQ(infill.exit_code, 0) << infill.output;
  const nlohmann::json result = nlohmann::json::parse(infill.output);
  ASSERT_EQ(result["spans"].size(), 1u);
  EXPECT_EQ(result["spans"][0]["token_ids"].size(), 3u);
  const std::string text = result["text"];
  // The space before the span joins its first token (docs/generation.md), so "x =" is kept.
  EXPECT_EQ(text.rfind("x =", 0), 0u) << text;
  EXPECT_EQ(text.substr(text.size() - 4), " + 1") << text;

  // A stop string that the random model produces at once: the answer ends before it.
  const Outcome free_run =
      RunSculpt("generate --json --gen-length 16 --steps 16 --prompt hi" + model);
  const std::string free_text = nlohmann::json::parse(free_run.output)["text"];
  ASSERT_GE(free_text.size(), 4u);
  // Whole characters: skip the first, stop at the second.
  const auto next_char = [&](size_t at) {
    size_t end = at + 1;
    while (end < free_text.size() && (static_cast<uint8_t>(free_text[end]) & 0xC0) == 0x80) ++end;
    return end;
  };
  const size_t second = next_char(0);
  const std::string stop = free_text.substr(second, next_char(second) - second);
  const Outcome stopped = RunSculpt(
      "generate --json --gen-length 16 --steps 16 --prompt hi --stop '" + stop + "'" + model);
  ASSERT_EQ(stopped.exit_code, 0) << stopped.output;
  const nlohmann::json stopped_result = nlohmann::json::parse(stopped.output);
  EXPECT_EQ(stopped_result["finish_reason"], "stop");
  EXPECT_EQ(stopped_result["text"].get<std::string>().find(stop), std::string::npos);

  const Outcome live = RunSculpt("generate --live --gen-length 8 --steps 4 --prompt hi" + model);
  ASSERT_EQ(live.exit_code, 0) << live.output;
  EXPECT_NE(live.output.find("step 4/4"), std::string::npos) << live.output;
  EXPECT_NE(live.output.find("\u2591"), std::string::npos);         // masked positions drawn
  EXPECT_NE(live.output.find("\x1b[1;30;42m"), std::string::npos);  // new commits highlighted
}

TEST(CliTest, EvalPrintsOnlyItsTablesOnStdout) {
  const std::filesystem::path corpus =
      std::filesystem::path(::testing::TempDir()) / "sculpt_eval_corpus";
  std::filesystem::create_directories(corpus);
  std::ofstream(corpus / "train.py") << "def add(a, b):\n    return a + b\n";
  std::ofstream(corpus / "heldout.py")
      << "def mean(xs):\n    total = sum(xs)\n    count = len(xs)\n    return total / count\n";
  std::ofstream(corpus / "split.json") << R"({"train": ["train.py"], "heldout": ["heldout.py"]})";
  // Info level, so the device probe logs: the log must go to stderr, not into the tables.
  const Outcome eval =
      RunSculpt("eval --log-level info --infill-samples 1 --model " +
                    testing::SourcePath("tests/models/tiny-llada-text") + " --split " +
                    (corpus / "split.json").string() + " --corpus-root " + corpus.string(),
                "/dev/null");
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_EQ(eval.output.rfind("Masked-token accuracy", 0), 0u) << eval.output;
  // The KV cache table: every cache at both decodings.
  for (const char* row : {"| none | threshold 0.9 |", "| prefix | threshold 0.9 |",
                          "| dual | low_confidence, 1 token/step |"}) {
    EXPECT_NE(eval.output.find(row), std::string::npos) << row << "\n" << eval.output;
  }
  EXPECT_EQ(eval.output.find("[info]"), std::string::npos) << eval.output;
  EXPECT_EQ(eval.output.find(" info "), std::string::npos) << eval.output;
}

TEST(CliTest, GenerateDefaultsToTheShippedModel) {
  const Outcome outcome = RunSculpt("generate --json --prompt 'x = ' --gen-length 4 --steps 4");
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_NE(
      nlohmann::json::parse(outcome.output)["model"].get<std::string>().find("sculpt-code-mini"),
      std::string::npos);
}

TEST(CliTest, NoArgumentsPrintsUsage) {
  const Outcome outcome = RunSculpt("");
  EXPECT_EQ(outcome.exit_code, 2);
  EXPECT_NE(outcome.output.find("Usage: sculpt COMMAND"), std::string::npos);
}

}  // namespace
}  // namespace sculpt
