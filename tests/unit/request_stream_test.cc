// RequestStream: filtering by stream mode, coalescing behind a slow reader without losing a
// commit, and the events that are never dropped.
#include "scheduler/request_stream.h"

#include <gtest/gtest.h>

#include <thread>

namespace sculpt {
namespace {

DraftEvent Draft(uint32_t step, std::map<int32_t, int32_t> committed, int masks_left) {
  return {.step = step, .block = 0, .masks_left = masks_left, .committed = std::move(committed)};
}

std::vector<StreamEvent> Drain(RequestStream& stream) {
  std::vector<StreamEvent> events;
  while (auto event = stream.Pop()) events.push_back(std::move(*event));
  return events;
}

TEST(RequestStreamTest, FastReaderSeesEveryDraft) {
  RequestStream stream({});
  stream.PushAccepted({.queue_position = 2});
  std::vector<StreamEvent> seen = Drain(stream);
  for (uint32_t step = 1; step <= 3; ++step) {
    stream.PushDraft(Draft(step, {{static_cast<int32_t>(step), 40 + static_cast<int32_t>(step)}},
                           3 - static_cast<int>(step)),
                     step == 3);
    for (auto& event : Drain(stream)) seen.push_back(std::move(event));
  }
  stream.PushFinal({.result = {.finish_reason = FinishReason::kLength}});
  for (auto& event : Drain(stream)) seen.push_back(std::move(event));
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(std::get<AcceptedEvent>(seen[0]).queue_position, 2);
  for (int i = 1; i <= 3; ++i) {
    const auto& draft = std::get<DraftEvent>(seen[i]);
    EXPECT_EQ(draft.step, static_cast<uint32_t>(i));
    EXPECT_EQ(draft.committed.size(), 1u);
  }
  EXPECT_TRUE(std::holds_alternative<FinalEvent>(seen[4]));
  EXPECT_TRUE(stream.done());
}

TEST(RequestStreamTest, SlowReaderGetsOneMergedDraftWithEveryCommit) {
  RequestStream stream({});
  stream.PushAccepted({});
  for (uint32_t step = 1; step <= 50; ++step) {
    stream.PushDraft(Draft(step, {{static_cast<int32_t>(step - 1), static_cast<int32_t>(step)}},
                           50 - static_cast<int>(step)),
                     step == 50);
  }
  // The outbox stays bounded however far behind the reader is.
  EXPECT_EQ(stream.pending(), 2u);
  stream.PushFinal({});
  const std::vector<StreamEvent> events = Drain(stream);
  ASSERT_EQ(events.size(), 3u);
  const auto& draft = std::get<DraftEvent>(events[1]);
  EXPECT_EQ(draft.step, 50u);
  EXPECT_EQ(draft.masks_left, 0);
  ASSERT_EQ(draft.committed.size(), 50u);
  for (int32_t position = 0; position < 50; ++position) {
    EXPECT_EQ(draft.committed.at(position), position + 1);
  }
}

TEST(RequestStreamTest, BlocksAreNeverMergedAway) {
  RequestStream stream({});
  stream.PushDraft(Draft(1, {{0, 7}}, 3), false);
  stream.PushBlock({.block = 0, .step = 1, .start = 0, .tokens = {7}});
  stream.PushDraft(Draft(2, {{1, 8}}, 2), false);
  stream.PushBlock({.block = 1, .step = 2, .start = 1, .tokens = {8}});
  stream.PushFinal({});
  const std::vector<StreamEvent> events = Drain(stream);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_TRUE(std::holds_alternative<DraftEvent>(events[0]));
  EXPECT_EQ(std::get<BlockEvent>(events[1]).block, 0u);
  EXPECT_TRUE(std::holds_alternative<DraftEvent>(events[2]));
  EXPECT_EQ(std::get<BlockEvent>(events[3]).block, 1u);
  EXPECT_TRUE(std::holds_alternative<FinalEvent>(events[4]));
}

TEST(RequestStreamTest, BlocksDoNotReleaseHeldDrafts) {
  RequestStream stream({.every_n_steps = 4});
  stream.PushDraft(Draft(1, {{0, 7}}, 3), false);
  stream.PushBlock({.block = 0, .step = 1, .start = 0, .tokens = {7}});
  const auto events = Drain(stream);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<BlockEvent>(events[0]));
  stream.PushFinal({});
  const auto rest = Drain(stream);  // the held commit arrives before the final result
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(std::get<DraftEvent>(rest[0]).committed.size(), 1u);
}

TEST(RequestStreamTest, ModesFilterDrafts) {
  RequestStream final_only({.mode = StreamMode::kFinalOnly});
  RequestStream blocks({.mode = StreamMode::kBlocks});
  for (RequestStream* stream : {&final_only, &blocks}) {
    stream->PushAccepted({});
    stream->PushDraft(Draft(1, {{0, 1}}, 0), true);
    stream->PushBlock({});
    stream->PushFinal({});
  }
  EXPECT_EQ(Drain(final_only).size(), 2u);  // accepted, final
  EXPECT_EQ(Drain(blocks).size(), 3u);      // accepted, block, final
}

TEST(RequestStreamTest, EveryNthStepCarriesTheSkippedCommits) {
  RequestStream stream({.every_n_steps = 4});
  std::vector<DraftEvent> drafts;
  for (uint32_t step = 1; step <= 10; ++step) {
    stream.PushDraft(Draft(step, {{static_cast<int32_t>(step), 1}}, 10 - static_cast<int>(step)),
                     step == 10);
    while (auto event = stream.Pop()) drafts.push_back(std::get<DraftEvent>(*event));
  }
  ASSERT_EQ(drafts.size(), 3u);  // steps 4, 8 and the last one
  EXPECT_EQ(drafts[0].step, 4u);
  EXPECT_EQ(drafts[0].committed.size(), 4u);
  EXPECT_EQ(drafts[1].step, 8u);
  EXPECT_EQ(drafts[2].step, 10u);
  EXPECT_EQ(drafts[2].committed.size(), 2u);
}

TEST(RequestStreamTest, MinIntervalHoldsDraftsBack) {
  RequestStream stream({.min_interval = std::chrono::milliseconds(10'000)});
  stream.PushDraft(Draft(1, {{0, 1}}, 2), false);  // the first draft goes out at once
  stream.PushDraft(Draft(2, {{1, 1}}, 1), false);  // held: within the interval
  EXPECT_EQ(stream.pending(), 1u);
  stream.PushDraft(Draft(3, {{2, 1}}, 0), true);  // the last step always goes out
  const auto events = Drain(stream);
  ASSERT_EQ(events.size(), 1u);  // merged with the first, which was never read
  EXPECT_EQ(std::get<DraftEvent>(events[0]).committed.size(), 3u);
}

TEST(RequestStreamTest, ListenerIsCalledPerPushAndCanBeRemoved) {
  RequestStream stream({});
  std::atomic<int> calls = 0;
  stream.SetListener([&] { ++calls; });
  stream.PushAccepted({});
  stream.PushDraft(Draft(1, {{0, 1}}, 0), true);
  EXPECT_EQ(calls.load(), 2);
  stream.SetListener(nullptr);
  stream.PushFinal({});
  EXPECT_EQ(calls.load(), 2);
  // Concurrent pushes and pops lose nothing.
  RequestStream shared({});
  std::thread producer([&] {
    for (uint32_t step = 1; step <= 2000; ++step) {
      shared.PushDraft(Draft(step, {{static_cast<int32_t>(step), 1}}, 0), false);
    }
    shared.PushFinal({});
  });
  size_t commits = 0;
  bool final_seen = false;
  while (!final_seen) {
    if (auto event = shared.Pop()) {
      if (auto* draft = std::get_if<DraftEvent>(&*event)) commits += draft->committed.size();
      final_seen = std::holds_alternative<FinalEvent>(*event);
    }
  }
  producer.join();
  EXPECT_EQ(commits, 2000u);
}

}  // namespace
}  // namespace sculpt
