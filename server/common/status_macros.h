// Early-return helpers for absl::Status / absl::StatusOr, in the style of
// the macros of google/differential-privacy and fcp (Debian's abseil ships
// none).
#ifndef COHORTD_SERVER_COMMON_STATUS_MACROS_H_
#define COHORTD_SERVER_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define COHORTD_STATUS_CONCAT_INNER_(a, b) a##b
#define COHORTD_STATUS_CONCAT_(a, b) COHORTD_STATUS_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): evaluates `expr` (an absl::Status) once and returns
// it from the enclosing function when it is not OK.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status cohortd_status_ = (expr);     \
    if (!cohortd_status_.ok()) return cohortd_status_; \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (an absl::StatusOr<T>); on
// error returns its status, otherwise moves the value into `lhs`, which may
// be a declaration (`auto x`) or an existing variable.
#define ASSIGN_OR_RETURN(lhs, expr)                                       \
  ASSIGN_OR_RETURN_IMPL_(                                                 \
      COHORTD_STATUS_CONCAT_(cohortd_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) return statusor.status();     \
  lhs = std::move(statusor).value()

#endif  // COHORTD_SERVER_COMMON_STATUS_MACROS_H_
