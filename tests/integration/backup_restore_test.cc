// Admin.Backup and `cohortd --restore-from` through the real binary: a
// restored store has the same budgets, the same valid audit chain and the
// same snapshot (the sealed index is in the backup with its id, so the same
// questions are answered from the cache, identically and for free:
// server/index/sealed_index.h); the pseudonymisation key is never in a
// backup; nothing is overwritten.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/cohortctl/run_in_process.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"

#ifndef COHORTD_BINARY
#error "COHORTD_BINARY must name the cohortd executable"
#endif

namespace cohortd::testing {
namespace {

namespace fs = std::filesystem;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

constexpr int64_t kJan2026 = 1767225600;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// Runs `cohortd --config <dir>/cohortd.yaml --restore-from <backup>`;
// returns its exit code, with its output in *output.
int RunRestore(const std::string& dir, const std::string& backup,
               std::string* output) {
  const std::string log = dir + "/restore.log";
  const std::string command = absl::StrCat(
      "'", COHORTD_BINARY, "' --config '", dir,
      "/cohortd.yaml' --restore-from '", backup, "' > '", log, "' 2>&1");
  const int status = std::system(command.c_str());
  *output = ReadFile(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

cohortd::v1::AggregateRequest ByOccupation() {
  cohortd::v1::AggregateRequest request;
  request.set_dataset("sessions");
  request.add_group_by("occupation");
  request.set_epsilon(1.0);
  request.add_metrics()->set_kind(cohortd::v1::Metric::SESSIONS);
  request.add_metrics()->set_kind(cohortd::v1::Metric::ACCOUNTS);
  return request;
}

cohortd::v1::AggregateRequest ByWorkMode() {
  cohortd::v1::AggregateRequest request;
  request.set_dataset("sessions");
  request.add_group_by("work_mode");
  request.set_epsilon(0.5);
  request.add_metrics()->set_kind(cohortd::v1::Metric::SESSIONS);
  return request;
}

class BackupRestoreTest : public ::testing::Test {
 protected:
  struct Client {
    std::unique_ptr<cohortd::v1::Ingest::Stub> ingest;
    std::unique_ptr<cohortd::v1::Query::Stub> query;
    std::unique_ptr<cohortd::v1::Admin::Stub> admin;
  };
  static Client Connect(const ServerProcess& server) {
    return {cohortd::v1::Ingest::NewStub(server.Channel()),
            cohortd::v1::Query::NewStub(server.Channel()),
            cohortd::v1::Admin::NewStub(server.Channel())};
  }

  // 3 occupations x 200 accounts x 2 sessions, two work modes.
  static void PushPopulation(const ServerProcess& server, Client& c) {
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    const char* occupations[] = {"legal", "management",
                                 "computer_mathematical"};
    int serial = 0;
    for (const char* occupation : occupations) {
      for (int a = 0; a < 200; ++a) {
        for (int s = 0; s < 2; ++s) {
          auto* obs = request.add_observations();
          const std::string account = absl::StrCat(occupation, "-", a);
          obs->set_session_id(absl::StrCat(account, "-s", s));
          obs->set_account_id(account);
          obs->mutable_session_start()->set_seconds(kJan2026 + serial++ * 60);
          obs->set_source("test_classifier@1");
          (*obs->mutable_labels())["occupation"] = occupation;
          (*obs->mutable_labels())["work_mode"] = s == 0 ? "fix" : "build";
        }
      }
    }
    cohortd::v1::PushResponse response;
    auto context = AuthContext(server.tokens().ingest);
    ASSERT_TRUE(c.ingest->Push(context.get(), request, &response).ok());
    ASSERT_EQ(response.accepted(), 1200);
    // Queries read sealed snapshots: seal, so they see the population.
    cohortd::v1::SealSnapshotRequest seal;
    cohortd::v1::SealSnapshotResponse sealed;
    auto admin = AuthContext(server.tokens().admin);
    const grpc::Status s = c.admin->SealSnapshot(admin.get(), seal, &sealed);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  static std::set<std::string> Keys(
      const cohortd::v1::AggregateResponse& response) {
    std::set<std::string> keys;
    for (const auto& cohort : response.cohorts()) {
      std::string key;
      for (const auto& [dim, value] : cohort.key()) {
        absl::StrAppend(&key, dim, "=", value, ";");
      }
      keys.insert(key);
    }
    return keys;
  }

  static cohortd::v1::AggregateResponse Query(
      const ServerProcess& server, Client& c,
      const cohortd::v1::AggregateRequest& request) {
    cohortd::v1::AggregateResponse response;
    auto context = AuthContext(server.tokens().analyst);
    const grpc::Status s =
        c.query->Aggregate(context.get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  static cohortd::v1::Budget Budget(const ServerProcess& server, Client& c) {
    cohortd::v1::GetBudgetRequest request;
    request.set_dataset("sessions");
    cohortd::v1::Budget budget;
    auto context = AuthContext(server.tokens().analyst);
    EXPECT_TRUE(c.query->GetBudget(context.get(), request, &budget).ok());
    return budget;
  }

  static cohortd::v1::ListAuditResponse Audit(const ServerProcess& server,
                                              Client& c) {
    cohortd::v1::ListAuditRequest request;
    request.set_limit(10000);
    cohortd::v1::ListAuditResponse response;
    auto context = AuthContext(server.tokens().admin);
    EXPECT_TRUE(c.admin->ListAudit(context.get(), request, &response).ok());
    return response;
  }

  static grpc::Status Backup(const ServerProcess& server, Client& c,
                             const std::string& directory,
                             cohortd::v1::BackupResponse* response,
                             const std::string& token = "") {
    cohortd::v1::BackupRequest request;
    request.set_directory(directory);
    auto context = AuthContext(token.empty() ? server.tokens().admin : token);
    return c.admin->Backup(context.get(), request, response);
  }
};

TEST_F(BackupRestoreTest, RoundTripKeepsCachedAnswersBudgetsAndAudit) {
  const std::string dir_a = MakeTempDir();
  ServerProcess a(dir_a);
  ASSERT_OK(a.Start());
  Client ca = Connect(a);
  PushPopulation(a, ca);
  const cohortd::v1::AggregateResponse occupation =
      Query(a, ca, ByOccupation());
  const cohortd::v1::AggregateResponse work_mode = Query(a, ca, ByWorkMode());
  ASSERT_FALSE(occupation.from_cache());
  ASSERT_GT(occupation.cohorts_size(), 0);
  ASSERT_TRUE(Query(a, ca, ByOccupation()).from_cache());
  const cohortd::v1::Budget budget = Budget(a, ca);
  ASSERT_GT(budget.spent().rho(), 0);
  const cohortd::v1::ListAuditResponse audit = Audit(a, ca);
  ASSERT_TRUE(audit.chain_valid());
  // Ours, besides the shipped config's publications.
  ASSERT_GE(audit.total_entries(), 2);

  const std::string backup = dir_a + "/backup";
  cohortd::v1::BackupResponse backed_up;
  const grpc::Status s = Backup(a, ca, backup, &backed_up);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(backed_up.directory(), backup);
  EXPECT_GT(backed_up.bytes(), 0);

  // Queries after the backup are not in it: this one is charged on A only.
  ASSERT_FALSE(Query(a, ca,
                     [] {
                       auto r = ByWorkMode();
                       r.set_epsilon(0.25);
                       return r;
                     }())
                   .from_cache());

  // The key is in no file of the backup, raw or hex.
  const std::string key = ReadFile(dir_a + "/pseudonymization.key");
  ASSERT_EQ(key.size(), 32u);
  const std::string key_hex = absl::BytesToHexString(key);
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(backup)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    const std::string content = ReadFile(entry.path().string());
    EXPECT_EQ(content.find(key), std::string::npos) << entry.path();
    EXPECT_EQ(content.find(key_hex), std::string::npos) << entry.path();
  }
  EXPECT_GT(files, 0);

  // Restore into a fresh server folder, with the key kept beside the
  // backup (README "Backup and restore").
  const std::string dir_b = MakeTempDir();
  ServerProcess b(dir_b);
  fs::copy_file(dir_a + "/pseudonymization.key",
                dir_b + "/pseudonymization.key");
  fs::permissions(dir_b + "/pseudonymization.key",
                  fs::perms::owner_read | fs::perms::owner_write);
  std::string output;
  ASSERT_EQ(RunRestore(dir_b, backup, &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("restored"));
  // A second restore would overwrite: refused.
  EXPECT_EQ(RunRestore(dir_b, backup, &output), 1) << output;
  EXPECT_THAT(output, HasSubstr("not empty"));

  ASSERT_OK(a.Stop());
  ASSERT_OK(b.Start());
  Client cb = Connect(b);
  // Budgets and audit log first, before B releases anything.
  EXPECT_TRUE(MessageDifferencer::Equals(Budget(b, cb), budget))
      << Budget(b, cb).DebugString() << " vs " << budget.DebugString();
  const cohortd::v1::ListAuditResponse restored_audit = Audit(b, cb);
  EXPECT_TRUE(restored_audit.chain_valid()) << restored_audit.chain_error();
  // Every entry written before the backup is there, hash for hash (a
  // publication may have released on A between the listing and the
  // backup, or on B since, so B may have more).
  ASSERT_GE(restored_audit.entries_size(), audit.entries_size());
  for (int i = 0; i < audit.entries_size(); ++i) {
    EXPECT_EQ(restored_audit.entries(i).hash(), audit.entries(i).hash()) << i;
  }
  int analyst_entries = 0;
  for (const auto& entry : restored_audit.entries()) {
    if (entry.principal() != "test-analyst") continue;
    ++analyst_entries;
    EXPECT_TRUE(entry.release_id() == occupation.release_id() ||
                entry.release_id() == work_mode.release_id())
        << entry.release_id();
  }
  // Two releases and the audited cache hit; the release charged on A after
  // the backup is not in it.
  EXPECT_EQ(analyst_entries, 3);

  // The backup holds the sealed index with its snapshot id (query/
  // sealed_index.h), so B serves A's snapshot: the same questions are
  // answered from the cache, identically, and charge nothing.
  for (const auto& [request, original] :
       {std::make_pair(ByOccupation(), occupation),
        std::make_pair(ByWorkMode(), work_mode)}) {
    const cohortd::v1::AggregateResponse again = Query(b, cb, request);
    EXPECT_TRUE(again.from_cache());
    EXPECT_EQ(again.release_id(), original.release_id());
    EXPECT_EQ(again.data_as_of().seconds(), original.data_as_of().seconds());
    EXPECT_EQ(again.data_as_of().nanos(), original.data_as_of().nanos());
    EXPECT_EQ(Keys(again), Keys(original));
    ASSERT_EQ(again.cohorts_size(), original.cohorts_size());
    for (int i = 0; i < original.cohorts_size(); ++i) {
      ASSERT_EQ(again.cohorts(i).estimates_size(),
                original.cohorts(i).estimates_size());
      for (int e = 0; e < original.cohorts(i).estimates_size(); ++e) {
        EXPECT_EQ(again.cohorts(i).estimates(e).value(),
                  original.cohorts(i).estimates(e).value());
      }
    }
    EXPECT_EQ(again.cost().rho(), 0);
  }
  // Cache hits are free: the budgets are still those of the backup.
  EXPECT_TRUE(MessageDifferencer::Equals(Budget(b, cb), budget))
      << Budget(b, cb).DebugString() << " vs " << budget.DebugString();
  ASSERT_OK(b.Stop());
}

TEST_F(BackupRestoreTest, BackupRefusesBadFoldersAndNonAdmins) {
  const std::string dir = MakeTempDir();
  ServerProcess server(dir);
  ASSERT_OK(server.Start());
  Client c = Connect(server);
  cohortd::v1::BackupResponse response;
  fs::create_directories(dir + "/full");
  std::ofstream(dir + "/full/keep") << "x";
  grpc::Status s = Backup(server, c, dir + "/full", &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << s.error_message();
  EXPECT_TRUE(fs::exists(dir + "/full/keep"));
  s = Backup(server, c, "relative/backup", &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = Backup(server, c, "", &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = Backup(server, c, dir + "/b", &response, server.tokens().analyst);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_FALSE(fs::exists(dir + "/b"));
  ASSERT_OK(server.Stop());
}

TEST_F(BackupRestoreTest, CohortctlAdminBackupWithTheAdminTokenVariable) {
  const std::string dir = MakeTempDir();
  ServerProcess server(dir);
  ASSERT_OK(server.Start());
  std::stringstream in, out, err;
  const std::string admin = server.tokens().admin;
  auto env = [admin](absl::string_view name) -> std::optional<std::string> {
    if (name == "COHORTD_ADMIN_TOKEN") return admin;
    return std::nullopt;
  };
  const int code =
      cohortctl::RunInProcess({"--target", server.address(), "admin", "backup",
                               "--directory", dir + "/via-cohortctl"},
                              &in, &out, &err, env);
  EXPECT_EQ(code, 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("backup written to " + dir +
                                   "/via-cohortctl on the server"));
  EXPECT_TRUE(fs::exists(dir + "/via-cohortctl"));
  // No --directory: a usage error, nothing sent.
  EXPECT_EQ(
      cohortctl::RunInProcess({"--target", server.address(), "admin", "backup"},
                              &in, &out, &err, env),
      2);
  EXPECT_THAT(err.str(), HasSubstr("--directory is required"));
  ASSERT_OK(server.Stop());
}

}  // namespace
}  // namespace cohortd::testing
