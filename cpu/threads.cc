#include "cpu/threads.h"

#include <omp.h>

#include <atomic>

namespace sculpt {
namespace {

std::atomic<int> requested_threads{0};

}  // namespace

void SetCpuThreads(int n) {
  requested_threads.store(n);
  ApplyCpuThreads();
}

void ApplyCpuThreads() {
  // OpenMP's thread count is a setting of the thread that sets it: a thread started later (the
  // scheduler's engine) keeps the default of all cores until it applies the count itself.
  thread_local int applied = 0;
  const int n = requested_threads.load(std::memory_order_relaxed);
  if (n > 0 && n != applied) {
    omp_set_num_threads(n);
    applied = n;
  }
}

int CpuThreads() {
  ApplyCpuThreads();
  return omp_get_max_threads();
}

}  // namespace sculpt
