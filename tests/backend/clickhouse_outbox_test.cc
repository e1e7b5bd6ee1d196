// The ClickHouse backend's outbox against a real clickhouse-server and a
// real Ingestor (issue 10's correctness gaps): every acknowledged
// observation reaches ClickHouse, also one whose first commit reached
// cohortd's store but never the outbox. Skipped, with the reason, only when
// clickhouse-server is absent.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/clickhouse_backend.h"
#include "server/backend/tee_listener.h"
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

using ::cohortd::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int64_t kJan2026 = 1767225600;

cohortd::v1::PushRequest Request(int sessions) {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int i = 0; i < sessions; ++i) {
    cohortd::v1::Observation* obs = request.add_observations();
    obs->set_session_id(absl::StrCat("s", i));
    obs->set_account_id(absl::StrCat("a", i % 7));
    obs->mutable_session_start()->set_seconds(kJan2026 + i);
    obs->set_source("work_mode_classifier@3");
    (*obs->mutable_labels())["work_mode"] = "fix";
  }
  return request;
}

class ClickHouseOutboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::ClickHouseServerBinary().empty()) return;
    auto server = testing::ClickHouseServer::Start();
    ASSERT_OK(server);
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    if (testing::ClickHouseServerBinary().empty()) {
      GTEST_SKIP() << "clickhouse-server is not installed (scripts/setup "
                      "installs Debian's clickhouse-server)";
    }
    ASSERT_NE(server_, nullptr);
    config_ = testing::TestConfig();
    ASSERT_OK_AND_ASSIGN(pseudonymizer_,
                         Pseudonymizer::Create(std::string(32, 'k')));
    metrics_ = NewInMemoryMetrics();
    options_.endpoint.url = server_->url();
    options_.database = absl::StrCat(
        "ob_", ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }

  // Live sessions of dataset "sessions" as ClickHouse holds them.
  int64_t LiveSessions(const ClickHouseBackend& backend) {
    absl::StatusOr<std::string> out = backend.client().Execute(absl::StrCat(
        "SELECT count() FROM (SELECT session, argMax(present, version) AS p "
        "FROM ",
        backend.table(),
        " WHERE dataset = 'sessions' AND name = '' GROUP BY session) "
        "WHERE p = 1 FORMAT TabSeparated"));
    EXPECT_OK(out);
    int64_t n = -1;
    EXPECT_TRUE(
        absl::SimpleAtoi(absl::StripAsciiWhitespace(out.value_or("")), &n));
    return n;
  }

  static testing::ClickHouseServer* server_;
  Config config_;
  MemStore store_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<InMemoryMetrics> metrics_;
  ClickHouseOptions options_;
};

testing::ClickHouseServer* ClickHouseOutboxTest::server_ = nullptr;

// Invariant 5: a push whose commit reached cohortd's store but not the
// outbox (the process died in between, so it was never acknowledged) is
// retried unchanged by the client; that retry must bring it to ClickHouse.
TEST_F(ClickHouseOutboxTest, UnchangedRetryOfAnUnshippedCommitReachesIt) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ClickHouseBackend> backend,
                       ClickHouseBackend::Create(options_));
  {
    // The crash between the store commit and the outbox write: the store
    // has the sessions, the outbox never saw them.
    ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<Ingestor> first,
        Ingestor::Create(&config_, &store_, pseudonymizer_.get(),
                         metrics_.get(), /*listener=*/nullptr));
    ASSERT_OK_AND_ASSIGN(cohortd::v1::PushResponse r, first->Push(Request(20)));
    ASSERT_EQ(r.accepted(), 20);
  }
  EXPECT_EQ(LiveSessions(*backend), 0);

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Ingestor> second,
                       Ingestor::Create(&config_, &store_, pseudonymizer_.get(),
                                        metrics_.get(), backend.get()));
  ASSERT_OK_AND_ASSIGN(cohortd::v1::PushResponse retry,
                       second->Push(Request(20)));
  EXPECT_EQ(retry.unchanged(), 20);
  EXPECT_EQ(backend->outbox_batches(), 0u);
  EXPECT_EQ(LiveSessions(*backend), 20);

  // And the label arrived with them: a query sees every session.
  absl::StatusOr<std::string> labels = backend->client().Execute(absl::StrCat(
      "SELECT count() FROM (SELECT session, argMax(label, version) AS l FROM ",
      backend->table(),
      " WHERE dataset = 'sessions' AND name = 'work_mode' GROUP BY session) "
      "WHERE l = 'fix' FORMAT TabSeparated"));
  ASSERT_OK(labels);
  EXPECT_EQ(absl::StripAsciiWhitespace(*labels), "20");
}

// The outbox bound: while ClickHouse is down, pushes are acknowledged
// (queued durably) until the unconfirmed batches reach max_outbox_bytes;
// then a push gets UNAVAILABLE saying so and nothing of it is stored.
// Once ClickHouse is back and confirms the backlog, pushes are taken again
// and nothing acknowledged is missing.
TEST_F(ClickHouseOutboxTest, FullOutboxRefusesPushesUntilClickHouseIsBack) {
  options_.max_outbox_bytes = 1;  // one batch fills it
  options_.retry_every = absl::Milliseconds(50);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ClickHouseBackend> backend,
                       ClickHouseBackend::Create(options_));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Ingestor> ingestor,
                       Ingestor::Create(&config_, &store_, pseudonymizer_.get(),
                                        metrics_.get(), backend.get()));
  EXPECT_OK(backend->Admit());
  server_->Kill();
  ASSERT_OK_AND_ASSIGN(cohortd::v1::PushResponse first,
                       ingestor->Push(Request(3)));
  EXPECT_EQ(first.accepted(), 3);  // queued: the outbox had room
  EXPECT_EQ(backend->outbox_batches(), 1u);
  EXPECT_GT(backend->outbox_bytes(), 0);

  cohortd::v1::PushRequest more = Request(6);  // s0..s2 again, s3..s5 new
  absl::StatusOr<cohortd::v1::PushResponse> refused = ingestor->Push(more);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kUnavailable,
                                AllOf(HasSubstr("outbox is full"),
                                      HasSubstr("ClickHouse is unreachable"),
                                      HasSubstr("max_outbox_bytes"))));
  EXPECT_THAT(backend->Admit(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(backend->outbox_batches(), 1u);  // nothing of it was taken

  ASSERT_OK(server_->Restart());
  // The retry thread ships the backlog once ClickHouse answers.
  while (backend->outbox_batches() > 0) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_OK(backend->Admit());
  EXPECT_EQ(backend->outbox_bytes(), 0);
  ASSERT_OK_AND_ASSIGN(cohortd::v1::PushResponse second, ingestor->Push(more));
  EXPECT_EQ(second.accepted(), 3);
  EXPECT_EQ(second.unchanged(), 3);
  EXPECT_EQ(LiveSessions(*backend), 6);
}

// Queries read the sealed snapshot, as the embedded backend does: rows
// carry cohortd's versions, each seal records the highest version the
// snapshot holds, and a query of that snapshot reads only rows up to it.
// A push after the seal is invisible until the next seal; the same
// request on the same snapshot gets the same statistics; a snapshot whose
// batches ClickHouse has not confirmed is refused with UNAVAILABLE, while
// an older one whose batches it has can still be read.
TEST_F(ClickHouseOutboxTest, QueriesReadTheSealedSnapshot) {
  options_.retry_every = absl::Milliseconds(50);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ClickHouseBackend> backend,
                       ClickHouseBackend::Create(options_));
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ColumnarIndex> index,
      ColumnarIndex::Create({&config_.datasets[0]}, ColumnarIndex::Options()));
  FakeClock clock(absl::FromUnixSeconds(kJan2026 + 3600));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SnapshotIndex> snapshots,
                       SnapshotIndex::Create(&config_, index.get(), &clock));
  snapshots->SetSealObserver(backend.get());
  TeeListener tee(snapshots.get(), backend.get());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Ingestor> ingestor,
                       Ingestor::Create(&config_, &store_, pseudonymizer_.get(),
                                        metrics_.get(), &tee));
  cohortd::v1::AggregateRequest request;
  request.set_dataset("sessions");
  request.set_epsilon(1);
  request.add_metrics()->set_kind(cohortd::v1::Metric::SESSIONS);
  ASSERT_OK_AND_ASSIGN(QueryPlan plan, PlanQuery(config_, request));
  const std::string key = "k3y-0f-16-bytes!";
  auto sessions_of = [&](const Snapshot& s) -> absl::StatusOr<int64_t> {
    absl::StatusOr<BoundedStatistics> stats =
        backend->ComputeSealed(plan, key, s.id);
    if (!stats.ok()) return stats.status();
    int64_t n = 0;
    for (const CohortStatistics& c : stats->cohorts) n += c.sessions;
    return n;
  };

  ASSERT_OK(ingestor->Push(Request(4)).status());
  ASSERT_OK_AND_ASSIGN(const Snapshot first, snapshots->Seal("sessions"));
  EXPECT_EQ(sessions_of(first).value_or(-1), 4);
  ASSERT_OK(ingestor->Push(Request(7)).status());  // s4..s6 new
  EXPECT_EQ(backend->outbox_batches(), 0u);        // in ClickHouse already
  EXPECT_EQ(sessions_of(first).value_or(-1), 4);
  ASSERT_OK_AND_ASSIGN(const Snapshot second, snapshots->Seal("sessions"));
  EXPECT_EQ(sessions_of(second).value_or(-1), 7);
  EXPECT_EQ(sessions_of(first).value_or(-1), 4);

  // ClickHouse down: a push after the seal is queued and does not hold up
  // the sealed snapshot; a seal over it is refused until it is confirmed.
  server_->Kill();
  // s0..s6 re-pushed unchanged are re-sent too (OnResent): two batches.
  ASSERT_OK(ingestor->Push(Request(9)).status());
  EXPECT_EQ(backend->outbox_batches(), 2u);
  ASSERT_OK_AND_ASSIGN(const Snapshot third, snapshots->Seal("sessions"));
  EXPECT_THAT(sessions_of(third), StatusIs(absl::StatusCode::kUnavailable,
                                           HasSubstr("sealed snapshot")));
  ASSERT_OK(server_->Restart());
  while (backend->outbox_batches() > 0) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(sessions_of(third).value_or(-1), 9);
  EXPECT_EQ(sessions_of(second).value_or(-1), 7);
}

// A snapshot restored after a restart (main's persisted seals: the same
// snapshot id is served again) reads the rows it held when it was sealed,
// not the commits made after the seal and before the restart: the seal's
// version cut is persisted with the outbox and found again.
TEST_F(ClickHouseOutboxTest, RestoredSnapshotReadsItsSealedRows) {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/ch_seals_", getpid(), "_",
                   absl::ToUnixNanos(absl::Now()));
  options_.outbox_dir = dir;
  const DatasetSpec& ds = config_.datasets[0];
  auto sessions = [](int from, int to) {
    std::vector<CommittedSession> out;
    for (int i = from; i < to; ++i) {
      CommittedSession s;
      s.session_id = absl::StrCat("s", i);
      s.account_pseudonym =
          absl::StrCat("acct-", i, std::string(32, '#')).substr(0, 32);
      s.session_start_unix_seconds = kJan2026 + i;
      s.labels.emplace_back("work_mode", std::string("fix"));
      out.push_back(std::move(s));
    }
    return out;
  };
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<ClickHouseBackend> backend,
                         ClickHouseBackend::Create(options_));
    backend->OnSealed(ds, "at-start");
    backend->OnCommitted(ds, sessions(0, 10));
    backend->OnBuffered(ds);
    backend->OnSealed(ds, "sealed");
    backend->OnCommitted(ds, sessions(10, 25));  // after the seal
    backend->OnBuffered(ds);
    ASSERT_EQ(backend->outbox_batches(), 0u);
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ClickHouseBackend> restarted,
                       ClickHouseBackend::Create(options_));
  // What SetSealObserver tells it for the restored snapshot.
  restarted->OnSealed(ds, "sealed");
  cohortd::v1::AggregateRequest request;
  request.set_dataset("sessions");
  request.add_group_by("work_mode");
  request.set_epsilon(1);
  cohortd::v1::Metric* m = request.add_metrics();
  m->set_kind(cohortd::v1::Metric::SESSIONS);
  ASSERT_OK_AND_ASSIGN(QueryPlan plan, PlanQuery(config_, request));
  auto total = [](const BoundedStatistics& stats) {
    int64_t n = 0;
    for (const CohortStatistics& c : stats.cohorts) n += c.sessions;
    return n;
  };
  ASSERT_OK_AND_ASSIGN(
      BoundedStatistics sealed,
      restarted->ComputeSealed(plan, "0123456789abcdef", "sealed"));
  EXPECT_EQ(total(sealed), 10);
  ASSERT_OK_AND_ASSIGN(BoundedStatistics all,
                       restarted->Compute(plan, "0123456789abcdef"));
  EXPECT_EQ(total(all), 25);
  restarted.reset();

  // Switched to another database with the same data dir: the backfill at
  // start ships the store's sessions (Ship before the first seal) into a
  // table the recorded cut never saw; the restored snapshot reads them
  // (they belong to the start snapshot), not an empty table.
  options_.database = absl::StrCat(options_.database, "_switched");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ClickHouseBackend> switched,
                       ClickHouseBackend::Create(options_));
  ASSERT_OK(switched->Ship(ds, sessions(0, 25)));
  switched->OnSealed(ds, "sealed");
  ASSERT_OK_AND_ASSIGN(
      BoundedStatistics backfilled,
      switched->ComputeSealed(plan, "0123456789abcdef", "sealed"));
  EXPECT_EQ(total(backfilled), 25);
  switched.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cohortd
