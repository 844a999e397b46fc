// `sculpt generate` and the server refuse and accept exactly the same generations: each case is
// given to the real CLI process (exit 0, or 2 for a refused input) and to the server's request
// path (BuildRequest, as the gRPC and HTTP handlers call it), and both must agree.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/request_builder.h"
#include "tests/support/run_sculpt.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

using testing::Outcome;
using testing::RunSculpt;

struct Case {
  std::string cli;  // flags after `sculpt generate --model DIR`
  std::function<void(v1::GenerateRequest&)> server;
};

void ExpectSameVerdicts(const std::string& model_dir, const std::vector<Case>& cases) {
  auto served = LoadServedModel(model_dir);
  ASSERT_TRUE(served.ok()) << served.status();
  int accepted = 0;
  for (const Case& c : cases) {
    v1::GenerateRequest message;
    c.server(message);
    const auto built = BuildRequest(message, **served, RequestLimits{});
    const Outcome cli =
        RunSculpt(absl::StrCat("generate --threads 1 --model ", model_dir, " ", c.cli));
    SCOPED_TRACE(
        absl::StrCat(c.cli, "\nserver: ", built.status().ToString(), "\ncli: ", cli.output));
    if (built.ok()) {
      ++accepted;
      EXPECT_EQ(cli.exit_code, 0);
    } else {
      EXPECT_EQ(built.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(cli.exit_code, 2);
    }
  }
  // Both verdicts occur, so agreement is not one side refusing everything.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, static_cast<int>(cases.size()));
}

TEST(RequestParityTest, TheCliAndTheServerAgreeOnEveryInput) {
  const auto ids = [](std::vector<int32_t> values) {
    return [values](v1::GenerateRequest& m) {
      for (int32_t id : values) m.add_prompt_ids(id);
    };
  };
  const auto with = [](auto base, auto edit) {
    return [base, edit](v1::GenerateRequest& m) {
      base(m);
      edit(m);
    };
  };
  const auto text = [](const std::string& prompt) {
    return [prompt](v1::GenerateRequest& m) { m.set_prompt(prompt); };
  };
  const auto small = [](v1::GenerateRequest& m) {
    m.set_gen_length(8);
    m.set_steps(4);
  };
  const std::string short_run = "--gen-length 8 --steps 4 ";
  const std::vector<Case> cases = {
      {short_run + "--prompt-ids 1,2,3", with(ids({1, 2, 3}), small)},
      {short_run + "--prompt 'def f(x):'", with(text("def f(x):"), small)},
      {short_run + "--prompt-ids 1,3005", with(ids({1, 3005}), small)},
      {short_run + "--prompt-ids 1,3006", with(ids({1, 3006}), small)},
      {short_run + "--prompt-ids 1,-1", with(ids({1, -1}), small)},
      {short_run + "--prompt-ids 3002,5", with(ids({3002, 5}), small)},  // a mask to fill
      {"--gen-length 0 --prompt-ids 1", with(ids({1}), [](auto& m) { m.set_gen_length(0); })},
      {"--gen-length 513 --prompt-ids 1", with(ids({1}), [](auto& m) { m.set_gen_length(513); })},
      {"--gen-length 511 --prompt-ids 1,2",
       with(ids({1, 2}), [](auto& m) { m.set_gen_length(511); })},
      {"--gen-length 8 --steps 0 --prompt-ids 1",
       with(ids({1}), [](auto& m) { m.set_gen_length(8), m.set_steps(0); })},
      {"--gen-length 8 --steps 3 --block-length 4 --prompt-ids 1",
       with(ids({1}), [](auto& m) { m.set_gen_length(8), m.set_steps(3), m.set_block_length(4); })},
      {"--gen-length 8 --block-length 3 --prompt-ids 1",
       with(ids({1}), [](auto& m) { m.set_gen_length(8), m.set_block_length(3); })},
      {short_run + "--remasking best --prompt-ids 1",
       with(with(ids({1}), small), [](auto& m) { m.set_remasking("best"); })},
      {short_run + "--remasking entropy --prompt-ids 1",
       with(with(ids({1}), small), [](auto& m) { m.set_remasking("entropy"); })},
      {short_run + "--temperature -1 --prompt-ids 1",
       with(with(ids({1}), small), [](auto& m) { m.set_temperature(-1); })},
      {short_run + "--top-p 0 --prompt-ids 1",
       with(with(ids({1}), small), [](auto& m) { m.set_top_p(0); })},
      {short_run + "--top-k -2 --prompt-ids 1",
       with(with(ids({1}), small), [](auto& m) { m.set_top_k(-2); })},
      {short_run + "--cfg-scale -1 --prompt-ids 1",
       with(with(ids({1}), small), [](auto& m) { m.set_cfg_scale(-1); })},
      {short_run + "--factor 0 --prompt-ids 1",
       with(with(ids({1}), small), [](auto& m) { m.set_factor(0); })},
      {short_run + "--confidence-threshold 1.5 --remasking threshold --prompt-ids 1",
       with(with(ids({1}), small),
            [](auto& m) { m.set_confidence_threshold(1.5), m.set_remasking("threshold"); })},
      {short_run + "--stop '' --prompt-ids 1",
       with(with(ids({1}), small), [](auto& m) { m.add_stop(); })},
      {short_run + "--stop ')' --prompt-ids 1",
       with(with(ids({1}), small), [](auto& m) { m.add_stop()->assign(1, ')'); })},
      {short_run + "--early-stop --infill 'x = <|mask:3|>'",
       [](auto& m) { m.set_infill("x = <|mask:3|>"), m.set_early_stop(true); }},
      {"--infill 'x = <|mask:3|> + 1'", [](auto& m) { m.set_infill("x = <|mask:3|> + 1"); }},
      {"--infill 'no masks here'", [](auto& m) { m.set_infill("no masks here"); }},
      {"--infill 'x<|mask:600|>'", [](auto& m) { m.set_infill("x<|mask:600|>"); }},
  };
  ExpectSameVerdicts(testing::TestModelDir("tiny-llada-text"), cases);
}

// A checkpoint whose embedding is padded past the tokenizer's vocabulary (as LLaDA's and Qwen's
// are): ids in the padding are no tokens, on both paths.
TEST(RequestParityTest, IdsInAPaddedEmbeddingAreRefusedByBoth) {
  const std::string dir = ::testing::TempDir() + "/sculpt_padded_vocabulary";
  std::filesystem::create_directories(dir);
  const std::string source = testing::TestModelDir("tiny-llada");
  nlohmann::json config = nlohmann::json::parse(std::ifstream(source + "/config.json"));
  config["vocab_size"] = 990;  // embedding_size stays 997; mask 996 and EOS 995 in the padding
  std::ofstream(dir + "/config.json") << config.dump();
  std::filesystem::copy_file(source + "/model.safetensors", dir + "/model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  const auto ids = [](std::vector<int32_t> values) {
    return [values](v1::GenerateRequest& m) {
      for (int32_t id : values) m.add_prompt_ids(id);
      m.set_gen_length(4);
      m.set_steps(2);
    };
  };
  ExpectSameVerdicts(dir, {{"--gen-length 4 --steps 2 --prompt-ids 1,989", ids({1, 989})},
                           {"--gen-length 4 --steps 2 --prompt-ids 1,993", ids({1, 993})},
                           {"--gen-length 4 --steps 2 --prompt-ids 996,2", ids({996, 2})}});
}

}  // namespace
}  // namespace sculpt
