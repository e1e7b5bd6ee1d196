// RunInProcess: runs cohortctl's command line on this thread with captured
// streams, as the tests of the CLI need it.
#ifndef COHORTD_TESTS_COHORTCTL_RUN_IN_PROCESS_H_
#define COHORTD_TESTS_COHORTCTL_RUN_IN_PROCESS_H_

#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "tools/cohortctl/cli.h"
#include "tools/cohortctl/commands.h"

namespace cohortd::cohortctl {

// An environment with no variables set, so that a developer's own
// COHORTD_* variables cannot change what a test sees.
inline EnvLookup NoEnvironment() {
  return [](absl::string_view) { return std::optional<std::string>(); };
}

// Clears `out` and `err`, then runs `args` with `in`, `out`, `err` and
// `env` as the process's streams and environment. Returns the exit code.
inline int RunInProcess(const std::vector<std::string>& args,
                        std::stringstream* in, std::stringstream* out,
                        std::stringstream* err,
                        EnvLookup env = NoEnvironment()) {
  out->str("");
  err->str("");
  CliIo io;
  io.in = in;
  io.out = out;
  io.err = err;
  io.env = std::move(env);
  return RunCohortctl(args, io);
}

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TESTS_COHORTCTL_RUN_IN_PROCESS_H_
