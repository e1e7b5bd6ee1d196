// The query path end to end through the real cohortd binary: k-anonymity,
// interval coverage, the release cache on sealed snapshots, budgets
// (exhaustion, concurrency, kill -9) and the audit log.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kJan2026 = 1767225600;
constexpr int64_t kFeb2026 = 1769904000;

// A per-principal budget of (2.5, 4e-8) affords two queries at epsilon 2.
constexpr char kBudgetLine[] = "per_principal: {epsilon: 20, delta: 4.0e-8}";
constexpr char kSmallBudget[] = "per_principal: {epsilon: 2.5, delta: 4.0e-8}";
constexpr double kMaxEpsilon = 2.0;  // the shipped max_epsilon
constexpr char kOneMaxQueryBudget[] =
    "per_principal: {epsilon: 2, delta: 1.0e-10}";  // delta: the shipped one

// A small population with known truth. Each account has 1 to 3 sessions,
// all in one occupation, so contribution bounding (L0 = 4, Linf = 8)
// keeps everything and the bounded statistics equal the raw ones.
struct Truth {
  std::map<std::string, int> sessions, accounts, verified;
};

struct Cohorts {
  const char* occupation;
  int accounts;
  int sessions_per_account;  // 0: 1 + (account % 3)
  int verified_per_mille;
};
constexpr Cohorts kPopulation[] = {
    // Well above the size released reliably at epsilon 1 with two noisy
    // metrics (139 accounts, docs/privacy.md).
    {"legal", 400, 0, 250},
    {"management", 300, 0, 400},
    {"computer_mathematical", 500, 0, 300},
    // k - 1 accounts with many sessions: must never be released.
    {"arts_design_media", 9, 40, 500},
};

cohortd::v1::Observation Session(const std::string& id,
                                 const std::string& account,
                                 const std::string& occupation, bool verified,
                                 int64_t start) {
  cohortd::v1::Observation obs;
  obs.set_session_id(id);
  obs.set_account_id(account);
  obs.mutable_session_start()->set_seconds(start);
  obs.set_source("test_classifier@1");
  (*obs.mutable_labels())["occupation"] = occupation;
  (*obs.mutable_labels())["verified_success"] = verified ? "true" : "false";
  (*obs.mutable_labels())["work_mode"] = "fix";
  (*obs.mutable_measures())["actions_per_prompt"] = 3 + (id.size() % 10);
  return obs;
}

class QueryIntegrationTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::pair<std::string, std::string>> edits = {}) {
    dir_ = MakeTempDir();
    server_ = std::make_unique<ServerProcess>(dir_, "", std::move(edits));
    ASSERT_OK(server_->Start());
    Connect();
  }
  void Connect() {
    ingest_ = cohortd::v1::Ingest::NewStub(server_->Channel());
    query_ = cohortd::v1::Query::NewStub(server_->Channel());
    admin_ = cohortd::v1::Admin::NewStub(server_->Channel());
  }

  void PushPopulation() {
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    for (const Cohorts& c : kPopulation) {
      for (int a = 0; a < c.accounts; ++a) {
        const std::string account = absl::StrCat(c.occupation, "-acct-", a);
        const int n =
            c.sessions_per_account > 0 ? c.sessions_per_account : 1 + a % 3;
        truth_.accounts[c.occupation] += 1;
        for (int s = 0; s < n; ++s) {
          const int serial = truth_.sessions[c.occupation]++;
          const bool verified =
              (serial * 1000 / 997) % 1000 < c.verified_per_mille;
          truth_.verified[c.occupation] += verified ? 1 : 0;
          *request.add_observations() =
              Session(absl::StrCat(account, "-s", s), account, c.occupation,
                      verified, kJan2026 + serial * 60);
        }
      }
    }
    Push(request);
    Seal();
  }

  // Admin.SealSnapshot of the dataset: queries see what was pushed.
  absl::Time Seal() {
    cohortd::v1::SealSnapshotRequest request;
    request.set_dataset("sessions");
    cohortd::v1::SealSnapshotResponse response;
    auto context = AuthContext(server_->tokens().admin);
    const grpc::Status status =
        admin_->SealSnapshot(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return absl::FromUnixSeconds(response.sealed_at().seconds()) +
           absl::Nanoseconds(response.sealed_at().nanos());
  }

  cohortd::v1::ListAuditResponse Audit() {
    cohortd::v1::ListAuditRequest request;
    request.set_limit(10000);
    cohortd::v1::ListAuditResponse response;
    auto context = AuthContext(server_->tokens().admin);
    EXPECT_TRUE(admin_->ListAudit(context.get(), request, &response).ok());
    return response;
  }

  // Cache-hit entries of `principal` in the audit log.
  int CacheHitsOf(const std::string& principal) {
    int hits = 0;
    const cohortd::v1::ListAuditResponse audit = Audit();
    for (const auto& entry : audit.entries()) {
      hits += entry.principal() == principal &&
              entry.kind() == cohortd::v1::AuditEntry::CACHE_HIT;
    }
    return hits;
  }

  // Every published series (cohortd_published_* and cohortd_publication_*)
  // of the dashboard endpoint, one line each, sorted.
  std::vector<std::string> PublishedSeries() {
    const std::string command = absl::StrCat(
        "curl -sf --max-time 5 'http://127.0.0.1:", server_->metrics_port(),
        "/metrics'");
    FILE* pipe = popen(command.c_str(), "r");
    std::string body;
    if (pipe != nullptr) {
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) body.append(buf, n);
      pclose(pipe);
    }
    std::vector<std::string> series;
    for (absl::string_view line : absl::StrSplit(body, '\n')) {
      if (absl::StartsWith(line, "cohortd_published") ||
          absl::StartsWith(line, "cohortd_publication")) {
        series.emplace_back(line);
      }
    }
    std::sort(series.begin(), series.end());
    return series;
  }

  // Waits (up to 30 s) until the publication has been served from the
  // cache at least `hits` times: a run completed.
  void WaitForPublicationHits(int hits) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (CacheHitsOf(kPublisher) < hits && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(200));
    }
    ASSERT_GE(CacheHitsOf(kPublisher), hits) << "the publication never re-ran";
  }
  static constexpr char kPublisher[] =
      "publisher/verified_success_by_occupation";

  void Push(const cohortd::v1::PushRequest& request) {
    cohortd::v1::PushResponse response;
    auto context = AuthContext(server_->tokens().ingest);
    ASSERT_TRUE(ingest_->Push(context.get(), request, &response).ok());
    ASSERT_EQ(response.rejected_size(), 0)
        << response.rejected(0).field() << ": "
        << response.rejected(0).reason();
  }

  grpc::Status Aggregate(const cohortd::v1::AggregateRequest& request,
                         cohortd::v1::AggregateResponse* response,
                         const std::string& token = "") {
    auto context =
        AuthContext(token.empty() ? server_->tokens().analyst : token);
    return query_->Aggregate(context.get(), request, response);
  }

  static cohortd::v1::AggregateRequest ByOccupation(double epsilon) {
    cohortd::v1::AggregateRequest request;
    request.set_dataset("sessions");
    request.add_group_by("occupation");
    request.set_epsilon(epsilon);
    auto* sessions = request.add_metrics();
    sessions->set_kind(cohortd::v1::Metric::SESSIONS);
    auto* accounts = request.add_metrics();
    accounts->set_kind(cohortd::v1::Metric::ACCOUNTS);
    auto* rate = request.add_metrics();
    rate->set_kind(cohortd::v1::Metric::RATE);
    rate->set_name("verified");
    rate->mutable_rate_of()->set_dimension("verified_success");
    rate->mutable_rate_of()->add_any_of("true");
    return request;
  }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<cohortd::v1::Ingest::Stub> ingest_;
  std::unique_ptr<cohortd::v1::Query::Stub> query_;
  std::unique_ptr<cohortd::v1::Admin::Stub> admin_;
  Truth truth_;
};

// Over 20 releases, the k-1 cohort never appears, and the intervals cover
// the true (bounded) values at about their 95% level. 3 cohorts x 3
// metrics x 20 = 180 intervals, each covering with probability >= 0.95
// (the releases are independent): the count covered is at least
// Binomial(180, 0.95), mean 171, sd 2.9; requiring >= 155 (5.5 sd below)
// fails by chance with probability < 1e-6, while intervals that ignored the
// noise (or noise that was missing) would not vary between releases.
TEST_F(QueryIntegrationTest, BelowKNeverReleasedAndIntervalsCover) {
  Start();
  PushPopulation();
  int covered = 0, total = 0;
  std::map<std::string, std::set<double>> seen_values;
  for (int i = 0; i < 20; ++i) {
    cohortd::v1::AggregateResponse response;
    const grpc::Status s = Aggregate(ByOccupation(1.0 + 0.05 * i), &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_FALSE(response.from_cache());
    for (const auto& cohort : response.cohorts()) {
      const std::string occupation = cohort.key().at("occupation");
      ASSERT_NE(occupation, "arts_design_media");
      for (const auto& e : cohort.estimates()) {
        double truth = 0;
        if (e.metric() == "sessions") truth = truth_.sessions[occupation];
        if (e.metric() == "accounts") truth = truth_.accounts[occupation];
        if (e.metric() == "verified") {
          truth = static_cast<double>(truth_.verified[occupation]) /
                  truth_.sessions[occupation];
        }
        EXPECT_LE(e.ci_low(), e.value());
        EXPECT_GE(e.ci_high(), e.value());
        EXPECT_LT(e.ci_low(), e.ci_high()) << "an interval without noise";
        covered += (e.ci_low() <= truth && truth <= e.ci_high()) ? 1 : 0;
        ++total;
        seen_values[occupation + e.metric()].insert(e.value());
      }
    }
  }
  EXPECT_EQ(total, 180) << "every large cohort should be released";
  EXPECT_GE(covered, 155) << covered << " of " << total << " covered";
  for (const auto& [metric, values] : seen_values) {
    EXPECT_GT(values.size(), 3u) << metric << " barely varies: no noise?";
  }
}

TEST_F(QueryIntegrationTest, RepeatedAndReorderedRequestsAreOneCachedRelease) {
  Start();
  PushPopulation();
  const auto request = ByOccupation(1.0);
  cohortd::v1::AggregateResponse first, second, reordered;
  ASSERT_TRUE(Aggregate(request, &first).ok());
  EXPECT_FALSE(first.from_cache());
  EXPECT_GT(first.cost().rho(), 0);
  EXPECT_GT(first.cost().epsilon(), 0);
  EXPECT_LE(first.cost().epsilon(), 1.0 + 1e-6);  // rounded up

  ASSERT_TRUE(Aggregate(request, &second).ok());
  EXPECT_TRUE(second.from_cache());
  EXPECT_EQ(second.release_id(), first.release_id());
  EXPECT_EQ(second.cost().rho(), 0);
  EXPECT_EQ(second.budget().spent().rho(), first.budget().spent().rho());
  ASSERT_EQ(second.cohorts_size(), first.cohorts_size());
  for (int i = 0; i < first.cohorts_size(); ++i) {
    EXPECT_EQ(second.cohorts(i).estimates(0).value(),
              first.cohorts(i).estimates(0).value());
  }

  // Same question, metrics listed in another order, asked by another
  // principal: the same stored release, free.
  cohortd::v1::AggregateRequest shuffled = request;
  std::reverse(shuffled.mutable_metrics()->begin(),
               shuffled.mutable_metrics()->end());
  ASSERT_TRUE(Aggregate(shuffled, &reordered, server_->tokens().admin).ok());
  EXPECT_TRUE(reordered.from_cache());
  EXPECT_EQ(reordered.release_id(), first.release_id());
  EXPECT_EQ(reordered.budget().spent().rho(), 0);
}

// Issue 9, item 2: between two seals, one more account (a neighbouring
// dataset) changes neither `from_cache` nor any answer nor any published
// series; the seal makes the data visible, and the cache misses whatever
// was pushed.
TEST_F(QueryIntegrationTest, NeighbourPushBetweenSealsIsInvisibleUntilSeal) {
  // Publications re-run every second (the shipped config says 10m).
  Start({{"every: 10m", "every: 1s"}});
  PushPopulation();
  cohortd::v1::AggregateResponse first;
  ASSERT_TRUE(Aggregate(ByOccupation(1.0), &first).ok());
  EXPECT_FALSE(first.from_cache());
  const absl::Time seal = absl::FromUnixSeconds(first.data_as_of().seconds());
  EXPECT_GT(seal, absl::FromUnixSeconds(kJan2026));
  // The publication released on this snapshot, then re-ran from the cache.
  WaitForPublicationHits(CacheHitsOf(kPublisher) + 1);
  const std::vector<std::string> published_before = PublishedSeries();
  ASSERT_FALSE(published_before.empty());
  bool has_figure = false;
  for (const auto& line : published_before) {
    has_figure |= absl::StartsWith(line, "cohortd_published_rate{");
  }
  EXPECT_TRUE(has_figure) << "no published figure to compare";

  // The neighbour: one account more, with sessions in a released cohort;
  // and a whole new cohort far above the release threshold.
  cohortd::v1::PushRequest more;
  more.set_dataset("sessions");
  for (int s = 0; s < 8; ++s) {
    *more.add_observations() =
        Session(absl::StrCat("neighbour-s", s), "neighbour", "legal", true,
                kJan2026 + 7 * s);
  }
  Push(more);
  cohortd::v1::AggregateResponse again;
  ASSERT_TRUE(Aggregate(ByOccupation(1.0), &again).ok());
  EXPECT_TRUE(again.from_cache());
  EXPECT_EQ(again.release_id(), first.release_id());
  EXPECT_EQ(again.data_as_of().seconds(), first.data_as_of().seconds());
  EXPECT_EQ(again.cohorts_size(), first.cohorts_size());
  const int hits_after_push = CacheHitsOf(kPublisher);
  WaitForPublicationHits(hits_after_push + 1);
  EXPECT_EQ(PublishedSeries(), published_before);

  cohortd::v1::PushRequest sales;
  sales.set_dataset("sessions");
  for (int a = 0; a < 400; ++a) {
    *sales.add_observations() =
        Session(absl::StrCat("sales-", a), absl::StrCat("sales-acct-", a),
                "sales", a % 3 == 0, kJan2026 + a);
  }
  Push(sales);
  // A new question (not cached) computed now still reads the old snapshot.
  cohortd::v1::AggregateResponse fresh;
  ASSERT_TRUE(Aggregate(ByOccupation(0.9), &fresh).ok());
  EXPECT_FALSE(fresh.from_cache());
  EXPECT_EQ(fresh.data_as_of().seconds(), first.data_as_of().seconds());
  for (const auto& cohort : fresh.cohorts()) {
    EXPECT_NE(cohort.key().at("occupation"), "sales");
  }

  // Sealing makes the new data visible and the cache miss.
  const absl::Time sealed = Seal();
  cohortd::v1::AggregateResponse after;
  ASSERT_TRUE(Aggregate(ByOccupation(1.0), &after).ok());
  EXPECT_FALSE(after.from_cache());
  EXPECT_NE(after.release_id(), first.release_id());
  EXPECT_EQ(after.data_as_of().seconds(), absl::ToUnixSeconds(sealed));
  bool sales_released = false;
  for (const auto& cohort : after.cohorts()) {
    sales_released |= cohort.key().at("occupation") == "sales";
  }
  EXPECT_TRUE(sales_released);

  // Whoever saw what is in the audit log: the cached answer is an entry of
  // its own, naming the release it served, at no cost.
  int hits = 0;
  const cohortd::v1::ListAuditResponse audit = Audit();
  EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
  for (const auto& entry : audit.entries()) {
    if (entry.kind() != cohortd::v1::AuditEntry::CACHE_HIT ||
        entry.principal() != "test-analyst") {
      continue;
    }
    ++hits;
    EXPECT_EQ(entry.release_id(), first.release_id());
    EXPECT_EQ(entry.cost().rho(), 0);
  }
  EXPECT_EQ(hits, 1);
}

// Issue 13: a restart is not a seal. It serves the last sealed snapshot
// again (same id, so the same cached answers), and what was pushed after
// that seal stays invisible until the next seal, exactly as without the
// restart: the restart variant of
// NeighbourPushBetweenSealsIsInvisibleUntilSeal, through a clean stop and
// through kill -9.
TEST_F(QueryIntegrationTest, NeighbourPushBeforeRestartIsInvisibleUntilSeal) {
  Start();
  PushPopulation();
  cohortd::v1::AggregateResponse first;
  ASSERT_TRUE(Aggregate(ByOccupation(1.0), &first).ok());
  EXPECT_FALSE(first.from_cache());

  // The neighbour, and a whole new cohort far above the release threshold.
  cohortd::v1::PushRequest more;
  more.set_dataset("sessions");
  for (int s = 0; s < 8; ++s) {
    *more.add_observations() =
        Session(absl::StrCat("neighbour-s", s), "neighbour", "legal", true,
                kJan2026 + 7 * s);
  }
  for (int a = 0; a < 400; ++a) {
    *more.add_observations() =
        Session(absl::StrCat("sales-", a), absl::StrCat("sales-acct-", a),
                "sales", a % 3 == 0, kJan2026 + a);
  }
  Push(more);

  auto expect_first_snapshot = [&](absl::string_view after) {
    SCOPED_TRACE(after);
    cohortd::v1::AggregateResponse again;
    ASSERT_TRUE(Aggregate(ByOccupation(1.0), &again).ok());
    EXPECT_TRUE(again.from_cache());
    EXPECT_EQ(again.release_id(), first.release_id());
    EXPECT_EQ(again.data_as_of().seconds(), first.data_as_of().seconds());
    EXPECT_EQ(again.data_as_of().nanos(), first.data_as_of().nanos());
    ASSERT_EQ(again.cohorts_size(), first.cohorts_size());
    for (int i = 0; i < first.cohorts_size(); ++i) {
      EXPECT_EQ(again.cohorts(i).estimates(0).value(),
                first.cohorts(i).estimates(0).value());
    }
    // A new question computed now still reads the restored snapshot.
    cohortd::v1::AggregateResponse fresh;
    ASSERT_TRUE(Aggregate(ByOccupation(0.5), &fresh).ok());
    EXPECT_EQ(fresh.data_as_of().seconds(), first.data_as_of().seconds());
    for (const auto& cohort : fresh.cohorts()) {
      EXPECT_NE(cohort.key().at("occupation"), "sales");
    }
  };

  ASSERT_OK(server_->Stop());
  ASSERT_OK(server_->Start());
  Connect();
  expect_first_snapshot("after a clean stop");

  // One more push, then a crash: still the same snapshot.
  cohortd::v1::PushRequest late;
  late.set_dataset("sessions");
  *late.add_observations() =
      Session("late-s0", "late-acct", "legal", true, kJan2026 + 5);
  Push(late);
  server_->Kill();
  ASSERT_OK(server_->Start());
  Connect();
  expect_first_snapshot("after kill -9");

  // The next seal makes everything acknowledged visible.
  const absl::Time sealed = Seal();
  cohortd::v1::AggregateResponse after;
  ASSERT_TRUE(Aggregate(ByOccupation(1.0), &after).ok());
  EXPECT_FALSE(after.from_cache());
  EXPECT_NE(after.release_id(), first.release_id());
  EXPECT_EQ(after.data_as_of().seconds(), absl::ToUnixSeconds(sealed));
  bool sales_released = false;
  for (const auto& cohort : after.cohorts()) {
    sales_released |= cohort.key().at("occupation") == "sales";
  }
  EXPECT_TRUE(sales_released);

  // And that seal is what the next restart serves.
  ASSERT_OK(server_->Stop());
  ASSERT_OK(server_->Start());
  Connect();
  cohortd::v1::AggregateResponse restarted;
  ASSERT_TRUE(Aggregate(ByOccupation(1.0), &restarted).ok());
  EXPECT_TRUE(restarted.from_cache());
  EXPECT_EQ(restarted.release_id(), after.release_id());
}

// Issue 9, item 5: a restart with a changed answer-config (here k and
// L0) never serves a release computed under the old one, even if it were
// on the same snapshot; covered per value by release_journal_test.
TEST_F(QueryIntegrationTest, ChangedConfigAfterRestartRecomputes) {
  Start();
  PushPopulation();
  cohortd::v1::AggregateResponse before;
  ASSERT_TRUE(Aggregate(ByOccupation(1.0), &before).ok());
  ASSERT_OK(server_->Stop());
  server_ = std::make_unique<ServerProcess>(
      dir_, "",
      std::vector<std::pair<std::string, std::string>>{{"k: 10", "k: 12"}});
  ASSERT_OK(server_->Start());
  Connect();
  cohortd::v1::AggregateResponse after;
  ASSERT_TRUE(Aggregate(ByOccupation(1.0), &after).ok());
  EXPECT_FALSE(after.from_cache());
  EXPECT_NE(after.release_id(), before.release_id());
}

// Issue 9, item 5: a budget of exactly one query at max_epsilon can be
// spent (the first such query used to be refused), and only once.
TEST_F(QueryIntegrationTest, BudgetOfOneMaxEpsilonQueryIsSpendable) {
  Start({{kBudgetLine, kOneMaxQueryBudget}});
  PushPopulation();
  cohortd::v1::AggregateResponse response;
  const grpc::Status first = Aggregate(ByOccupation(kMaxEpsilon), &response);
  ASSERT_TRUE(first.ok()) << first.error_message();
  const grpc::Status second = Aggregate(ByOccupation(0.01), &response);
  EXPECT_EQ(second.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(QueryIntegrationTest, ExhaustedBudgetIsResourceExhausted) {
  Start({{kBudgetLine, kSmallBudget}});
  PushPopulation();
  cohortd::v1::AggregateResponse response;
  ASSERT_TRUE(Aggregate(ByOccupation(2.0), &response).ok());
  ASSERT_TRUE(Aggregate(ByOccupation(1.99), &response).ok());
  const grpc::Status s = Aggregate(ByOccupation(1.98), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("remaining"));
  // A cached answer is still free.
  ASSERT_TRUE(Aggregate(ByOccupation(2.0), &response).ok());
  EXPECT_TRUE(response.from_cache());
}

TEST_F(QueryIntegrationTest, ConcurrentQueriesCannotOverspend) {
  Start({{kBudgetLine, kSmallBudget}});
  PushPopulation();
  std::atomic<int> ok{0}, exhausted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      cohortd::v1::AggregateResponse response;
      const grpc::Status s = Aggregate(ByOccupation(2.0 - 0.01 * i), &response);
      if (s.ok()) ++ok;
      if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++exhausted;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(exhausted, 4);
}

TEST_F(QueryIntegrationTest, KillNineAfterReleaseKeepsItChargedAndAudited) {
  Start();
  PushPopulation();
  cohortd::v1::AggregateResponse response;
  ASSERT_TRUE(Aggregate(ByOccupation(1.0), &response).ok());
  const double rho = response.cost().rho();
  ASSERT_GT(rho, 0);
  server_->Kill();
  ASSERT_OK(server_->Start());
  Connect();

  cohortd::v1::GetBudgetRequest budget_request;
  budget_request.set_dataset("sessions");
  cohortd::v1::Budget budget;
  auto context = AuthContext(server_->tokens().analyst);
  ASSERT_TRUE(query_->GetBudget(context.get(), budget_request, &budget).ok());
  EXPECT_NEAR(budget.spent().rho(), rho, rho * 1e-6);

  cohortd::v1::ListAuditRequest audit_request;
  cohortd::v1::ListAuditResponse audit;
  auto admin = AuthContext(server_->tokens().admin);
  ASSERT_TRUE(admin_->ListAudit(admin.get(), audit_request, &audit).ok());
  EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
  // The shipped config's publications release too; find ours.
  int found = 0;
  for (const auto& entry : audit.entries()) {
    if (entry.release_id() != response.release_id()) continue;
    ++found;
    EXPECT_EQ(entry.principal(), "test-analyst");
    EXPECT_NEAR(entry.cost().rho(), rho, rho * 1e-6);
  }
  EXPECT_EQ(found, 1);

  // The restart served the same sealed snapshot: the same question is
  // the stored release, free (NeighbourPushBeforeRestartIsInvisibleUntilSeal).
  cohortd::v1::AggregateResponse again;
  ASSERT_TRUE(Aggregate(ByOccupation(1.0), &again).ok());
  EXPECT_TRUE(again.from_cache());
  EXPECT_EQ(again.release_id(), response.release_id());
  EXPECT_EQ(again.cost().rho(), 0);
}

TEST_F(QueryIntegrationTest, RolesAndRequestErrors) {
  Start();
  {
    // SealSnapshot: admin only; an unknown dataset is named.
    cohortd::v1::SealSnapshotRequest seal;
    cohortd::v1::SealSnapshotResponse sealed;
    auto analyst = AuthContext(server_->tokens().analyst);
    EXPECT_EQ(admin_->SealSnapshot(analyst.get(), seal, &sealed).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    seal.set_dataset("nope");
    auto admin = AuthContext(server_->tokens().admin);
    const grpc::Status unknown =
        admin_->SealSnapshot(admin.get(), seal, &sealed);
    EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(unknown.error_message(), HasSubstr("nope"));
    seal.clear_dataset();  // every dataset
    auto admin2 = AuthContext(server_->tokens().admin);
    ASSERT_TRUE(admin_->SealSnapshot(admin2.get(), seal, &sealed).ok());
    EXPECT_GT(sealed.sealed_at().seconds(), 0);
  }
  cohortd::v1::AggregateResponse response;
  EXPECT_EQ(Aggregate(ByOccupation(1.0), &response, server_->tokens().ingest)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  cohortd::v1::ListAuditResponse audit;
  auto analyst = AuthContext(server_->tokens().analyst);
  EXPECT_EQ(admin_->ListAudit(analyst.get(), {}, &audit).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  auto bad = ByOccupation(1.0);
  bad.set_group_by(0, "shoe_size");
  grpc::Status s = Aggregate(bad, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("group_by[0]"));
  EXPECT_THAT(s.error_message(), HasSubstr("occupation"));

  bad = ByOccupation(5.0);
  s = Aggregate(bad, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("maximum of 2"));

  bad = ByOccupation(1.0);
  auto* q = bad.add_metrics();
  q->set_kind(cohortd::v1::Metric::QUANTILES);
  q->set_measure("actions_per_prompt");
  q->add_quantiles(1.5);
  s = Aggregate(bad, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("outside (0, 1)"));

  cohortd::v1::DescribeDatasetRequest describe;
  describe.set_dataset("sessions");
  cohortd::v1::DatasetDescription description;
  auto context = AuthContext(server_->tokens().analyst);
  ASSERT_TRUE(
      query_->DescribeDataset(context.get(), describe, &description).ok());
  EXPECT_EQ(description.privacy().k(), 10);
}

}  // namespace
}  // namespace cohortd::testing
