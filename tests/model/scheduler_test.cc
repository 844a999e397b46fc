// The scheduler with a real model: results equal Generate() run alone, priorities decide who
// runs next, cancellation frees the slot, a full queue refuses, shutdown cancels.
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <thread>

#include "model/denoiser.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

using std::chrono::steady_clock;

GenerationParams Params(int gen_length, uint64_t seed) {
  GenerationParams params;
  params.gen_length = gen_length;
  params.steps = gen_length;
  params.block_length = gen_length;
  params.seed = seed;
  params.temperature = 0.7;
  return params;
}

Request MakeRequest(const ModelConfig& config, const std::vector<int32_t>& prompt,
                    const GenerationParams& params, int priority = 0) {
  auto generation = Generation::Create(prompt, params, config);
  EXPECT_TRUE(generation.ok()) << generation.status();
  return Request{.request_id = "r", .generation = std::move(*generation), .priority = priority};
}

// Pops events until the final one.
FinalEvent AwaitFinal(RequestStream& stream, std::vector<StreamEvent>* seen = nullptr) {
  const auto give_up = steady_clock::now() + std::chrono::seconds(120);
  while (steady_clock::now() < give_up) {
    if (auto event = stream.Pop()) {
      if (auto* final_event = std::get_if<FinalEvent>(&*event)) return *final_event;
      if (seen) seen->push_back(*event);
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  ADD_FAILURE() << "no final event";
  return {};
}

TEST(SchedulerTest, BatchedResultsEqualAloneRuns) {
  testing::LoadedModel loaded = testing::LoadTestModel("tiny-llada");
  const ModelConfig& config = loaded.model->config();
  Scheduler scheduler(*loaded.model, {});
  std::vector<std::unique_ptr<RequestHandle>> handles;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<GenerationParams> params;
  for (int i = 0; i < 8; ++i) {
    prompts.push_back({1 + i, 2 * i + 3, 40});
    params.push_back(Params(8 + 8 * (i % 3), 100 + i));
    auto handle = scheduler.Submit(MakeRequest(config, prompts.back(), params.back()));
    ASSERT_TRUE(handle.ok()) << handle.status();
    handles.push_back(std::move(*handle));
  }
  std::vector<FinalEvent> finals;
  for (int i = 0; i < 8; ++i) finals.push_back(AwaitFinal(*handles[i]->stream()));
  // The model is the engine thread's while it runs: alone runs only once it is idle.
  ASSERT_TRUE(scheduler.WaitIdle(steady_clock::now() + std::chrono::seconds(60)));
  for (int i = 0; i < 8; ++i) {
    const FinalEvent& final_event = finals[i];
    auto alone = Generate(*loaded.model, prompts[i], params[i]);
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ(final_event.result.token_ids, alone->token_ids) << "request " << i;
    EXPECT_EQ(final_event.result.finish_reason, FinishReason::kLength);
    EXPECT_EQ(final_event.result.steps, params[i].steps);
  }
  // They shared forwards: fewer engine steps than their steps summed.
  EXPECT_LT(scheduler.stats().steps_total, 8u * 8u);
}

TEST(SchedulerTest, HigherPriorityRunsFirst) {
  testing::LoadedModel loaded = testing::LoadTestModel("tiny-llada");
  const ModelConfig& config = loaded.model->config();
  SchedulerOptions options;
  options.budgets.max_num_seqs = 1;
  Scheduler scheduler(*loaded.model, options);
  auto first = scheduler.Submit(MakeRequest(config, {1, 2}, Params(64, 1)));
  ASSERT_TRUE(first.ok());
  auto low = scheduler.Submit(MakeRequest(config, {1, 2}, Params(8, 2), /*priority=*/0));
  auto high = scheduler.Submit(MakeRequest(config, {1, 2}, Params(8, 3), /*priority=*/5));
  ASSERT_TRUE(low.ok() && high.ok());
  const FinalEvent low_final = AwaitFinal(*(*low)->stream());
  const FinalEvent high_final = AwaitFinal(*(*high)->stream());
  // The urgent request waited less although it arrived later.
  EXPECT_LT(high_final.queue_ms, low_final.queue_ms);
  AwaitFinal(*(*first)->stream());
}

TEST(SchedulerTest, CancelFreesTheSlotAndQueueLimitsHold) {
  testing::LoadedModel loaded = testing::LoadTestModel("tiny-llada");
  const ModelConfig& config = loaded.model->config();
  SchedulerOptions options;
  options.budgets.max_num_seqs = 1;
  options.max_queued_requests = 1;
  Scheduler scheduler(*loaded.model, options);
  auto running = scheduler.Submit(MakeRequest(config, {1}, Params(256, 1)));
  ASSERT_TRUE(running.ok());
  while (scheduler.stats().running == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto queued = scheduler.Submit(MakeRequest(config, {1}, Params(8, 2)));
  ASSERT_TRUE(queued.ok());
  auto refused = scheduler.Submit(MakeRequest(config, {1}, Params(8, 3)));
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();

  (*running)->Cancel();
  const FinalEvent cancelled = AwaitFinal(*(*running)->stream());
  EXPECT_EQ(cancelled.result.finish_reason, FinishReason::kCancelled);
  EXPECT_LT(cancelled.result.steps, 256);
  // The queued request gets the slot and finishes normally.
  EXPECT_EQ(AwaitFinal(*(*queued)->stream()).result.finish_reason, FinishReason::kLength);
  EXPECT_TRUE(scheduler.WaitIdle(steady_clock::now() + std::chrono::seconds(10)));
  EXPECT_EQ(scheduler.stats().running, 0);
  EXPECT_EQ(scheduler.stats().free_slots, 1);
}

TEST(SchedulerTest, DeadlinesAndDraining) {
  testing::LoadedModel loaded = testing::LoadTestModel("tiny-llada");
  const ModelConfig& config = loaded.model->config();
  Scheduler scheduler(*loaded.model, {});
  Request late = MakeRequest(config, {1}, Params(8, 1));
  late.deadline = steady_clock::now() - std::chrono::milliseconds(1);
  auto refused = scheduler.Submit(std::move(late));
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(refused.status())) << refused.status();

  Request soon = MakeRequest(config, {1}, Params(256, 1));
  soon.deadline = steady_clock::now() + std::chrono::milliseconds(30);
  auto running = scheduler.Submit(std::move(soon));
  ASSERT_TRUE(running.ok());
  const FinalEvent expired = AwaitFinal(*(*running)->stream());
  EXPECT_EQ(expired.result.finish_reason, FinishReason::kDeadline);
  EXPECT_LT(expired.result.steps, 256);

  scheduler.StartDraining();
  auto after = scheduler.Submit(MakeRequest(config, {1}, Params(8, 1)));
  ASSERT_FALSE(after.ok());
  EXPECT_TRUE(absl::IsUnavailable(after.status()));
}

TEST(SchedulerTest, DestructionCancelsWhatIsLeft) {
  testing::LoadedModel loaded = testing::LoadTestModel("tiny-llada");
  const ModelConfig& config = loaded.model->config();
  std::shared_ptr<RequestStream> stream;
  std::unique_ptr<RequestHandle> handle;
  {
    Scheduler scheduler(*loaded.model, {});
    auto submitted = scheduler.Submit(MakeRequest(config, {1}, Params(256, 1)));
    ASSERT_TRUE(submitted.ok());
    handle = std::move(*submitted);
    stream = handle->stream();
    handle.reset();  // the handle must not outlive its scheduler
  }
  EXPECT_EQ(AwaitFinal(*stream).result.finish_reason, FinishReason::kCancelled);
}

}  // namespace
}  // namespace sculpt
