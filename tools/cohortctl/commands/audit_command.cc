// `cohortctl audit`: lists the tamper-evident audit log (Admin.ListAudit)
// and reports the server's verification of its hash chain.
#include "absl/strings/str_cat.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "tools/cohortctl/audit_format.h"
#include "tools/cohortctl/commands.h"
#include "tools/cohortctl/unary_output.h"

namespace cohortd::cohortctl {
namespace {

constexpr int64_t kMaxLimit = 10000;  // the server's cap (API)

absl::Status CheckAuditFlags(const ParsedFlags& flags) {
  absl::StatusOr<int64_t> from = flags.GetInt("from", 1);
  if (!from.ok()) return from.status();
  absl::StatusOr<int64_t> limit = flags.GetInt("limit", 100);
  if (!limit.ok()) return limit.status();
  if (*from < 0 || *limit < 1 || *limit > kMaxLimit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--from must be >= 0 and --limit between 1 and ", kMaxLimit));
  }
  return CheckTextOrJsonFormat(flags);
}

int RunAudit(const CommandEnv& env) {
  cohortd::v1::ListAuditRequest request;
  request.set_start_sequence(*env.flags.GetInt("from", 1));
  request.set_limit(static_cast<int32_t>(*env.flags.GetInt("limit", 100)));
  cohortd::v1::ListAuditResponse response;
  const int code = CallAndPrint<cohortd::v1::Admin>(
      env, "audit", &cohortd::v1::Admin::Stub::ListAudit, request, &FormatAudit,
      &response);
  if (code != kExitOk) return code;
  return response.chain_valid() ? kExitOk : kExitProblem;
}

}  // namespace

Command AuditCommand() {
  Command command;
  command.name = "audit";
  command.summary = "list the audit log and verify its hash chain (admin)";
  command.description =
      "Lists audit-log entries, oldest first, from sequence --from: each\n"
      "release's sequence, time, principal, dataset, release id, cost and\n"
      "canonical request. The server verifies the hash chain from the first\n"
      "entry up to the last one listed; cohortctl prints the result and\n"
      "exits 3 if the chain is broken. Needs an admin token.\n";
  command.role = Role::kAdmin;
  command.flags = {
      {"from", "SEQ", "first sequence number to list (default 1)"},
      {"limit", "N", "entries to list, at most 10000 (default 100)"},
      {"format", "FORMAT", "text or json (default text)"},
  };
  command.check = CheckAuditFlags;
  command.run = RunAudit;
  return command;
}

}  // namespace cohortd::cohortctl
