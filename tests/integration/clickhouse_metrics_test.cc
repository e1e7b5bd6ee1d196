// The ClickHouse backend's operator series on the real binary (issue 10,
// item 6): cohortd_clickhouse_outbox_batches/_outbox_bytes/_errors_total/
// _outbox_refusals_total exist from the start, the push-down histogram
// from the first query, and all of them move with an outage; they are
// served on operator_metrics_listen only, never on the dashboards'
// metrics_listen (invariant 1: they depend on records), and each family is
// listed as operator-only in tests/deploy/lint_deploy.py, which keeps the
// dashboards' panels and Prometheus away from it. Skipped only when
// clickhouse-server is not installed.
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/backend/clickhouse_server.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

using ::testing::IsSupersetOf;

constexpr int64_t kJan2026 = 1767225600;

// Families (names before '{' or ' ') of every sample starting with prefix.
std::set<std::string> Families(const std::string& exposition,
                               const std::string& prefix) {
  std::set<std::string> out;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::StartsWith(line, prefix)) continue;
    std::string name(line.substr(0, line.find_first_of("{ ")));
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (absl::EndsWith(name, suffix) &&
          absl::StartsWith(name, "cohortd_clickhouse_pushdown_seconds")) {
        name = name.substr(0, name.size() - strlen(suffix));
      }
    }
    out.insert(name);
  }
  return out;
}

// The value of the first sample of `series` (name with labels); -1 if absent.
double Sample(const std::string& exposition, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
  }
  return -1;
}

// The Python set literal NAME = {...} of lint_deploy.py, as its strings.
std::set<std::string> LintSet(const std::string& name) {
  std::ifstream in(std::string(COHORTD_SOURCE_DIR) +
                   "/tests/deploy/lint_deploy.py");
  const std::string text((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  const size_t start = text.find("\n" + name + " = {");
  const size_t end = text.find("\n}", start);
  std::set<std::string> out;
  if (start == std::string::npos || end == std::string::npos) return out;
  for (absl::string_view line :
       absl::StrSplit(text.substr(start, end - start), '\n')) {
    const size_t open = line.find('"');
    const size_t close = line.find('"', open + 1);
    if (open != absl::string_view::npos && close != absl::string_view::npos) {
      out.insert(std::string(line.substr(open + 1, close - open - 1)));
    }
  }
  return out;
}

class ClickHouseMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ClickHouseServerBinary().empty()) {
      GTEST_SKIP() << "clickhouse-server is not installed (scripts/setup "
                      "installs Debian's clickhouse-server)";
    }
    ASSERT_OK_AND_ASSIGN(ch_, ClickHouseServer::Start());
    // One batch fills the outbox, so an outage refuses the next push.
    server_ = std::make_unique<ServerProcess>(
        MakeTempDir(),
        absl::StrCat("storage:\n  engine: clickhouse\n  clickhouse:\n",
                     "    url: ", ch_->url(),
                     "\n    database: metrics\n    max_outbox_bytes: 1\n"));
    server_->DropPublications();
    ASSERT_OK(server_->Start());
    ingest_ = cohortd::v1::Ingest::NewStub(server_->Channel());
    query_ = cohortd::v1::Query::NewStub(server_->Channel());
    admin_ = cohortd::v1::Admin::NewStub(server_->Channel());
  }

  std::string Operator() {
    const HttpResponse r = CurlGet(absl::StrCat(
        "http://127.0.0.1:", server_->operator_metrics_port(), "/metrics"));
    EXPECT_EQ(r.code, 200);
    return r.body;
  }
  std::string Dashboards() {
    const HttpResponse r = CurlGet(
        absl::StrCat("http://127.0.0.1:", server_->metrics_port(), "/metrics"));
    EXPECT_EQ(r.code, 200);
    return r.body;
  }

  grpc::Status Push(const std::string& tag, int accounts) {
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    for (int a = 0; a < accounts; ++a) {
      auto* obs = request.add_observations();
      obs->set_session_id(absl::StrCat(tag, "-", a));
      obs->set_account_id(absl::StrCat("acct-", a));
      obs->mutable_session_start()->set_seconds(kJan2026 + a);
      obs->set_source("test@1");
      (*obs->mutable_labels())["work_mode"] = a % 2 ? "fix" : "build";
    }
    cohortd::v1::PushResponse response;
    auto context = AuthContext(server_->tokens().ingest);
    return ingest_->Push(context.get(), request, &response);
  }

  std::unique_ptr<ClickHouseServer> ch_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<cohortd::v1::Ingest::Stub> ingest_;
  std::unique_ptr<cohortd::v1::Query::Stub> query_;
  std::unique_ptr<cohortd::v1::Admin::Stub> admin_;
};

TEST_F(ClickHouseMetricsTest, BackendSeriesAreOperatorOnly) {
  // From the start, at zero.
  std::string op = Operator();
  EXPECT_EQ(Sample(op, "cohortd_clickhouse_outbox_batches"), 0);
  EXPECT_EQ(Sample(op, "cohortd_clickhouse_outbox_bytes"), 0);
  EXPECT_EQ(Sample(op, "cohortd_clickhouse_errors_total"), 0);
  EXPECT_EQ(Sample(op, "cohortd_clickhouse_outbox_refusals_total"), 0);

  // A query brings the push-down histogram.
  ASSERT_TRUE(Push("a", 300).ok());
  {
    cohortd::v1::SealSnapshotRequest request;
    request.set_dataset("sessions");
    cohortd::v1::SealSnapshotResponse response;
    auto context = AuthContext(server_->tokens().admin);
    ASSERT_TRUE(admin_->SealSnapshot(context.get(), request, &response).ok());
  }
  cohortd::v1::AggregateRequest request;
  request.set_dataset("sessions");
  request.add_group_by("work_mode");
  request.set_epsilon(1);
  request.add_metrics()->set_kind(cohortd::v1::Metric::SESSIONS);
  cohortd::v1::AggregateResponse response;
  auto context = AuthContext(server_->tokens().analyst);
  const grpc::Status s = query_->Aggregate(context.get(), request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  op = Operator();
  EXPECT_EQ(Sample(op,
                   "cohortd_clickhouse_pushdown_seconds_count{dataset="
                   "\"sessions\"}"),
            1);

  // An outage: the batch is queued, the next push refused (the bound is
  // one byte), the failed inserts counted.
  ch_->Kill();
  ASSERT_TRUE(Push("b", 20).ok());
  const grpc::Status refused = Push("c", 20);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE)
      << refused.error_message();
  // Health, which checks the outbox every 200 ms meanwhile, counts no
  // refusal of its own.
  absl::SleepFor(absl::Seconds(1));
  op = Operator();
  EXPECT_EQ(Sample(op, "cohortd_clickhouse_outbox_batches"), 1);
  EXPECT_GT(Sample(op, "cohortd_clickhouse_outbox_bytes"), 0);
  EXPECT_GE(Sample(op, "cohortd_clickhouse_errors_total"), 1);
  EXPECT_EQ(Sample(op, "cohortd_clickhouse_outbox_refusals_total"), 1);

  // Every family the operators' endpoint shows is operator-only for the
  // deploy lint, and none is on the dashboards' endpoint.
  const std::set<std::string> families = Families(op, "cohortd_clickhouse_");
  EXPECT_EQ(families.size(), 5u);
  EXPECT_THAT(LintSet("OPERATOR_METRICS"), IsSupersetOf(families));
  const std::set<std::string> dashboard_set = LintSet("DASHBOARD_METRICS");
  ASSERT_FALSE(dashboard_set.empty());
  for (const std::string& family : families) {
    EXPECT_EQ(dashboard_set.count(family), 0u) << family;
  }
  EXPECT_FALSE(absl::StrContains(Dashboards(), "clickhouse"));
}

}  // namespace
}  // namespace cohortd::testing
