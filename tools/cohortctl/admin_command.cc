// `cohortctl admin seal`: seals a snapshot of a dataset now
// (Admin.SealSnapshot), so that queries read everything pushed before it.
// Other admin actions may join `seal` as further subcommands.
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "tools/cohortctl/commands.h"
#include "tools/cohortctl/unary_output.h"

namespace cohortd::cohortctl {
namespace {

std::string FormatSealed(const cohortd::v1::SealSnapshotResponse& response) {
  const absl::Time sealed_at =
      absl::FromUnixSeconds(response.sealed_at().seconds()) +
      absl::Nanoseconds(response.sealed_at().nanos());
  return absl::StrCat(
      "snapshot sealed at ",
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", sealed_at, absl::UTCTimeZone()),
      ": queries now read everything pushed before it\n");
}

absl::Status CheckAdmin(const ParsedFlags& flags) {
  if (flags.positional().empty() || flags.positional()[0] != "seal") {
    return absl::InvalidArgumentError("admin: unknown action; actions: seal");
  }
  return CheckTextOrJsonFormat(flags);
}

int RunAdmin(const CommandEnv& env) {
  cohortd::v1::SealSnapshotRequest request;
  request.set_dataset(env.global.dataset);
  cohortd::v1::SealSnapshotResponse response;
  return CallAndPrint<cohortd::v1::Admin>(
      env, "admin seal", &cohortd::v1::Admin::Stub::SealSnapshot, request,
      &FormatSealed, &response);
}

}  // namespace

Command AdminCommand() {
  Command command;
  command.name = "admin";
  command.args = "seal";
  command.num_args = 1;
  command.summary = "seal a snapshot now, so queries see new data (admin)";
  command.description =
      "admin seal: seals a snapshot of --dataset now. Queries read the\n"
      "latest sealed snapshot, not live data: a push becomes visible at the\n"
      "next seal (server.snapshot_every, a restart, or this command). Each\n"
      "seal ends the release cache's validity, so the next identical\n"
      "question is a new, charged release. Needs an admin token.\n";
  command.role = Role::kAdmin;
  command.flags = {{"format", "FORMAT", "text or json (default text)"}};
  command.check = CheckAdmin;
  command.run = RunAdmin;
  return command;
}

}  // namespace cohortd::cohortctl
