// Shared pieces of the storage fault tests (label `fault`): running the
// real cohortd binary to completion (a refused start, `--verify`), pushing
// batches of distinct sessions, and reading which sessions a stopped
// server's store holds.
#ifndef COHORTD_TESTS_FAULT_FAULT_SUPPORT_H_
#define COHORTD_TESTS_FAULT_FAULT_SUPPORT_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"

namespace cohortd::testing {

struct RunResult {
  int exit_code = -1;  // -1: still running at the timeout (then killed)
  std::string output;  // stdout and stderr together
};

// Runs cohortd with `args` until it exits, or kills it after `timeout`.
RunResult RunCohortd(const std::vector<std::string>& args,
                     absl::Duration timeout = absl::Seconds(60));

// A batch of `n` valid observations of dataset `sessions`, sessions
// "<prefix>-<first>" .. "<prefix>-<first + n - 1>", one each.
cohortd::v1::PushRequest SessionBatch(const std::string& prefix, int first,
                                      int n);

// The session ids of dataset `sessions` in the store in `data_dir` (no
// server may be running on it).
absl::StatusOr<std::set<std::string>> StoredSessionIds(
    const std::string& data_dir);

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_FAULT_FAULT_SUPPORT_H_
