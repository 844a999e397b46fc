// Status helpers shared by every module: propagation macros and programmer-error checks.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

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
