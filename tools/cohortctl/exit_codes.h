// cohortctl's exit codes, so that scripts can tell a broken call from a
// call that worked and found a problem.
#ifndef COHORTD_TOOLS_COHORTCTL_EXIT_CODES_H_
#define COHORTD_TOOLS_COHORTCTL_EXIT_CODES_H_

namespace cohortd::cohortctl {

// Exit codes, documented in `cohortctl --help` and docs/cohortctl.md.
inline constexpr int kExitOk = 0;
// An RPC failed (the gRPC code name and message go to stderr), or a file
// could not be read.
inline constexpr int kExitError = 1;
// Bad flags or arguments, or no token; nothing was sent.
inline constexpr int kExitUsage = 2;
// The command ran but found a problem: observations rejected, lines
// malformed or unconfirmed (push), a broken audit chain (audit), a service
// not SERVING (health).
inline constexpr int kExitProblem = 3;
// `report --truth`: a released cohort has fewer than k distinct accounts in
// the ground truth, i.e. the server broke its k-anonymity promise.
inline constexpr int kExitBelowK = 4;

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_EXIT_CODES_H_
