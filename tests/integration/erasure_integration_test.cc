// Admin.DeleteAccount through the real binary: answers after the next seal
// (Admin.SealSnapshot here) reflect the deletion (a cohort whose every
// account was erased is no longer released, and no pre-erasure release is
// served from the cache), the deletion survives a restart, every erasure is in
// the audit log with its count and without the account id, and `cohortctl admin
// delete-account` takes the admin token from $COHORTD_ADMIN_TOKEN.
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cohortctl/run_in_process.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kJan2026 = 1767225600;
constexpr int kAccounts = 150;  // per occupation; 2 sessions each

std::string Account(const std::string& occupation, int a) {
  return absl::StrCat("raw-account-", occupation, "-", a);
}

class ErasureIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    server_ = std::make_unique<ServerProcess>(dir_);
    ASSERT_OK(server_->Start());
    Connect();
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    int serial = 0;
    for (const char* occupation : {"legal", "management"}) {
      for (int a = 0; a < kAccounts; ++a) {
        for (int s = 0; s < 2; ++s) {
          auto* obs = request.add_observations();
          obs->set_session_id(absl::StrCat(occupation, a, "-s", s));
          obs->set_account_id(Account(occupation, a));
          obs->mutable_session_start()->set_seconds(kJan2026 + serial++ * 60);
          obs->set_source("test_classifier@1");
          (*obs->mutable_labels())["occupation"] = occupation;
        }
      }
    }
    cohortd::v1::PushResponse response;
    auto context = AuthContext(server_->tokens().ingest);
    ASSERT_TRUE(ingest_->Push(context.get(), request, &response).ok());
    ASSERT_EQ(response.accepted(), 4 * kAccounts);
    Seal(server_.get(), admin_.get());
  }
  // Admin.SealSnapshot of every dataset: queries see every change so far
  // (pushes and deletions), as at a scheduled seal.
  static void Seal(ServerProcess* server, cohortd::v1::Admin::Stub* admin) {
    cohortd::v1::SealSnapshotRequest request;
    cohortd::v1::SealSnapshotResponse response;
    auto context = AuthContext(server->tokens().admin);
    const grpc::Status s =
        admin->SealSnapshot(context.get(), request, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  void Connect() {
    ingest_ = cohortd::v1::Ingest::NewStub(server_->Channel());
    query_ = cohortd::v1::Query::NewStub(server_->Channel());
    admin_ = cohortd::v1::Admin::NewStub(server_->Channel());
  }

  static cohortd::v1::AggregateRequest ByOccupation() {
    cohortd::v1::AggregateRequest request;
    request.set_dataset("sessions");
    request.add_group_by("occupation");
    request.set_epsilon(2.0);
    request.add_metrics()->set_kind(cohortd::v1::Metric::SESSIONS);
    return request;
  }
  cohortd::v1::AggregateResponse Query() {
    cohortd::v1::AggregateResponse response;
    auto context = AuthContext(server_->tokens().analyst);
    const grpc::Status s =
        query_->Aggregate(context.get(), ByOccupation(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }
  static std::set<std::string> Occupations(
      const cohortd::v1::AggregateResponse& response) {
    std::set<std::string> out;
    for (const auto& c : response.cohorts())
      out.insert(c.key().at("occupation"));
    return out;
  }
  grpc::Status Delete(const std::string& account,
                      cohortd::v1::DeleteAccountResponse* response,
                      const std::string& token = "",
                      const std::string& dataset = "sessions") {
    cohortd::v1::DeleteAccountRequest request;
    request.set_dataset(dataset);
    request.set_account_id(account);
    auto context = AuthContext(token.empty() ? server_->tokens().admin : token);
    return admin_->DeleteAccount(context.get(), request, response);
  }
  cohortd::v1::ListAuditResponse Audit() {
    cohortd::v1::ListAuditRequest request;
    request.set_limit(10000);
    cohortd::v1::ListAuditResponse response;
    auto context = AuthContext(server_->tokens().admin);
    EXPECT_TRUE(admin_->ListAudit(context.get(), request, &response).ok());
    return response;
  }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<cohortd::v1::Ingest::Stub> ingest_;
  std::unique_ptr<cohortd::v1::Query::Stub> query_;
  std::unique_ptr<cohortd::v1::Admin::Stub> admin_;
};

TEST_F(ErasureIntegrationTest, ErasedCohortDisappearsFromLaterAnswers) {
  const cohortd::v1::AggregateResponse before = Query();
  // 150 accounts at epsilon 2 are far above k and partition selection.
  ASSERT_EQ(Occupations(before),
            (std::set<std::string>{"legal", "management"}));

  for (int a = 0; a < kAccounts; ++a) {
    cohortd::v1::DeleteAccountResponse response;
    const grpc::Status s = Delete(Account("legal", a), &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(response.sessions_deleted(), 2) << a;
  }
  // Erasing again finds nothing, and says so.
  cohortd::v1::DeleteAccountResponse again;
  ASSERT_TRUE(Delete(Account("legal", 0), &again).ok());
  EXPECT_EQ(again.sessions_deleted(), 0);

  // Until the next seal, queries read the snapshot that still holds them.
  const cohortd::v1::AggregateResponse unsealed = Query();
  EXPECT_TRUE(unsealed.from_cache());
  EXPECT_EQ(unsealed.release_id(), before.release_id());

  // After the seal the same question is answered anew (a new snapshot),
  // and the erased cohort has no accounts left, so it is not released.
  Seal(server_.get(), admin_.get());
  const cohortd::v1::AggregateResponse after = Query();
  EXPECT_FALSE(after.from_cache());
  EXPECT_NE(after.release_id(), before.release_id());
  EXPECT_EQ(Occupations(after), std::set<std::string>{"management"});

  // Durable: a restart serves the sealed snapshot again (index/snapshot.h
  // "Restart"), which no longer holds them: the same release, from the
  // cache.
  ASSERT_OK(server_->Stop());
  ASSERT_OK(server_->Start());
  Connect();
  const cohortd::v1::AggregateResponse restarted = Query();
  EXPECT_TRUE(restarted.from_cache());
  EXPECT_EQ(restarted.release_id(), after.release_id());
  EXPECT_EQ(Occupations(restarted), std::set<std::string>{"management"});
  // And the next seal (the records, rebuilt after the restart) agrees.
  Seal(server_.get(), admin_.get());
  const cohortd::v1::AggregateResponse resealed = Query();
  EXPECT_FALSE(resealed.from_cache());
  EXPECT_EQ(Occupations(resealed), std::set<std::string>{"management"});

  // The audit log: 151 erasures (and the releases: ours and the shipped
  // config's publications'), chain valid, no raw id.
  const cohortd::v1::ListAuditResponse audit = Audit();
  EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
  int erasures = 0;
  int64_t erased_sessions = 0;
  for (const auto& entry : audit.entries()) {
    EXPECT_EQ(entry.DebugString().find("raw-account-"), std::string::npos);
    if (!entry.has_erasure()) continue;
    ++erasures;
    erased_sessions += entry.erasure().sessions_deleted();
    EXPECT_EQ(entry.principal(), "test-admin");
    EXPECT_EQ(entry.dataset(), "sessions");
    EXPECT_EQ(entry.erasure().reason(), "delete_account");
  }
  EXPECT_EQ(erasures, kAccounts + 1);
  EXPECT_EQ(erased_sessions, 2 * kAccounts);
  EXPECT_EQ(audit.total_entries(), audit.entries_size());
  // The server log says how many, never which account.
  ASSERT_OK(server_->Stop());
  std::ifstream log(dir_ + "/cohortd.log");
  const std::string log_text((std::istreambuf_iterator<char>(log)),
                             std::istreambuf_iterator<char>());
  EXPECT_THAT(log_text, HasSubstr("erased one account: 2 session(s)"));
  EXPECT_EQ(log_text.find("raw-account-"), std::string::npos);
}

TEST_F(ErasureIntegrationTest, BadRequestsAndRoles) {
  cohortd::v1::DeleteAccountResponse response;
  EXPECT_EQ(Delete("", &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status s = Delete(Account("legal", 1), &response, "", "nope");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("sessions"));
  EXPECT_EQ(Delete(Account("legal", 1), &response, server_->tokens().analyst)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Delete(Account("legal", 1), &response, "wrong-token").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Nothing was deleted by any of them.
  ASSERT_TRUE(Delete(Account("legal", 1), &response).ok());
  EXPECT_EQ(response.sessions_deleted(), 2);
}

TEST_F(ErasureIntegrationTest, CohortctlAdminDeleteAccount) {
  std::stringstream in, out, err;
  const std::string admin = server_->tokens().admin;
  auto env = [admin](absl::string_view name) -> std::optional<std::string> {
    if (name == "COHORTD_ADMIN_TOKEN") return admin;
    return std::nullopt;
  };
  EXPECT_EQ(cohortctl::RunInProcess({"--target", server_->address(), "admin",
                                     "delete-account", "--dataset", "sessions",
                                     "--account", Account("management", 7)},
                                    &in, &out, &err, env),
            0)
      << err.str();
  EXPECT_EQ(out.str(), "deleted 2 session(s) of the account (audit-logged)\n");
  EXPECT_EQ(cohortctl::RunInProcess(
                {"--target", server_->address(), "admin", "delete-account",
                 "--account", Account("management", 8), "--format", "json"},
                &in, &out, &err, env),
            0)
      << err.str();
  EXPECT_THAT(out.str(),
              ::testing::ContainsRegex("\"sessionsDeleted\": *\"2\""));
  // Without --account: a usage error; without a token: too.
  EXPECT_EQ(cohortctl::RunInProcess(
                {"--target", server_->address(), "admin", "delete-account"},
                &in, &out, &err, env),
            2);
  EXPECT_THAT(err.str(), HasSubstr("--account is required"));
  EXPECT_EQ(cohortctl::RunInProcess({"--target", server_->address(), "admin",
                                     "delete-account", "--account", "x"},
                                    &in, &out, &err),
            2);
  EXPECT_THAT(err.str(), HasSubstr("COHORTD_ADMIN_TOKEN"));
}

// The retention job in the real binary, on the real clock: with
// `retention: 400d` and a 1 s interval, sessions from 2020 are deleted
// (and audited under cohortd/retention) while recent ones stay. The test
// waits for the audit entry (an event), then checks the answers.
TEST(RetentionIntegrationTest, OldSessionsAreDeletedAndAudited) {
  const std::string dir = MakeTempDir();
  ServerProcess server(
      dir, "  retention_interval: 1s\n",
      {{"  - name: sessions\n", "  - name: sessions\n    retention: 400d\n"}});
  ASSERT_OK(server.Start());
  auto ingest = cohortd::v1::Ingest::NewStub(server.Channel());
  auto query = cohortd::v1::Query::NewStub(server.Channel());
  auto admin = cohortd::v1::Admin::NewStub(server.Channel());
  constexpr int64_t kJan2020 = 1577836800;
  const int64_t recent = absl::ToUnixSeconds(absl::Now()) - 86400;
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (const char* occupation : {"legal", "management"}) {
    for (int a = 0; a < kAccounts; ++a) {
      auto* obs = request.add_observations();
      obs->set_session_id(absl::StrCat(occupation, a));
      obs->set_account_id(Account(occupation, a));
      obs->mutable_session_start()->set_seconds(
          std::string(occupation) == "legal" ? kJan2020 + a * 60 : recent);
      obs->set_source("test_classifier@1");
      (*obs->mutable_labels())["occupation"] = occupation;
    }
  }
  cohortd::v1::PushResponse pushed;
  auto context = AuthContext(server.tokens().ingest);
  ASSERT_TRUE(ingest->Push(context.get(), request, &pushed).ok());
  ASSERT_EQ(pushed.accepted(), 2 * kAccounts);

  int64_t retained_away = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (retained_away < kAccounts && absl::Now() < deadline) {
    cohortd::v1::ListAuditRequest list;
    list.set_limit(10000);
    cohortd::v1::ListAuditResponse audit;
    auto admin_context = AuthContext(server.tokens().admin);
    ASSERT_TRUE(admin->ListAudit(admin_context.get(), list, &audit).ok());
    EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
    retained_away = 0;
    for (const auto& entry : audit.entries()) {
      if (!entry.has_erasure()) continue;
      EXPECT_EQ(entry.principal(), "cohortd/retention");
      EXPECT_EQ(entry.erasure().reason(), "retention");
      retained_away += entry.erasure().sessions_deleted();
    }
    if (retained_away < kAccounts) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(retained_away, kAccounts);
  // The deletions are visible at the next seal.
  {
    cohortd::v1::SealSnapshotRequest seal;
    cohortd::v1::SealSnapshotResponse sealed;
    auto admin_context = AuthContext(server.tokens().admin);
    const grpc::Status s =
        admin->SealSnapshot(admin_context.get(), seal, &sealed);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  cohortd::v1::AggregateRequest by_occupation;
  by_occupation.set_dataset("sessions");
  by_occupation.add_group_by("occupation");
  by_occupation.set_epsilon(2.0);
  by_occupation.add_metrics()->set_kind(cohortd::v1::Metric::SESSIONS);
  cohortd::v1::AggregateResponse response;
  auto analyst = AuthContext(server.tokens().analyst);
  ASSERT_TRUE(query->Aggregate(analyst.get(), by_occupation, &response).ok());
  std::set<std::string> released;
  for (const auto& c : response.cohorts()) {
    released.insert(c.key().at("occupation"));
  }
  EXPECT_EQ(released, std::set<std::string>{"management"});
  ASSERT_OK(server.Stop());
  std::ifstream log(dir + "/cohortd.log");
  const std::string log_text((std::istreambuf_iterator<char>(log)),
                             std::istreambuf_iterator<char>());
  EXPECT_THAT(log_text,
              HasSubstr(absl::StrCat("dataset sessions: deleted ", kAccounts,
                                     " session(s) that started before")));
  EXPECT_EQ(log_text.find("raw-account-"), std::string::npos);
}

}  // namespace
}  // namespace cohortd::testing
