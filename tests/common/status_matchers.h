// IsOk() and StatusIs(code[, message_matcher]) for absl::Status and
// absl::StatusOr<T>; Debian's abseil ships no status matchers.
#ifndef COHORTD_TESTS_COMMON_STATUS_MATCHERS_H_
#define COHORTD_TESTS_COMMON_STATUS_MATCHERS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace cohortd::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s.ToString();
  return s.ok();
}

MATCHER_P(StatusIs, code,
          std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher,
                                       std::string(s.message()),
                                       result_listener);
}

}  // namespace cohortd::testing

#define ASSERT_OK(expr) ASSERT_THAT(expr, ::cohortd::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT(expr, ::cohortd::testing::IsOk())

// ASSERT_OK_AND_ASSIGN(lhs, expr): asserts the StatusOr is OK and moves its
// value into lhs.
#define COHORTD_TEST_CONCAT_INNER_(a, b) a##b
#define COHORTD_TEST_CONCAT_(a, b) COHORTD_TEST_CONCAT_INNER_(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(COHORTD_TEST_CONCAT_(statusor_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  ASSERT_OK(statusor);                                  \
  lhs = std::move(statusor).value()

#endif  // COHORTD_TESTS_COMMON_STATUS_MATCHERS_H_
