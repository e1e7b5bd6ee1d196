// CHECK(cond): aborts with file, line and condition when `cond` is false.
// For invariants that cannot fail unless cohortd itself is wrong; never for
// client input, which gets an absl::Status instead (STYLE.md). Debian's
// abseil has no absl/log, hence this small replacement.
#ifndef COHORTD_SERVER_COMMON_CHECK_H_
#define COHORTD_SERVER_COMMON_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define CHECK(cond)                                                  \
  do {                                                               \
    if (!(cond)) {                                                   \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,    \
                   __LINE__, #cond);                                 \
      std::abort();                                                  \
    }                                                                \
  } while (0)

#define CHECK_OK(expr)                                               \
  do {                                                               \
    const auto& cohortd_check_status_ = (expr);                      \
    if (!cohortd_check_status_.ok()) {                               \
      std::fprintf(stderr, "%s:%d: CHECK_OK failed: %s: %s\n",       \
                   __FILE__, __LINE__, #expr,                        \
                   std::string(cohortd_check_status_.ToString()).c_str()); \
      std::abort();                                                  \
    }                                                                \
  } while (0)

#endif  // COHORTD_SERVER_COMMON_CHECK_H_
