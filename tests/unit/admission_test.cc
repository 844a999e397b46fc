// PlanAdmission: budgets, order, head-of-line blocking and aging, without a model.
#include "scheduler/admission.h"

#include <gtest/gtest.h>

#include <random>

#include "scheduler/scheduler.h"

namespace sculpt {
namespace {

WaitingRequest Waiting(uint64_t arrival, int tokens, int priority = 0, double waited_s = 0) {
  return {
      .priority = priority, .arrival = arrival, .waited_s = waited_s, .tokens_per_step = tokens};
}

TEST(AdmissionTest, AdmitsInArrivalOrderWithinBudgets) {
  const Budgets budgets{.max_num_seqs = 3, .max_num_batched_tokens = 1000};
  const std::vector<WaitingRequest> waiting = {Waiting(2, 100), Waiting(0, 100), Waiting(1, 100),
                                               Waiting(3, 100)};
  EXPECT_EQ(PlanAdmission({}, waiting, budgets), (std::vector<size_t>{1, 2, 0}));
}

TEST(AdmissionTest, CountsRunningRequestsAgainstBothBudgets) {
  const Budgets budgets{.max_num_seqs = 4, .max_num_batched_tokens = 1000};
  const std::vector<RunningRequest> running = {{.tokens_per_step = 600}, {.tokens_per_step = 200}};
  const std::vector<WaitingRequest> waiting = {Waiting(0, 150), Waiting(1, 100)};
  // 600 + 200 + 150 = 950 fits; another 100 would make 1050.
  EXPECT_EQ(PlanAdmission(running, waiting, budgets), (std::vector<size_t>{0}));
  const std::vector<RunningRequest> full(4, RunningRequest{.tokens_per_step = 1});
  EXPECT_TRUE(PlanAdmission(full, waiting, budgets).empty());
}

TEST(AdmissionTest, ARequestWhoseKvCacheDoesNotFitWaitsAndHoldsTheLineBehindIt) {
  const Budgets budgets{.max_num_seqs = 8, .max_num_batched_tokens = 1 << 20};
  // An arena of 100 rows of which running requests hold [0, 30) and [60, 80).
  KvRowAllocator arena(100);
  const auto first = arena.Allocate(30);
  const auto middle = arena.Allocate(30);
  const auto last = arena.Allocate(20);
  ASSERT_TRUE(first && middle && last);
  arena.Free(*middle);
  std::vector<WaitingRequest> waiting = {Waiting(0, 25), Waiting(1, 25), Waiting(2, 10),
                                         Waiting(3, 10)};
  waiting[0].kv_cache_rows = 25;  // fits in [30, 60)
  waiting[1].kv_cache_rows = 25;  // 5 + 20 rows are left, in two pieces: waits
  waiting[2].kv_cache_rows = 0;   // no cache, but behind the one that waits
  EXPECT_EQ(PlanAdmission({}, waiting, budgets, arena), (std::vector<size_t>{0}));
  // The plan ran on a copy: the arena itself is unchanged, and gives the planned rows.
  EXPECT_EQ(arena.used(), 50);
  EXPECT_EQ(arena.Allocate(25)->first, 30);
  // Once a running request's rows come back, the rest fit.
  arena.Free(*first);
  EXPECT_EQ(PlanAdmission({}, std::span(waiting).subspan(1), budgets, arena),
            (std::vector<size_t>{0, 1, 2}));
  // Without an arena a request that needs rows never fits.
  EXPECT_TRUE(PlanAdmission({}, waiting, budgets).empty());
}

TEST(AdmissionTest, HigherPriorityFirstThenArrival) {
  const Budgets budgets{.max_num_seqs = 8, .max_num_batched_tokens = 1 << 20};
  const std::vector<WaitingRequest> waiting = {Waiting(0, 10, 0), Waiting(1, 10, 5),
                                               Waiting(2, 10, -1), Waiting(3, 10, 5)};
  EXPECT_EQ(PlanAdmission({}, waiting, budgets), (std::vector<size_t>{1, 3, 0, 2}));
}

TEST(AdmissionTest, LargeRequestIsNotOvertakenBySmallerOnes) {
  const Budgets budgets{.max_num_seqs = 8, .max_num_batched_tokens = 1000};
  const std::vector<RunningRequest> running = {{.tokens_per_step = 500}};
  // The oldest request needs 600 tokens; the small ones behind it must wait, or a stream of
  // small requests could keep it out forever.
  const std::vector<WaitingRequest> waiting = {Waiting(0, 600), Waiting(1, 10), Waiting(2, 10)};
  EXPECT_TRUE(PlanAdmission(running, waiting, budgets).empty());
  EXPECT_EQ(PlanAdmission({}, waiting, budgets), (std::vector<size_t>{0, 1, 2}));
}

TEST(AdmissionTest, AgingLiftsALongWaitingRequestAboveNewUrgentOnes) {
  const Budgets budgets{.max_num_seqs = 1, .max_num_batched_tokens = 1000, .priority_aging_s = 10};
  const std::vector<WaitingRequest> waiting = {Waiting(0, 10, 0, 35.0), Waiting(5, 10, 3, 0.5)};
  EXPECT_EQ(EffectivePriority(waiting[0], budgets), 3);
  // Equal effective priority: the earlier arrival wins.
  EXPECT_EQ(PlanAdmission({}, waiting, budgets), (std::vector<size_t>{0}));
  const Budgets no_aging{.max_num_seqs = 1, .max_num_batched_tokens = 1000, .priority_aging_s = 0};
  EXPECT_EQ(PlanAdmission({}, waiting, no_aging), (std::vector<size_t>{1}));
}

// Random queues: the budgets always hold, and the admitted set is a prefix of the order.
TEST(AdmissionTest, RandomQueuesRespectBudgetsAndOrder) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    const Budgets budgets{.max_num_seqs = 1 + static_cast<int>(rng() % 8),
                          .max_num_batched_tokens = 100 + static_cast<int>(rng() % 2000),
                          .priority_aging_s = (rng() % 2) ? 5.0 : 0.0};
    std::vector<RunningRequest> running(rng() % 4);
    int64_t tokens = 0;
    for (auto& request : running) tokens += request.tokens_per_step = 1 + rng() % 300;
    std::vector<WaitingRequest> waiting(rng() % 10);
    for (size_t i = 0; i < waiting.size(); ++i) {
      waiting[i] =
          Waiting(i, 1 + rng() % 500, static_cast<int>(rng() % 3), static_cast<double>(rng() % 30));
    }
    const std::vector<size_t> admitted = PlanAdmission(running, waiting, budgets);
    int64_t seqs = static_cast<int64_t>(running.size());
    for (size_t index : admitted) {
      ++seqs;
      tokens += waiting[index].tokens_per_step;
    }
    if (!admitted.empty()) {
      EXPECT_LE(seqs, budgets.max_num_seqs);
      EXPECT_LE(tokens, budgets.max_num_batched_tokens);
    }
    // Nothing outside the admitted set ranks ahead of an admitted request.
    for (size_t i = 0; i < waiting.size(); ++i) {
      if (std::find(admitted.begin(), admitted.end(), i) != admitted.end()) continue;
      for (size_t index : admitted) {
        const int64_t pi = EffectivePriority(waiting[i], budgets);
        const int64_t pa = EffectivePriority(waiting[index], budgets);
        EXPECT_TRUE(pa > pi || (pa == pi && waiting[index].arrival < waiting[i].arrival));
      }
    }
  }
}

// The workspace reserved at startup covers any step the budgets admit: every running sequence
// guided (two forwarded sequences each) and every token of the budget needing logits.
TEST(AdmissionTest, TheReservedWorkspaceCoversTheLargestAdmittedStep) {
  const Budgets budgets{.max_num_seqs = 5, .max_num_batched_tokens = 777};
  const WorkspaceLimits limits = WorkspaceFor(budgets);
  EXPECT_EQ(limits.tokens, 777);
  EXPECT_EQ(limits.sequences, 10);
  EXPECT_EQ(limits.logit_rows, 777);
}

}  // namespace
}  // namespace sculpt
