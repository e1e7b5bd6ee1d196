// The backfill at start (server/backend/clickhouse_backfill.h) against a
// real clickhouse-server: a store written without ClickHouse (the embedded
// engine) has every session shipped once, merged as ingest merged it, in
// the start snapshot; the marker stops a second run for the same
// ClickHouse table and not for another; a ClickHouse that fails mid-way
// leaves no marker, so the next start ships everything. Skipped only when
// clickhouse-server is absent.
#include "server/backend/clickhouse_backfill.h"

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/backend/clickhouse_backend.h"
#include "server/common/clock.h"
#include "server/crypto/pseudonymizer.h"
#include "server/engine/query_plan.h"
#include "server/index/columnar_index.h"
#include "server/index/snapshot.h"
#include "server/ingest/ingestor.h"
#include "server/metrics/metrics.h"
#include "server/storage/mem_store.h"
#include "tests/backend/clickhouse_server.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

constexpr int64_t kJan2026 = 1767225600;

// `sessions` sessions of 7 accounts from `source`, work_mode `mode`.
cohortd::v1::PushRequest Request(int sessions, const std::string& source,
                                 const std::string& mode) {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int i = 0; i < sessions; ++i) {
    cohortd::v1::Observation* obs = request.add_observations();
    obs->set_session_id(absl::StrCat("s", i));
    obs->set_account_id(absl::StrCat("a", i % 7));
    obs->mutable_session_start()->set_seconds(kJan2026 + i);
    obs->set_source(source);
    (*obs->mutable_labels())["work_mode"] = mode;
  }
  return request;
}

class ClickHouseBackfillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::ClickHouseServerBinary().empty()) {
      GTEST_SKIP() << "clickhouse-server is not installed (scripts/setup "
                      "installs Debian's clickhouse-server)";
    }
    ASSERT_OK_AND_ASSIGN(server_, testing::ClickHouseServer::Start());
    config_ = testing::TestConfig();
    ASSERT_OK_AND_ASSIGN(pseudonymizer_,
                         Pseudonymizer::Create(std::string(32, 'k')));
    metrics_ = NewInMemoryMetrics();
    options_.endpoint.url = server_->url();
    options_.database = "backfill";
    char dir[] = "/tmp/cohortd-backfill-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    marker_ = dir_ + "/clickhouse-backfill";
    // The embedded engine's store: no ClickHouse listener. Two sources per
    // session, the later push replacing one label, so the shipped view
    // must be the merged one.
    ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<Ingestor> ingestor,
        Ingestor::Create(&config_, &store_, pseudonymizer_.get(),
                         metrics_.get(), /*listener=*/nullptr));
    ASSERT_OK(
        ingestor->Push(Request(30, "work_mode_classifier@3", "fix")).status());
    ASSERT_OK(ingestor->Push(Request(30, "work_mode_classifier@4", "build"))
                  .status());
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  // Sessions of dataset "sessions" in ClickHouse whose latest work_mode is
  // `mode`.
  int64_t WithMode(const ClickHouseBackend& backend, const std::string& mode) {
    absl::StatusOr<std::string> out = backend.client().Execute(absl::StrCat(
        "SELECT count() FROM (SELECT session, argMax(label, version) AS l "
        "FROM ",
        backend.table(),
        " WHERE dataset = 'sessions' AND name = 'work_mode' GROUP BY "
        "session) WHERE l = '",
        mode, "' FORMAT TabSeparated"));
    EXPECT_OK(out);
    int64_t n = -1;
    EXPECT_TRUE(
        absl::SimpleAtoi(absl::StripAsciiWhitespace(out.value_or("")), &n));
    return n;
  }

  std::unique_ptr<testing::ClickHouseServer> server_;
  Config config_;
  MemStore store_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<InMemoryMetrics> metrics_;
  ClickHouseOptions options_;
  std::string dir_;
  std::string marker_;
};

TEST_F(ClickHouseBackfillTest, ShipsTheMergedStoreOnceIntoTheStartSnapshot) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ClickHouseBackend> backend,
                       ClickHouseBackend::Create(options_));
  ASSERT_OK_AND_ASSIGN(int64_t shipped,
                       BackfillClickHouse(config_, &store_, backend.get(),
                                          marker_, /*batch_sessions=*/8));
  EXPECT_EQ(shipped, 30);
  EXPECT_EQ(WithMode(*backend, "build"), 30);  // the merged view
  EXPECT_EQ(WithMode(*backend, "fix"), 0);

  // The start snapshot (observed after the backfill, as the server does)
  // reads every shipped session.
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ColumnarIndex> index,
      ColumnarIndex::Build(config_, &store_, ColumnarIndex::Options()));
  FakeClock clock(absl::FromUnixSeconds(kJan2026 + 3600));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SnapshotIndex> snapshots,
                       SnapshotIndex::Create(&config_, index.get(), &clock));
  snapshots->SetSealObserver(backend.get());
  cohortd::v1::AggregateRequest request;
  request.set_dataset("sessions");
  request.set_epsilon(1);
  request.add_metrics()->set_kind(cohortd::v1::Metric::SESSIONS);
  ASSERT_OK_AND_ASSIGN(QueryPlan plan, PlanQuery(config_, request));
  ASSERT_OK_AND_ASSIGN(SnapshotRead read, snapshots->Read("sessions"));
  ASSERT_OK_AND_ASSIGN(
      BoundedStatistics stats,
      backend->ComputeSealed(plan, "k3y-0f-16-bytes!", read.snapshot.id));
  int64_t sessions = 0;
  for (const CohortStatistics& c : stats.cohorts) sessions += c.sessions;
  EXPECT_EQ(sessions, 30);

  // Done for this table: not again. Another database: again.
  EXPECT_EQ(
      BackfillClickHouse(config_, &store_, backend.get(), marker_).value_or(-1),
      0);
  options_.database = "elsewhere";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ClickHouseBackend> other,
                       ClickHouseBackend::Create(options_));
  EXPECT_EQ(
      BackfillClickHouse(config_, &store_, other.get(), marker_).value_or(-1),
      30);
}

TEST_F(ClickHouseBackfillTest, AFailedBackfillIsRedoneAtTheNextStart) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ClickHouseBackend> backend,
                       ClickHouseBackend::Create(options_));
  server_->Kill();
  EXPECT_FALSE(
      BackfillClickHouse(config_, &store_, backend.get(), marker_).ok());
  EXPECT_FALSE(std::filesystem::exists(marker_));
  ASSERT_OK(server_->Restart());
  EXPECT_EQ(
      BackfillClickHouse(config_, &store_, backend.get(), marker_).value_or(-1),
      30);
  EXPECT_EQ(WithMode(*backend, "build"), 30);
}

}  // namespace
}  // namespace cohortd
