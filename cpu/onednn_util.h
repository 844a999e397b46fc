// What the CPU backend's oneDNN users share: single-threaded primitive creation and running one
// primitive on the calling thread without allocating.
#pragma once

#include <omp.h>

#include <initializer_list>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

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

// Runs `primitive` on `stream` with memory objects whose data handles the caller has set
// (through the C API: no argument map is built per call). Throws dnnl::error.
inline void ExecutePrimitive(const dnnl::primitive& primitive, const dnnl::stream& stream,
                             std::initializer_list<dnnl_exec_arg_t> arguments) {
  dnnl::error::wrap_c_api(
      dnnl_primitive_execute(primitive.get(), stream.get(), static_cast<int>(arguments.size()),
                             arguments.begin()),
      "executing a tile");
}

}  // namespace sculpt::cpu
