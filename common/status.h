// Status helpers shared by every module: propagation macros and programmer-error checks.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"

namespace sculpt {

// A status can carry markers (payloads named by a type URL) that say what kind of failure it is
// beyond its code.
inline absl::Status WithMarker(absl::Status status, const char* marker) {
  if (!status.ok()) status.SetPayload(marker, absl::Cord("1"));
  return status;
}
inline bool HasMarker(const absl::Status& status, const char* marker) {
  return status.GetPayload(marker).has_value();
}

// The device's own failure (a CUDA or cuBLAS error: the context may be unusable). Only the
// device error paths (cuda/cuda_check.cuh) mark statuses so; any other error, whatever its code,
// leaves the device healthy.
inline constexpr char kDeviceFailure[] = "type.sculpt.dev/device-failure";
inline absl::Status MarkDeviceFailure(absl::Status status) {
  return WithMarker(std::move(status), kDeviceFailure);
}
inline bool IsDeviceFailure(const absl::Status& status) {
  return HasMarker(status, kDeviceFailure);
}

}  // namespace sculpt

// Aborts with file:line for programmer errors (broken invariants), never for bad input.
#define SCULPT_CHECK(condition)                                                                 \
  do {                                                                                          \
    if (!(condition)) {                                                                         \
      std::fprintf(stderr, "%s:%d: SCULPT_CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                             \
    }                                                                                           \
  } while (false)

#define SCULPT_STATUS_CONCAT_INNER(a, b) a##b
#define SCULPT_STATUS_CONCAT(a, b) SCULPT_STATUS_CONCAT_INNER(a, b)

#define SCULPT_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status sculpt_status_ = (expr);          \
    if (!sculpt_status_.ok()) return sculpt_status_; \
  } while (false)

#define SCULPT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(*tmp)

// lhs may be a declaration: SCULPT_ASSIGN_OR_RETURN(auto file, Open(path));
#define SCULPT_ASSIGN_OR_RETURN(lhs, expr) \
  SCULPT_ASSIGN_OR_RETURN_IMPL(SCULPT_STATUS_CONCAT(sculpt_statusor_, __LINE__), lhs, expr)
