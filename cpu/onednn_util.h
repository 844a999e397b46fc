// What the CPU backend's oneDNN users share: single-threaded primitive creation and running one
// primitive on the calling thread without allocating.
#pragma once

#include <omp.h>

#include <atomic>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sculpt::cpu {

// Makes oneDNN objects with its threading fixed to one thread: oneDNN decides how to split a
// primitive over threads when it is created, and each of our tiles runs on one thread.
class SingleThreadedScope {
 public:
  SingleThreadedScope() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SingleThreadedScope() { omp_set_num_threads(saved_); }
  SingleThreadedScope(const SingleThreadedScope&) = delete;
  SingleThreadedScope& operator=(const SingleThreadedScope&) = delete;

 private:
  int saved_;
};

// Runs a matmul tile, dst = src x weights, on the calling thread through memory objects whose
// data handles the caller has set (the C API: no argument map is built per call). Throws
// dnnl::error.
inline void ExecuteMatmul(const dnnl::primitive& matmul, const dnnl::stream& stream,
                          const dnnl::memory& src, const dnnl::memory& weights,
                          const dnnl::memory& dst, const dnnl::memory& scratchpad) {
  const dnnl_exec_arg_t arguments[] = {{DNNL_ARG_SRC, src.get()},
                                       {DNNL_ARG_WEIGHTS, weights.get()},
                                       {DNNL_ARG_DST, dst.get()},
                                       {DNNL_ARG_SCRATCHPAD, scratchpad.get()}};
  dnnl::error::wrap_c_api(dnnl_primitive_execute(matmul.get(), stream.get(), 4, arguments),
                          "executing a matmul tile");
}

// The first oneDNN error among the tiles of a parallel loop (exceptions must not leave an
// OpenMP region): the other tiles are skipped once one failed.
class FirstTileError {
 public:
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  void Record(const dnnl::error& error) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!failed_.exchange(true)) message_ = error.what();
  }
  absl::Status status(const char* op) const {
    return failed() ? absl::InternalError(absl::StrCat(op, ": oneDNN failed: ", message_))
                    : absl::OkStatus();
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::string message_;
};

}  // namespace sculpt::cpu
