// Reading a Prometheus text exposition in tests: the value of one series.
#ifndef COHORTD_TESTS_COMMON_EXPOSITION_H_
#define COHORTD_TESTS_COMMON_EXPOSITION_H_

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace cohortd::testing {

// The value of the sample `series` (its name and labels exactly as
// exposed, e.g. `cohortd_limit_setting{limit="max_threads"}`, or a bare
// name) in `exposition`; -1 when absent.
inline double ExpositionSample(const std::string& exposition,
                               const std::string& series) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
  }
  return -1;
}

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_COMMON_EXPOSITION_H_
