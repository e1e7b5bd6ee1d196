// The `cohortctl admin` group, one two-word command per action (all need
// an admin token, $COHORTD_ADMIN_TOKEN):
//   admin seal            Admin.SealSnapshot: queries see data pushed so far
//   admin delete-account  Admin.DeleteAccount: erase one account's sessions
//   admin backup          Admin.Backup: back up the store on the server
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

int RunSeal(const CommandEnv& env) {
  cohortd::v1::SealSnapshotRequest request;
  request.set_dataset(env.global.dataset);
  cohortd::v1::SealSnapshotResponse response;
  return CallAndPrint<cohortd::v1::Admin>(
      env, "admin seal", &cohortd::v1::Admin::Stub::SealSnapshot, request,
      &FormatSealed, &response);
}

std::string FormatDeleted(const cohortd::v1::DeleteAccountResponse& r) {
  return absl::StrCat("deleted ", r.sessions_deleted(),
                      " session(s) of the account (audit-logged)\n");
}

std::string FormatBackup(const cohortd::v1::BackupResponse& r) {
  return absl::StrCat("backup written to ", r.directory(),
                      " on the server: ", r.bytes(), " bytes\n");
}

absl::Status CheckDeleteAccountFlags(const ParsedFlags& flags) {
  if (flags.Get("account").empty()) {
    return absl::InvalidArgumentError(
        "--account is required: the raw account id, as it was pushed");
  }
  return CheckTextOrJsonFormat(flags);
}

int RunDeleteAccount(const CommandEnv& env) {
  cohortd::v1::DeleteAccountRequest request;
  request.set_dataset(env.global.dataset);
  request.set_account_id(env.flags.Get("account"));
  cohortd::v1::DeleteAccountResponse response;
  return CallAndPrint<cohortd::v1::Admin>(
      env, "admin delete-account", &cohortd::v1::Admin::Stub::DeleteAccount,
      request, &FormatDeleted, &response);
}

absl::Status CheckBackupFlags(const ParsedFlags& flags) {
  if (flags.Get("directory").empty()) {
    return absl::InvalidArgumentError(
        "--directory is required: an absent or empty folder on the server, "
        "as an absolute path");
  }
  return CheckTextOrJsonFormat(flags);
}

int RunBackup(const CommandEnv& env) {
  cohortd::v1::BackupRequest request;
  request.set_directory(env.flags.Get("directory"));
  cohortd::v1::BackupResponse response;
  return CallAndPrint<cohortd::v1::Admin>(env, "admin backup",
                                          &cohortd::v1::Admin::Stub::Backup,
                                          request, &FormatBackup, &response);
}

}  // namespace

Command AdminSealCommand() {
  Command command;
  command.name = "admin seal";
  command.summary = "seal a snapshot now, so queries see new data (admin)";
  command.description =
      "admin seal: seals a snapshot of --dataset now. Queries read the\n"
      "latest sealed snapshot, not live data: a push becomes visible at the\n"
      "next seal (server.snapshot_every, a restart, or this command). Each\n"
      "seal ends the release cache's validity, so the next identical\n"
      "question is a new, charged release. Needs an admin token.\n";
  command.role = Role::kAdmin;
  command.flags = {{"format", "FORMAT", "text or json (default text)"}};
  command.check = CheckTextOrJsonFormat;
  command.run = RunSeal;
  return command;
}

Command AdminDeleteAccountCommand() {
  Command command;
  command.name = "admin delete-account";
  command.summary = "erase every session of one account (admin)";
  command.description =
      "Deletes every session of the account --account in --dataset. The id\n"
      "is pseudonymised on the server exactly as on ingest and is not\n"
      "stored or logged; the audit log records who erased how many\n"
      "sessions, not which account. Answers reflect the deletion from the\n"
      "next seal (`admin seal`); releases made before it stay released\n"
      "(README \"Erasure and retention\"). Prints the number of sessions "
      "deleted (0 if the\n"
      "account had none). Needs an admin token.\n";
  command.role = Role::kAdmin;
  command.flags = {
      {"account", "ID", "the account id to erase, as pushed (required)"},
      {"format", "FORMAT", "text or json (default text)"},
  };
  command.check = CheckDeleteAccountFlags;
  command.run = RunDeleteAccount;
  return command;
}

Command AdminBackupCommand() {
  Command command;
  command.name = "admin backup";
  command.summary = "back up the server's store to a server folder (admin)";
  command.description =
      "Writes a consistent backup of the store (records, budget ledger,\n"
      "release cache, audit log) into --directory ON THE SERVER, which must\n"
      "be absent or empty. The pseudonymisation key is not included: keep\n"
      "it with the backup yourself. Restore offline with\n"
      "  cohortd --config FILE --restore-from DIR\n"
      "into an empty data dir. Needs an admin token.\n";
  command.role = Role::kAdmin;
  command.flags = {
      {"directory", "DIR",
       "absolute path of an absent or empty folder on "
       "the server (required)"},
      {"format", "FORMAT", "text or json (default text)"},
  };
  command.check = CheckBackupFlags;
  command.run = RunBackup;
  return command;
}

}  // namespace cohortd::cohortctl
