// A C++ gRPC client against the real `sculpt serve` process: the streamed drafts and the final
// result of Generate and Complete equal the engine run in this process on the same model.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <regex>
#include <string>
#include <thread>

#include "model/denoiser.h"
#include "sculpt/v1/text_diffusion.grpc.pb.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

// `sculpt serve` on a free port; the port is read from its log.
class ServerProcess {
 public:
  explicit ServerProcess(const std::string& model_dir) {
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(pipe_fds[1], STDERR_FILENO);
      close(pipe_fds[0]);
      const std::string binary = std::string(SCULPT_BINARY_DIR) + "/sculpt";
      execl(binary.c_str(), binary.c_str(), "serve", "--model", model_dir.c_str(), "--grpc-port",
            "0", "--threads", "1", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(pipe_fds[1]);
    log_ = fdopen(pipe_fds[0], "r");
    const std::regex serving(R"(over gRPC on [^ ]+:(\d+))");
    char line[4096];
    while (log_ != nullptr && std::fgets(line, sizeof line, log_) != nullptr) {
      std::cmatch match;
      if (std::regex_search(line, match, serving)) {
        port_ = std::stoi(match[1].str());
        break;
      }
    }
    // Keep draining the log so the server never blocks on a full pipe.
    drain_ = std::thread([this] {
      char rest[4096];
      while (log_ != nullptr && std::fgets(rest, sizeof rest, log_) != nullptr) {
      }
    });
  }

  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    if (drain_.joinable()) drain_.join();
    if (log_ != nullptr) std::fclose(log_);
  }

  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  FILE* log_ = nullptr;
  std::thread drain_;
};

TEST(GrpcClientTest, GenerateAndCompleteEqualTheEngine) {
  const std::string model_dir = testing::TestModelDir("tiny-llada");
  ServerProcess server(model_dir);
  ASSERT_GT(server.port(), 0) << "sculpt serve did not start";
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server.port()),
                                     grpc::InsecureChannelCredentials());
  ASSERT_TRUE(
      channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30)));
  auto stub = v1::TextDiffusion::NewStub(channel);

  const std::vector<int32_t> prompt = {5, 17, 300, 42, 7};
  v1::GenerateRequest request;
  request.mutable_prompt_ids()->Add(prompt.begin(), prompt.end());
  request.set_gen_length(16);
  request.set_steps(8);
  request.set_block_length(8);
  request.set_seed(11);
  request.set_temperature(0.5);

  // The engine, in this process, on the same weights.
  testing::LoadedModel loaded = testing::LoadTestModel("tiny-llada");
  GenerationParams params;
  params.gen_length = 16;
  params.steps = 8;
  params.block_length = 8;
  params.seed = 11;
  params.temperature = 0.5;
  std::vector<StepEvent> engine_steps;
  auto expected = Generate(
      *loaded.model, prompt, params,
      [&](const StepEvent& event, std::span<const int32_t>) { engine_steps.push_back(event); });
  ASSERT_TRUE(expected.ok()) << expected.status();

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse response;
  std::vector<v1::StepDraft> drafts;
  v1::GenerateResult final_result;
  int blocks = 0;
  while (reader->Read(&response)) {
    switch (response.event_case()) {
      case v1::GenerateResponse::kStep:
        drafts.push_back(response.step());
        break;
      case v1::GenerateResponse::kBlock:
        ++blocks;
        break;
      case v1::GenerateResponse::kFinal:
        final_result = response.final();
        break;
      default:
        break;
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(blocks, 2);
  // A draft is one step, or several merged when this client read slower than the engine
  // stepped: it then carries every commit since the previous draft.
  ASSERT_FALSE(drafts.empty());
  ASSERT_LE(drafts.size(), engine_steps.size());
  EXPECT_EQ(drafts.back().step(), engine_steps.size());
  size_t next_step = 0;
  for (const v1::StepDraft& draft : drafts) {
    std::vector<std::pair<int32_t, int32_t>> engine_commits;
    while (next_step < draft.step()) {
      const auto& step_commits = engine_steps[next_step++].committed;
      engine_commits.insert(engine_commits.end(), step_commits.begin(), step_commits.end());
    }
    std::sort(engine_commits.begin(), engine_commits.end());
    std::vector<std::pair<int32_t, int32_t>> committed;
    for (const v1::Span& span : draft.changed()) {
      for (int k = 0; k < span.token_ids_size(); ++k) {
        committed.emplace_back(
            static_cast<int32_t>(span.position() + k) + static_cast<int32_t>(prompt.size()),
            span.token_ids(k));
      }
    }
    EXPECT_EQ(committed, engine_commits) << "draft at step " << draft.step();
    EXPECT_EQ(draft.masks_left(), static_cast<uint32_t>(engine_steps[draft.step() - 1].masks_left));
  }
  EXPECT_EQ(std::vector<int32_t>(final_result.token_ids().begin(), final_result.token_ids().end()),
            expected->token_ids);
  EXPECT_EQ(final_result.finish_reason(), "length");
  EXPECT_EQ(final_result.usage().prompt_tokens(), prompt.size());

  grpc::ClientContext unary_context;
  v1::GenerateResult complete;
  ASSERT_TRUE(stub->Complete(&unary_context, request, &complete).ok());
  EXPECT_EQ(std::vector<int32_t>(complete.token_ids().begin(), complete.token_ids().end()),
            expected->token_ids);

  // A text prompt to a model without a tokenizer names what to send instead.
  grpc::ClientContext bad_context;
  v1::GenerateRequest bad;
  bad.set_prompt("hello");
  const grpc::Status status = stub->Complete(&bad_context, bad, &complete);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("prompt_ids"), std::string::npos) << status.error_message();
}

}  // namespace
}  // namespace sculpt
