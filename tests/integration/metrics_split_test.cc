// The two metrics endpoints of issue 9 on the real binary: the dashboards'
// metrics_listen shows nothing that moves with the records (a push of a new
// account with a new open-domain value leaves its scrape byte-identical),
// while operator_metrics_listen has the ingest series and, when it must,
// refuses scrapes without an admin token.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/exposition.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kJan2026 = 1767225600;

std::string MetricsUrl(int port) {
  return absl::StrCat("http://127.0.0.1:", port, "/metrics");
}

// Sessions of accounts `first`..`first + accounts - 1`, one topic each.
cohortd::v1::PushRequest Population(int first, int accounts,
                                    const std::string& topic_prefix) {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int a = first; a < first + accounts; ++a) {
    cohortd::v1::Observation* obs = request.add_observations();
    obs->set_session_id(absl::StrCat("s-", a));
    obs->set_account_id(absl::StrCat("acct-", a));
    obs->mutable_session_start()->set_seconds(kJan2026 + a * 60);
    obs->set_source("test@1");
    (*obs->mutable_labels())["work_mode"] = a % 2 ? "fix" : "build";
    (*obs->mutable_labels())["task_topic"] = absl::StrCat(topic_prefix, a % 3);
    (*obs->mutable_measures())["prompts"] = 3;
  }
  return request;
}

class MetricsSplitTest : public ::testing::Test {
 protected:
  void StartServer(const std::string& extra_server_yaml = "") {
    // Snapshots seal every second on the public schedule (no RPC, so no
    // dashboard series moves), and the index, hence its gauges, follows
    // the pushes within a second or two.
    server_ = std::make_unique<ServerProcess>(
        MakeTempDir(), "  snapshot_every: 1s\n" + extra_server_yaml);
    // No publication can run between two scrapes: the only dashboard
    // series that move with the data are then absent by construction.
    server_->DropPublications();
    ASSERT_OK(server_->Start());
    ASSERT_GT(server_->metrics_port(), 0);
    ASSERT_GT(server_->operator_metrics_port(), 0);
    ingest_ = cohortd::v1::Ingest::NewStub(server_->Channel());
    query_ = cohortd::v1::Query::NewStub(server_->Channel());
  }

  cohortd::v1::PushResponse Push(const cohortd::v1::PushRequest& request) {
    cohortd::v1::PushResponse response;
    auto context = AuthContext(server_->tokens().ingest);
    EXPECT_TRUE(ingest_->Push(context.get(), request, &response).ok());
    return response;
  }

  // Polls the operator endpoint (with `token`) until `series` has `value`,
  // i.e. until the periodic statistics caught up with the pushes.
  void WaitForOperatorSample(const std::string& series, double value,
                             const std::string& token = "") {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    std::string body;
    while (absl::Now() < deadline) {
      body = CurlGet(MetricsUrl(server_->operator_metrics_port()), token).body;
      if (ExpositionSample(body, series) == value) return;
      absl::SleepFor(absl::Milliseconds(100));
    }
    FAIL() << series << " never reached " << value << ":\n" << body;
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<cohortd::v1::Ingest::Stub> ingest_;
  std::unique_ptr<cohortd::v1::Query::Stub> query_;
};

TEST_F(MetricsSplitTest, DashboardScrapeIsByteIdenticalAcrossOneAccountsPush) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_EQ(Push(Population(0, 50, "topic-")).accepted(), 50);
  // Query-side calls, so the dashboard has RPC series to keep still.
  {
    cohortd::v1::GetBudgetRequest request;
    request.set_dataset("sessions");
    cohortd::v1::Budget budget;
    auto context = AuthContext(server_->tokens().analyst);
    ASSERT_TRUE(query_->GetBudget(context.get(), request, &budget).ok());
  }
  WaitForOperatorSample("cohortd_index_sessions{dataset=\"sessions\"}", 50);

  const std::string url = MetricsUrl(server_->metrics_port());
  const HttpResponse before = CurlGet(url);
  ASSERT_EQ(before.code, 200);
  EXPECT_THAT(before.body, HasSubstr("cohortd_build_info{"));
  EXPECT_THAT(before.body,
              HasSubstr("cohortd_rpc_requests_total{code=\"OK\",method="
                        "\"GetBudget\"} 1"));
  EXPECT_THAT(before.body, HasSubstr("cohortd_budget_remaining_epsilon{dataset="
                                     "\"sessions\",principal=\"*\"}"));

  // One account more, the neighbouring dataset: a new account, a task_topic
  // value never seen before (which grows the index's memory), and one
  // rejected observation.
  cohortd::v1::PushRequest neighbour = Population(1000, 1, "never-seen-");
  cohortd::v1::Observation bad = neighbour.observations(0);
  bad.set_session_id("s-1000-bad");
  (*bad.mutable_labels())["work_mode"] = "juggling";
  *neighbour.add_observations() = bad;
  const cohortd::v1::PushResponse pushed = Push(neighbour);
  ASSERT_EQ(pushed.accepted(), 1);
  ASSERT_EQ(pushed.rejected_size(), 1);
  // The record-derived statistics have been republished since the push.
  WaitForOperatorSample("cohortd_index_sessions{dataset=\"sessions\"}", 51);

  const HttpResponse after = CurlGet(url);
  ASSERT_EQ(after.code, 200);
  EXPECT_EQ(before.body, after.body);

  // The operator endpoint did see the push.
  const std::string operator_view =
      CurlGet(MetricsUrl(server_->operator_metrics_port())).body;
  EXPECT_EQ(
      ExpositionSample(operator_view,
                       "cohortd_ingest_observations_total{dataset=\"sessions\","
                       "outcome=\"accepted\"}"),
      51);
  EXPECT_THAT(operator_view, HasSubstr("cohortd_ingest_rejections_total{"));
}

TEST_F(MetricsSplitTest, DashboardHasNoRecordDerivedSeries) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_EQ(Push(Population(0, 20, "topic-")).accepted(), 20);
  WaitForOperatorSample("cohortd_index_sessions{dataset=\"sessions\"}", 20);
  const HttpResponse dashboard = CurlGet(MetricsUrl(server_->metrics_port()));
  ASSERT_EQ(dashboard.code, 200);
  for (const char* operator_only :
       {"cohortd_ingest_", "cohortd_index_", "cohortd_store_",
        "cohortd_query_execute_seconds", "cohortd_query_cache_hits_total",
        "method=\"Push\"", "method=\"PushStream\"", "topic-"}) {
    EXPECT_THAT(dashboard.body, Not(HasSubstr(operator_only)));
  }
}

TEST_F(MetricsSplitTest, OperatorEndpointServesIngestSeriesOnLoopback) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_EQ(Push(Population(0, 10, "topic-")).accepted(), 10);
  WaitForOperatorSample("cohortd_index_sessions{dataset=\"sessions\"}", 10);
  const HttpResponse scrape =
      CurlGet(MetricsUrl(server_->operator_metrics_port()));
  ASSERT_EQ(scrape.code, 200);
  EXPECT_EQ(
      ExpositionSample(scrape.body,
                       "cohortd_ingest_observations_total{dataset=\"sessions\","
                       "outcome=\"accepted\"}"),
      10);
  EXPECT_THAT(scrape.body,
              HasSubstr("cohortd_rpc_requests_total{code=\"OK\",method="
                        "\"Push\"} 1"));
  EXPECT_THAT(scrape.body, HasSubstr("cohortd_index_memory_bytes "));
  EXPECT_THAT(scrape.body,
              HasSubstr("cohortd_snapshot_buffer_bytes{dataset=\"sessions\"}"));
  EXPECT_THAT(scrape.body, HasSubstr("cohortd_store_live_data_bytes "));
  EXPECT_THAT(scrape.body,
              HasSubstr("cohortd_ingest_commit_duration_seconds_count"));
}

TEST_F(MetricsSplitTest, OperatorEndpointRequiresAnAdminTokenWhenConfigured) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer("  operator_metrics_require_token: true\n"));
  ASSERT_EQ(Push(Population(0, 5, "topic-")).accepted(), 5);
  const std::string url = MetricsUrl(server_->operator_metrics_port());

  const HttpResponse anonymous = CurlGet(url);
  EXPECT_EQ(anonymous.code, 401);
  EXPECT_THAT(anonymous.body, Not(HasSubstr("cohortd_")));
  const HttpResponse wrong = CurlGet(url, "not-a-token");
  EXPECT_EQ(wrong.code, 401);
  EXPECT_THAT(wrong.body, Not(HasSubstr("cohortd_")));
  const HttpResponse analyst = CurlGet(url, server_->tokens().analyst);
  EXPECT_EQ(analyst.code, 403);
  EXPECT_THAT(analyst.body, Not(HasSubstr("cohortd_")));
  const HttpResponse ingest = CurlGet(url, server_->tokens().ingest);
  EXPECT_EQ(ingest.code, 403);

  WaitForOperatorSample("cohortd_index_sessions{dataset=\"sessions\"}", 5,
                        server_->tokens().admin);
  const HttpResponse admin = CurlGet(url, server_->tokens().admin);
  EXPECT_EQ(admin.code, 200);
  EXPECT_THAT(admin.body, HasSubstr("cohortd_ingest_observations_total{"));

  // The dashboards' endpoint stays open: it holds nothing to protect.
  EXPECT_EQ(CurlGet(MetricsUrl(server_->metrics_port())).code, 200);
}

TEST_F(MetricsSplitTest, ServesOnlyGetAndHeadOfMetrics) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string base =
      absl::StrCat("http://127.0.0.1:", server_->metrics_port());
  EXPECT_EQ(CurlGet(base + "/metrics/extra").code, 404);
  EXPECT_EQ(CurlGet(base + "/").code, 404);
  const std::string command = absl::StrCat(
      "curl -s -o /dev/null -w '%{http_code}' -X POST ", base, "/metrics");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char code[8] = "";
  ASSERT_NE(fgets(code, sizeof(code), pipe), nullptr);
  pclose(pipe);
  EXPECT_STREQ(code, "405");
}

TEST_F(MetricsSplitTest, StopsCleanlyWithBothEndpoints) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_EQ(CurlGet(MetricsUrl(server_->metrics_port())).code, 200);
  ASSERT_OK_AND_ASSIGN(int exit_code, server_->Stop());
  EXPECT_EQ(exit_code, 0);
  EXPECT_EQ(CurlGet(MetricsUrl(server_->metrics_port())).code, 0);
  EXPECT_EQ(CurlGet(MetricsUrl(server_->operator_metrics_port())).code, 0);
}

}  // namespace
}  // namespace cohortd::testing
