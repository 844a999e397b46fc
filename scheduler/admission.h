// Which queued requests join the denoising loop at the next step boundary: a pure function of
// the running set, the queue and the budgets, so the policy is tested without a model.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/kv_cache.h"

namespace sculpt {

struct Budgets {
  int max_num_seqs = 16;              // sequences in the loop at once
  int max_num_batched_tokens = 8192;  // tokens one step may forward, summed over sequences
  // Every this many seconds of waiting raise a queued request's priority by one, so a steady
  // stream of urgent work cannot hold a request back forever (0 = no aging).
  double priority_aging_s = 10.0;
};

struct RunningRequest {
  int tokens_per_step = 0;  // canvas length, twice that with classifier-free guidance
};

struct WaitingRequest {
  int priority = 0;
  uint64_t arrival = 0;  // submission order, unique
  double waited_s = 0;
  int tokens_per_step = 0;
  int kv_cache_rows = 0;  // rows of the KV cache arena it needs (0 without a cache)
};

// The waiting requests to admit, as indices into `waiting`, in the order they are admitted.
// Order: effective priority (priority plus aging) descending, then arrival. Admission stops at
// the first request that does not fit, so a large request is never overtaken by smaller ones
// (no starvation within a priority); budgets are never exceeded. A request with a KV cache fits
// only if `kv_cache` (a copy of the arena's allocator as it stands) can give it its rows: the
// rows are planned in admission order, so the real allocator then gives the same ones.
std::vector<size_t> PlanAdmission(std::span<const RunningRequest> running,
                                  std::span<const WaitingRequest> waiting, const Budgets& budgets,
                                  KvRowAllocator kv_cache = KvRowAllocator());

// Priority plus one per priority_aging_s waited.
int64_t EffectivePriority(const WaitingRequest& request, const Budgets& budgets);

}  // namespace sculpt
