// Admission at step granularity: strict order, head-of-line blocking, aging.
#include "scheduler/admission.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace sculpt {

int64_t EffectivePriority(const WaitingRequest& request, const Budgets& budgets) {
  int64_t priority = request.priority;
  if (budgets.priority_aging_s > 0 && request.waited_s > 0) {
    priority += static_cast<int64_t>(std::floor(request.waited_s / budgets.priority_aging_s));
  }
  return priority;
}

std::vector<size_t> PlanAdmission(std::span<const RunningRequest> running,
                                  std::span<const WaitingRequest> waiting, const Budgets& budgets,
                                  KvRowAllocator kv_cache) {
  int64_t seqs = static_cast<int64_t>(running.size());
  int64_t tokens = 0;
  for (const RunningRequest& request : running) tokens += request.tokens_per_step;

  std::vector<size_t> order(waiting.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int64_t pa = EffectivePriority(waiting[a], budgets);
    const int64_t pb = EffectivePriority(waiting[b], budgets);
    if (pa != pb) return pa > pb;
    return waiting[a].arrival < waiting[b].arrival;
  });

  std::vector<size_t> admitted;
  for (size_t index : order) {
    const WaitingRequest& request = waiting[index];
    if (seqs + 1 > budgets.max_num_seqs ||
        tokens + request.tokens_per_step > budgets.max_num_batched_tokens ||
        (request.kv_cache_rows > 0 && !kv_cache.Allocate(request.kv_cache_rows))) {
      break;
    }
    ++seqs;
    tokens += request.tokens_per_step;
    admitted.push_back(index);
  }
  return admitted;
}

}  // namespace sculpt
