#include "server/ledger/release_journal.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cohortd/internal/storage.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/crypto/pseudonymizer.h"
#include "server/ledger/audit_chain.h"
#include "server/storage/keys.h"
#include "server/storage/mem_store.h"
#include "server/storage/rocksdb_store.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using privacy::PrivacyCharge;
using privacy::ReportedCost;
using ::testing::AllOf;
using ::testing::DoubleNear;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// A ServeCached result that is OK and empty.
MATCHER(IsMiss, "is an OK cache miss") {
  if (!arg.ok()) *result_listener << "status is " << arg.status().ToString();
  return arg.ok() && !arg->has_value();
}

constexpr char kDataset[] = "sessions";
constexpr privacy::ReportedCost kCost{0.25, 1e-7, 0.001};
constexpr char kSnapshot[] = "0123456789abcdef0123456789abcdef";
const absl::Time kSealedAt = absl::FromUnixSeconds(1767225000);

Config JournalConfig() {
  Config config = cohortd::testing::TestConfig();
  config.datasets[0].privacy.principal_budget = {1.0, 1e-6};
  config.datasets[0].privacy.dataset_budget = {2.0, 1e-6};
  return config;
}

// A charge of which exactly `n` fit into `budget` (n / (n + 0.5) of it fits,
// (n + 1) / (n + 0.5) does not, far beyond the accountant's rounding).
// A zCDP charge (the RDP curve rho * alpha) with approximate part `delta`.
PrivacyCharge Zcdp(double rho, double delta) {
  return PrivacyCharge::FromZcdp(rho, delta);
}

PrivacyCharge ChargeAffordingExactly(const BudgetSpec& budget, int n) {
  // The largest rho whose curve converts within the budget, by bisection.
  double lo = 0, hi = 100;
  for (int i = 0; i < 100; ++i) {
    const double mid = (lo + hi) / 2;
    (privacy::RdpEpsilon(privacy::ZcdpCurve(mid), 0, budget.delta) <=
             budget.epsilon
         ? lo
         : hi) = mid;
  }
  return Zcdp(lo / (n + 0.5), 0);
}

cohortd::v1::AggregateResponse SomeResponse(double value) {
  cohortd::v1::AggregateResponse response;
  cohortd::v1::Cohort* cohort = response.add_cohorts();
  (*cohort->mutable_key())["work_mode"] = "fix";
  cohortd::v1::Estimate* estimate = cohort->add_estimates();
  estimate->set_metric("sessions");
  estimate->set_value(value);
  return response;
}

// A MemStore whose writes fail while `fail` is set.
class FailingStore : public MemStore {
 public:
  absl::Status Write(const WriteBatch& batch, bool sync) override {
    if (fail.load()) return absl::UnavailableError("injected write failure");
    return MemStore::Write(batch, sync);
  }
  std::atomic<bool> fail{false};
};

class ReleaseJournalTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    journal_.reset();
    auto journal = ReleaseJournal::Open(&config_, &store_, &clock_);
    ASSERT_OK(journal);
    journal_ = *std::move(journal);
  }

  // Commits `request` as a release of snapshot `snapshot`.
  absl::StatusOr<cohortd::v1::AggregateResponse> Commit(
      const std::string& principal, const std::string& request,
      const PrivacyCharge& charge, const std::string& snapshot = kSnapshot) {
    cohortd::v1::AggregateResponse response = SomeResponse(42);
    absl::Status status =
        journal_->CommitRelease(principal, kDataset, request, request, snapshot,
                                kSealedAt, charge, kCost, &response);
    if (!status.ok()) return status;
    return response;
  }

  // Serves `request` on `snapshot` from the cache to `principal`.
  absl::StatusOr<std::optional<cohortd::v1::AggregateResponse>> Find(
      const std::string& request, const std::string& snapshot = kSnapshot,
      const std::string& principal = "carol") {
    return journal_->ServeCached(principal, kDataset, request, request,
                                 snapshot);
  }

  double SpentRho(const std::string& principal) {
    auto budget = journal_->GetBudget(principal, kDataset);
    EXPECT_OK(budget);
    return budget.ok() ? budget->spent().rho() : -1;
  }

  Config config_ = JournalConfig();
  FailingStore store_;
  FakeClock clock_{absl::FromUnixSeconds(1767225600)};
  std::unique_ptr<ReleaseJournal> journal_;
};

// ------------------------------------------------------------- budgets

TEST_F(ReleaseJournalTest, CommitChargesPrincipalAndDatasetAndFillsResponse) {
  const PrivacyCharge charge = Zcdp(0.002, 1e-8);
  ASSERT_OK_AND_ASSIGN(auto response, Commit("alice", "q1", charge));
  EXPECT_THAT(response.release_id(), MatchesRegex("[0-9a-f]{32}"));
  EXPECT_FALSE(response.from_cache());
  EXPECT_EQ(response.cost().epsilon(), kCost.epsilon);
  EXPECT_EQ(response.cost().rho(), kCost.rho);
  ASSERT_EQ(response.cohorts_size(), 1);
  EXPECT_EQ(response.budget().principal(), "alice");
  EXPECT_THAT(response.budget().spent().rho(), DoubleNear(0.002, 1e-8));
  // The conversion half of what the approximate part leaves, plus it.
  EXPECT_THAT(response.budget().spent().delta(),
              DoubleNear((1e-6 + 1e-8) / 2, 1e-13));

  EXPECT_THAT(SpentRho("alice"), DoubleNear(0.002, 1e-8));
  EXPECT_EQ(SpentRho("bob"), 0);
  ASSERT_OK_AND_ASSIGN(auto dataset_budget, journal_->DatasetBudget(kDataset));
  EXPECT_THAT(dataset_budget.spent().rho(), DoubleNear(0.002, 1e-8));
  EXPECT_EQ(dataset_budget.principal(), "");
  EXPECT_GT(store_.Stats().wal_syncs, 0u);
}

TEST_F(ReleaseJournalTest, UnknownPrincipalHasTheFullConfiguredBudget) {
  ASSERT_OK_AND_ASSIGN(auto budget, journal_->GetBudget("nobody", kDataset));
  auto ledger = privacy::BudgetLedger::Create(1.0, 1e-6);
  EXPECT_EQ(budget.total().rho(), ledger->ReportedTotal().rho);
  EXPECT_EQ(budget.total().epsilon(), ledger->ReportedTotal().epsilon);
  // Nothing spent: the remaining is the total.
  EXPECT_EQ(budget.remaining().rho(), ledger->ReportedRemaining().rho);
  EXPECT_EQ(budget.remaining().epsilon(), budget.total().epsilon());
  EXPECT_EQ(budget.remaining().delta(), budget.total().delta());
  EXPECT_EQ(budget.spent().rho(), 0);
}

TEST_F(ReleaseJournalTest, UnknownDatasetIsInvalidArgument) {
  EXPECT_THAT(journal_->GetBudget("alice", "nope"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown dataset 'nope'")));
  cohortd::v1::AggregateResponse response;
  EXPECT_THAT(
      journal_->CommitRelease("alice", "nope", "q", "q", kSnapshot, kSealedAt,
                              Zcdp(0.001, 0), kCost, &response),
      StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ReleaseJournalTest, ExhaustedPrincipalBudgetSaysRemainingAndAsked) {
  const PrivacyCharge charge =
      ChargeAffordingExactly(config_.datasets[0].privacy.principal_budget, 2);
  ASSERT_OK(Commit("alice", "q1", charge));
  ASSERT_OK(Commit("alice", "q2", charge));
  const auto exhausted = StatusIs(
      absl::StatusCode::kResourceExhausted,
      AllOf(HasSubstr("principal 'alice' on dataset 'sessions'"),
            HasSubstr("remaining epsilon="), HasSubstr("asked epsilon=0.25")));
  EXPECT_THAT(journal_->CheckAffordable("alice", kDataset, charge, kCost),
              exhausted);
  EXPECT_THAT(Commit("alice", "q3", charge), exhausted);

  // Nothing of the refused release was written.
  EXPECT_THAT(Find("q3"), IsMiss());
  ASSERT_OK_AND_ASSIGN(auto audit, journal_->ListAudit(0, 0));
  EXPECT_EQ(audit.total_entries(), 2);
  // Another principal still has budget.
  EXPECT_OK(journal_->CheckAffordable("bob", kDataset, charge, kCost));
}

TEST_F(ReleaseJournalTest, DatasetBudgetBindsAllPrincipalsTogether) {
  // The dataset affords 3, each principal far more.
  config_.datasets[0].privacy.principal_budget = {2.0, 1e-6};
  config_.datasets[0].privacy.dataset_budget = {1.0, 1e-6};
  Reopen();
  const PrivacyCharge charge =
      ChargeAffordingExactly(config_.datasets[0].privacy.dataset_budget, 3);
  ASSERT_OK(Commit("alice", "q1", charge));
  ASSERT_OK(Commit("bob", "q2", charge));
  ASSERT_OK(Commit("carol", "q3", charge));
  EXPECT_THAT(Commit("dave", "q4", charge),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("dataset 'sessions' (all principals")));
  EXPECT_EQ(SpentRho("dave"), 0);
}

TEST_F(ReleaseJournalTest, ConcurrentCommitsOfOnePrincipalNeverOverspend) {
  constexpr int kAffordable = 5;
  constexpr int kThreads = 24;
  const PrivacyCharge charge = ChargeAffordingExactly(
      config_.datasets[0].privacy.principal_budget, kAffordable);
  std::atomic<int> ok{0}, exhausted{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      cohortd::v1::AggregateResponse response = SomeResponse(i);
      absl::Status status = journal_->CommitRelease(
          "alice", kDataset, absl::StrCat("q", i), absl::StrCat("q", i),
          kSnapshot, kSealedAt, charge, kCost, &response);
      if (status.ok()) {
        ++ok;
      } else if (absl::IsResourceExhausted(status)) {
        ++exhausted;
      } else {
        ++other;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kAffordable);
  EXPECT_EQ(exhausted.load(), kThreads - kAffordable);
  EXPECT_EQ(other.load(), 0);
  EXPECT_THAT(SpentRho("alice"), DoubleNear(kAffordable * charge.Rho(), 1e-8));
  ASSERT_OK_AND_ASSIGN(auto audit, journal_->ListAudit(0, 0));
  EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
  EXPECT_EQ(audit.entries_size(), kAffordable);

  // What was stored agrees with memory.
  Reopen();
  EXPECT_THAT(SpentRho("alice"), DoubleNear(kAffordable * charge.Rho(), 1e-8));
}

TEST_F(ReleaseJournalTest, StoreFailureChargesStoresAndAuditsNothing) {
  const PrivacyCharge charge = Zcdp(0.003, 0);
  store_.fail = true;
  EXPECT_THAT(Commit("alice", "q1", charge),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(SpentRho("alice"), 0);
  ASSERT_OK_AND_ASSIGN(auto dataset_budget, journal_->DatasetBudget(kDataset));
  EXPECT_EQ(dataset_budget.spent().rho(), 0);
  ASSERT_OK_AND_ASSIGN(auto audit, journal_->ListAudit(0, 0));
  EXPECT_EQ(audit.total_entries(), 0);

  // The retry is charged exactly once and starts the chain at 1.
  store_.fail = false;
  ASSERT_OK(Commit("alice", "q1", charge));
  EXPECT_THAT(SpentRho("alice"), DoubleNear(0.003, 1e-8));
  ASSERT_OK_AND_ASSIGN(audit, journal_->ListAudit(0, 0));
  ASSERT_EQ(audit.entries_size(), 1);
  EXPECT_EQ(audit.entries(0).sequence(), 1);
  EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
}

TEST_F(ReleaseJournalTest, SpentBudgetsSurviveReopening) {
  ASSERT_OK(Commit("alice", "q1", Zcdp(0.004, 1e-8)));
  ASSERT_OK(Commit("bob", "q2", Zcdp(0.001, 0)));
  Reopen();
  EXPECT_THAT(SpentRho("alice"), DoubleNear(0.004, 1e-8));
  EXPECT_THAT(SpentRho("bob"), DoubleNear(0.001, 1e-8));
  ASSERT_OK_AND_ASSIGN(auto dataset_budget, journal_->DatasetBudget(kDataset));
  EXPECT_THAT(dataset_budget.spent().rho(), DoubleNear(0.005, 1e-8));
}

// A ledger written by the zCDP build (format 1: rho and delta only) reads
// back as the RDP curve rho * alpha, keeps charging on top of it, and is
// rewritten in format 2 (the curve and the basic bound) by that charge.
TEST_F(ReleaseJournalTest, ZcdpLedgerStoredBeforeTheRdpLedgerReadsBack) {
  internal::StoredBudgetSpent old_format;
  old_format.set_rho(0.004);
  old_format.set_delta(1e-8);
  WriteBatch batch;
  batch.Put(keys::PrincipalBudgetKey(kDataset, "alice"),
            old_format.SerializeAsString());
  batch.Put(keys::DatasetBudgetKey(kDataset), old_format.SerializeAsString());
  ASSERT_OK(store_.Write(batch, /*sync=*/true));
  Reopen();
  ASSERT_OK_AND_ASSIGN(auto budget, journal_->GetBudget("alice", kDataset));
  EXPECT_THAT(budget.spent().rho(), DoubleNear(0.004, 1e-8));
  auto expected = privacy::BudgetLedger::FromSpent(
      1.0, 1e-6, privacy::PrivacyCharge::FromZcdp(0.004, 1e-8));
  ASSERT_OK(expected);
  EXPECT_EQ(budget.spent().epsilon(), expected->ReportedSpent().epsilon);
  EXPECT_GT(budget.spent().epsilon(), 0.1);
  EXPECT_THAT(budget.spent().delta(), DoubleNear((1e-6 + 1e-8) / 2, 1e-13));

  // A charge with its own (epsilon, delta) guarantee: the basic bound
  // restarts from the migrated ledger's reported spend.
  PrivacyCharge charge = Zcdp(0.001, 0);
  charge.dp_epsilon = 0.1;
  ASSERT_OK(Commit("alice", "q1", charge));
  ASSERT_OK_AND_ASSIGN(std::string value,
                       store_.Get(keys::PrincipalBudgetKey(kDataset, "alice")));
  internal::StoredBudgetSpent rewritten;
  ASSERT_TRUE(rewritten.ParseFromString(value));
  EXPECT_EQ(rewritten.rdp_orders_version(), privacy::kRdpOrdersVersion);
  ASSERT_EQ(rewritten.rdp_size(), privacy::kRdpOrderCount);
  EXPECT_THAT(rewritten.rdp(0),
              DoubleNear(0.005 * privacy::RdpOrders()[0], 1e-8));
  EXPECT_TRUE(rewritten.has_dp_bound());
  EXPECT_THAT(rewritten.dp_epsilon(),
              DoubleNear(expected->ReportedSpent().epsilon + 0.1, 1e-6));
  Reopen();
  EXPECT_THAT(SpentRho("alice"), DoubleNear(0.005, 1e-8));
}

TEST_F(ReleaseJournalTest, LedgerOfAnotherOrderGridIsDataLoss) {
  internal::StoredBudgetSpent stored;
  stored.set_rdp_orders_version(privacy::kRdpOrdersVersion + 1);
  stored.add_rdp(0.1);
  WriteBatch batch;
  batch.Put(keys::PrincipalBudgetKey(kDataset, "alice"),
            stored.SerializeAsString());
  ASSERT_OK(store_.Write(batch, /*sync=*/true));
  EXPECT_THAT(
      ReleaseJournal::Open(&config_, &store_, &clock_),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("RDP orders version")));
}

TEST_F(ReleaseJournalTest, NamesWithSeparatorsKeepTheirOwnLedgers) {
  ASSERT_OK(Commit("team/a%b", "q1", Zcdp(0.004, 0)));
  ASSERT_OK(Commit("team", "q2", Zcdp(0.001, 0)));
  Reopen();
  EXPECT_THAT(SpentRho("team/a%b"), DoubleNear(0.004, 1e-8));
  EXPECT_THAT(SpentRho("team"), DoubleNear(0.001, 1e-8));
  EXPECT_EQ(SpentRho("team/a"), 0);
}

TEST(ReleaseJournalRocksDbTest, ChargesAndChainSurviveReopeningTheDatabase) {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/release_journal_rocksdb_",
                   ::testing::UnitTest::GetInstance()->random_seed());
  std::filesystem::remove_all(dir);
  Config config = JournalConfig();
  FakeClock clock(absl::FromUnixSeconds(1767225600));
  std::string first_hash;
  {
    auto store = OpenRocksDbStore(dir, RocksDbStoreOptions());
    ASSERT_OK(store);
    auto journal = ReleaseJournal::Open(&config, store->get(), &clock);
    ASSERT_OK(journal);
    cohortd::v1::AggregateResponse response = SomeResponse(1);
    ASSERT_OK((*journal)->CommitRelease("alice", kDataset, "q", "q", kSnapshot,
                                        kSealedAt, Zcdp(0.004, 0), kCost,
                                        &response));
    auto audit = (*journal)->ListAudit(0, 0);
    ASSERT_OK(audit);
    first_hash = audit->entries(0).hash();
  }
  auto store = OpenRocksDbStore(dir, RocksDbStoreOptions());
  ASSERT_OK(store);
  auto journal = ReleaseJournal::Open(&config, store->get(), &clock);
  ASSERT_OK(journal);
  auto budget = (*journal)->GetBudget("alice", kDataset);
  ASSERT_OK(budget);
  EXPECT_THAT(budget->spent().rho(), DoubleNear(0.004, 1e-8));
  cohortd::v1::AggregateResponse response = SomeResponse(2);
  ASSERT_OK((*journal)->CommitRelease("alice", kDataset, "q2", "q2", kSnapshot,
                                      kSealedAt, Zcdp(0.001, 0), kCost,
                                      &response));
  auto audit = (*journal)->ListAudit(0, 0);
  ASSERT_OK(audit);
  ASSERT_EQ(audit->entries_size(), 2);
  EXPECT_EQ(audit->entries(1).prev_hash(), first_hash);
  EXPECT_TRUE(audit->chain_valid()) << audit->chain_error();
  journal->reset();
  store->reset();
  std::filesystem::remove_all(dir);
}

// ------------------------------------------------------------- release cache

TEST_F(ReleaseJournalTest, IdenticalRequestOnTheSameSnapshotIsAFreeHit) {
  ASSERT_OK_AND_ASSIGN(auto released, Commit("alice", "q", Zcdp(0.002, 0)));
  EXPECT_EQ(released.data_as_of().seconds(), absl::ToUnixSeconds(kSealedAt));
  ASSERT_OK_AND_ASSIGN(auto cached, Find("q", kSnapshot, "carol"));
  ASSERT_TRUE(cached.has_value());
  EXPECT_TRUE(cached->from_cache());
  EXPECT_EQ(cached->release_id(), released.release_id());
  EXPECT_EQ(cached->cost().epsilon(), 0);
  EXPECT_EQ(cached->cost().rho(), 0);
  EXPECT_EQ(cached->budget().principal(), "carol");
  EXPECT_EQ(SpentRho("carol"), 0);
  EXPECT_EQ(cached->data_as_of().seconds(), absl::ToUnixSeconds(kSealedAt));
  ASSERT_EQ(cached->cohorts_size(), 1);
  EXPECT_EQ(cached->cohorts(0).estimates(0).value(), 42);
  EXPECT_THAT(Find("other request"), IsMiss());
}

// Every seal has a new snapshot id: the stored release no longer hits,
// whether or not any record changed (the journal cannot even tell).
TEST_F(ReleaseJournalTest, ANewSnapshotIsAMiss) {
  ASSERT_OK(Commit("alice", "q", Zcdp(0.002, 0)));
  EXPECT_THAT(Find("q", "fedcba9876543210fedcba9876543210"), IsMiss());
  // Recomputed on the new snapshot: charged again, and the new release
  // takes the request's slot.
  ASSERT_OK_AND_ASSIGN(auto second, Commit("alice", "q", Zcdp(0.002, 0),
                                           "fedcba9876543210fedcba9876543210"));
  EXPECT_FALSE(second.from_cache());
  EXPECT_THAT(Find("q"), IsMiss());
  ASSERT_OK_AND_ASSIGN(auto hit, Find("q", "fedcba9876543210fedcba9876543210"));
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->release_id(), second.release_id());
}

TEST_F(ReleaseJournalTest, ReleaseNeedsASnapshotAndOneWithoutNeverHits) {
  cohortd::v1::AggregateResponse response = SomeResponse(1);
  EXPECT_THAT(
      journal_->CommitRelease("alice", kDataset, "q", "q", "", kSealedAt,
                              Zcdp(0.002, 0), kCost, &response),
      StatusIs(absl::StatusCode::kInvalidArgument));
  // A release stored before snapshots existed (no id) is never served.
  internal::StoredRelease legacy;
  legacy.set_canonical_request("q");
  legacy.set_response(SomeResponse(7).SerializeAsString());
  WriteBatch batch;
  batch.Put(keys::ReleaseKey(kDataset, HexEncode(Sha256("q"))),
            legacy.SerializeAsString());
  ASSERT_OK(store_.Write(batch, true));
  EXPECT_THAT(Find("q", ""), IsMiss());
  EXPECT_THAT(Find("q"), IsMiss());
}

// Each config value that changes an answer is in the cache key: a restart
// with any of them changed (even on the same snapshot id) recomputes.
TEST_F(ReleaseJournalTest, AChangedAnswerConfigIsAMissAfterRestart) {
  const std::vector<std::function<void(DatasetSpec*)>> changes = {
      [](DatasetSpec* d) { d->privacy.k += 1; },
      [](DatasetSpec* d) { d->privacy.max_cohorts_per_account += 1; },
      [](DatasetSpec* d) { d->privacy.max_sessions_per_cohort += 1; },
      [](DatasetSpec* d) { d->privacy.delta /= 2; },
      [](DatasetSpec* d) { d->privacy.default_epsilon /= 2; },
      [](DatasetSpec* d) { d->privacy.max_epsilon *= 2; },
      [](DatasetSpec* d) { d->measures[0].upper += 1; },
      [](DatasetSpec* d) { d->measures[0].lower -= 1; },
      [](DatasetSpec* d) { d->measures[0].granularity *= 2; },
      [](DatasetSpec* d) { d->measures[1].valid_max = 20000; },
      [](DatasetSpec* d) { d->dimensions[0].values.push_back("plan"); },
      [](DatasetSpec* d) { d->dimensions[3].max_length += 1; },
  };
  const Config original = config_;
  for (size_t i = 0; i < changes.size(); ++i) {
    config_ = original;
    Reopen();
    const std::string request = absl::StrCat("q", i);
    ASSERT_OK(Commit("alice", request, Zcdp(0.0001, 0)));
    ASSERT_OK_AND_ASSIGN(auto hit, Find(request));
    EXPECT_TRUE(hit.has_value());
    changes[i](&config_.datasets[0]);
    Reopen();
    EXPECT_THAT(Find(request), IsMiss()) << "change " << i;
  }
}

// Budgets and the description change no answer: a restart with another
// budget still serves the release.
TEST_F(ReleaseJournalTest, BudgetAndDescriptionAreNotInTheCacheKey) {
  ASSERT_OK(Commit("alice", "q", Zcdp(0.002, 0)));
  config_.datasets[0].privacy.principal_budget = {5.0, 1e-6};
  config_.datasets[0].description = "renamed";
  Reopen();
  ASSERT_OK_AND_ASSIGN(auto hit, Find("q"));
  EXPECT_TRUE(hit.has_value());
}

TEST_F(ReleaseJournalTest, FingerprintIsStableAndCoversEveryAnswerValue) {
  const DatasetSpec spec = testing::TestDataset();
  EXPECT_EQ(ReleaseConfigFingerprint(spec), ReleaseConfigFingerprint(spec));
  EXPECT_THAT(ReleaseConfigFingerprint(spec), MatchesRegex("[0-9a-f]{64}"));
  DatasetSpec moved = spec;
  // Moving a value between two dimensions changes it (length-prefixed).
  moved.dimensions[0].values.push_back(moved.dimensions[1].values[0]);
  moved.dimensions[1].values.erase(moved.dimensions[1].values.begin());
  EXPECT_NE(ReleaseConfigFingerprint(moved), ReleaseConfigFingerprint(spec));
}

TEST_F(ReleaseJournalTest, CacheIsPerDataset) {
  config_.datasets.push_back(config_.datasets[0]);
  config_.datasets[1].name = "other";
  Reopen();
  ASSERT_OK(Commit("alice", "q", Zcdp(0.002, 0)));
  EXPECT_THAT(journal_->ServeCached("alice", "other", "q", "q", kSnapshot),
              IsMiss());
}

TEST_F(ReleaseJournalTest, RacingIdenticalRequestGetsTheStoredReleaseFree) {
  ASSERT_OK_AND_ASSIGN(auto first, Commit("alice", "q", Zcdp(0.002, 0)));
  // bob's identical request missed the cache before alice committed.
  ASSERT_OK_AND_ASSIGN(auto second, Commit("bob", "q", Zcdp(0.002, 0)));
  EXPECT_TRUE(second.from_cache());
  EXPECT_EQ(second.release_id(), first.release_id());
  EXPECT_EQ(second.cost().rho(), 0);
  EXPECT_EQ(second.budget().principal(), "bob");
  EXPECT_EQ(SpentRho("bob"), 0);
  // One release, and bob's sight of it.
  ASSERT_OK_AND_ASSIGN(auto audit, journal_->ListAudit(0, 0));
  ASSERT_EQ(audit.total_entries(), 2);
  EXPECT_EQ(audit.entries(1).kind(), cohortd::v1::AuditEntry::CACHE_HIT);
  EXPECT_EQ(audit.entries(1).principal(), "bob");
  EXPECT_EQ(audit.entries(1).release_id(), first.release_id());
}

// A budget stated as exactly one query at max_epsilon (with the dataset's
// per-query delta) pays for that query, and for nothing more.
TEST_F(ReleaseJournalTest, BudgetOfOneMaxEpsilonQueryCanBeSpent) {
  const PrivacySpec& privacy = config_.datasets[0].privacy;
  config_.datasets[0].privacy.principal_budget = {privacy.max_epsilon,
                                                  privacy.delta};
  config_.datasets[0].privacy.dataset_budget = {privacy.max_epsilon,
                                                privacy.delta};
  Reopen();
  ASSERT_OK_AND_ASSIGN(
      privacy::QueryBudget q,
      privacy::PlanQueryBudget(privacy.max_epsilon, privacy.delta, 2));
  EXPECT_OK(
      journal_->CheckAffordable("alice", kDataset, q.Charge(), q.Reported()));
  ASSERT_OK(Commit("alice", "q1", q.Charge()));
  EXPECT_THAT(Commit("alice", "q2", {1e-9, 0}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(Commit("bob", "q3", q.Charge()),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("all principals together")));
}

// ------------------------------------------------------------- cache-hit audit

TEST_F(ReleaseJournalTest, CacheHitsAreAuditedWithTheReleaseServedAndNoCost) {
  ASSERT_OK_AND_ASSIGN(auto released, Commit("alice", "q", Zcdp(0.002, 0)));
  clock_.Advance(absl::Seconds(5));
  ASSERT_OK_AND_ASSIGN(auto hit, Find("q", kSnapshot, "carol"));
  ASSERT_TRUE(hit.has_value());
  EXPECT_THAT(Find("q", "another snapshot", "dave"), IsMiss());  // no entry

  ASSERT_OK_AND_ASSIGN(auto audit, journal_->ListAudit(0, 0));
  EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
  ASSERT_EQ(audit.entries_size(), 2);
  const cohortd::v1::AuditEntry& release = audit.entries(0);
  EXPECT_EQ(release.kind(), cohortd::v1::AuditEntry::RELEASE);
  EXPECT_EQ(release.cost().rho(), kCost.rho);
  const cohortd::v1::AuditEntry& seen = audit.entries(1);
  EXPECT_EQ(seen.kind(), cohortd::v1::AuditEntry::CACHE_HIT);
  EXPECT_EQ(seen.principal(), "carol");
  EXPECT_EQ(seen.release_id(), released.release_id());
  EXPECT_EQ(seen.canonical_request(), "q");
  EXPECT_EQ(seen.cost().epsilon(), 0);
  EXPECT_EQ(seen.cost().delta(), 0);
  EXPECT_EQ(seen.cost().rho(), 0);
  EXPECT_EQ(seen.time().seconds(), 1767225605);
  EXPECT_EQ(seen.prev_hash(), release.hash());

  // Turning the hit into a release breaks the chain there.
  ASSERT_OK_AND_ASSIGN(std::string value, store_.Get(keys::AuditKey(2)));
  internal::StoredAuditEntry entry;
  ASSERT_TRUE(entry.ParseFromString(value));
  entry.set_kind(internal::AUDIT_RELEASE);
  WriteBatch batch;
  batch.Put(keys::AuditKey(2), entry.SerializeAsString());
  ASSERT_OK(store_.Write(batch, true));
  ASSERT_OK_AND_ASSIGN(audit, journal_->ListAudit(0, 0));
  EXPECT_FALSE(audit.chain_valid());
  EXPECT_THAT(audit.chain_error(), HasSubstr("entry 2:"));
}

TEST_F(ReleaseJournalTest, AHitIsNotServedWhenItsAuditEntryCannotBeWritten) {
  ASSERT_OK(Commit("alice", "q", Zcdp(0.002, 0)));
  store_.fail = true;
  EXPECT_THAT(Find("q"), StatusIs(absl::StatusCode::kUnavailable));
  store_.fail = false;
  ASSERT_OK_AND_ASSIGN(auto audit, journal_->ListAudit(0, 0));
  EXPECT_EQ(audit.total_entries(), 1);
  ASSERT_OK_AND_ASSIGN(auto hit, Find("q"));
  EXPECT_TRUE(hit.has_value());
}

// ------------------------------------------------------------- audit log

TEST_F(ReleaseJournalTest, ChainVerifiesAndRecordsEachRelease) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(
        Commit(i % 2 ? "bob" : "alice", absl::StrCat("q", i), Zcdp(0.001, 0)));
    clock_.Advance(absl::Seconds(1));
  }
  ASSERT_OK_AND_ASSIGN(auto audit, journal_->ListAudit(0, 0));
  EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
  EXPECT_EQ(audit.entries_verified(), 5);
  EXPECT_EQ(audit.total_entries(), 5);
  ASSERT_EQ(audit.entries_size(), 5);
  EXPECT_EQ(audit.entries(0).prev_hash(), AuditGenesisHash());
  for (int i = 0; i < 5; ++i) {
    const cohortd::v1::AuditEntry& e = audit.entries(i);
    EXPECT_EQ(e.sequence(), i + 1);
    EXPECT_EQ(e.principal(), i % 2 ? "bob" : "alice");
    EXPECT_EQ(e.dataset(), kDataset);
    EXPECT_EQ(e.canonical_request(), absl::StrCat("q", i));
    EXPECT_EQ(e.cost().epsilon(), kCost.epsilon);
    EXPECT_EQ(e.time().seconds(), 1767225600 + i);
    EXPECT_EQ(e.hash().size(), kAuditHashSize);
    if (i > 0) {
      EXPECT_EQ(e.prev_hash(), audit.entries(i - 1).hash());
    }
  }
}

TEST_F(ReleaseJournalTest, ListAuditPagesAndVerifiesUpToTheLastListed) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK(Commit("alice", absl::StrCat("q", i), Zcdp(0.001, 0)));
  }
  ASSERT_OK_AND_ASSIGN(auto page, journal_->ListAudit(3, 2));
  ASSERT_EQ(page.entries_size(), 2);
  EXPECT_EQ(page.entries(0).sequence(), 3);
  EXPECT_EQ(page.entries(1).sequence(), 4);
  EXPECT_TRUE(page.chain_valid());
  EXPECT_EQ(page.entries_verified(), 4);
  EXPECT_EQ(page.total_entries(), 6);

  ASSERT_OK_AND_ASSIGN(auto beyond, journal_->ListAudit(10, 5));
  EXPECT_EQ(beyond.entries_size(), 0);
  EXPECT_TRUE(beyond.chain_valid());
  EXPECT_EQ(beyond.entries_verified(), 6);

  EXPECT_THAT(journal_->ListAudit(-1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(journal_->ListAudit(0, 10001),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ReleaseJournalTest, ReopenedJournalContinuesTheChain) {
  ASSERT_OK(Commit("alice", "q1", Zcdp(0.001, 0)));
  ASSERT_OK(Commit("alice", "q2", Zcdp(0.001, 0)));
  ASSERT_OK_AND_ASSIGN(auto before, journal_->ListAudit(0, 0));
  Reopen();
  ASSERT_OK(Commit("bob", "q3", Zcdp(0.001, 0)));
  ASSERT_OK_AND_ASSIGN(auto after, journal_->ListAudit(0, 0));
  ASSERT_EQ(after.entries_size(), 3);
  EXPECT_EQ(after.entries(2).sequence(), 3);
  EXPECT_EQ(after.entries(2).prev_hash(), before.entries(1).hash());
  EXPECT_TRUE(after.chain_valid()) << after.chain_error();
}

TEST_F(ReleaseJournalTest, TamperingWithAStoredEntryIsDetectedWhereItIs) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(Commit("alice", absl::StrCat("q", i), Zcdp(0.001, 0)));
  }
  // Rewrite entry 3's principal, keeping its stored hash.
  ASSERT_OK_AND_ASSIGN(std::string value, store_.Get(keys::AuditKey(3)));
  internal::StoredAuditEntry entry;
  ASSERT_TRUE(entry.ParseFromString(value));
  entry.set_principal("mallory");
  WriteBatch batch;
  batch.Put(keys::AuditKey(3), entry.SerializeAsString());
  ASSERT_OK(store_.Write(batch, true));

  ASSERT_OK_AND_ASSIGN(auto audit, journal_->ListAudit(0, 0));
  EXPECT_FALSE(audit.chain_valid());
  EXPECT_EQ(audit.entries_verified(), 2);
  EXPECT_THAT(audit.chain_error(), HasSubstr("entry 3:"));
  EXPECT_EQ(audit.entries_size(), 5);  // still listed as stored
  EXPECT_EQ(audit.entries(2).principal(), "mallory");

  // Re-hashing the forged entry does not help: entry 4 no longer links.
  entry.set_hash(ComputeAuditHash(entry));
  batch.Clear();
  batch.Put(keys::AuditKey(3), entry.SerializeAsString());
  ASSERT_OK(store_.Write(batch, true));
  ASSERT_OK_AND_ASSIGN(audit, journal_->ListAudit(0, 0));
  EXPECT_FALSE(audit.chain_valid());
  EXPECT_EQ(audit.entries_verified(), 3);
  EXPECT_THAT(audit.chain_error(), HasSubstr("entry 4: prev_hash"));

  // A page ending before the damage still verifies.
  ASSERT_OK_AND_ASSIGN(audit, journal_->ListAudit(1, 2));
  EXPECT_TRUE(audit.chain_valid());
}

TEST_F(ReleaseJournalTest, DroppedEntriesAreDetected) {
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK(Commit("alice", absl::StrCat("q", i), Zcdp(0.001, 0)));
  }
  absl::StatusOr<std::string> saved = store_.Get(keys::AuditKey(2));
  ASSERT_OK(saved);
  WriteBatch batch;
  batch.Delete(keys::AuditKey(2));
  ASSERT_OK(store_.Write(batch, true));
  ASSERT_OK_AND_ASSIGN(auto audit, journal_->ListAudit(0, 0));
  EXPECT_FALSE(audit.chain_valid());
  EXPECT_THAT(audit.chain_error(), HasSubstr("entry 2: missing"));

  // Dropping the newest entry is caught against the head this journal
  // knows.
  batch.Clear();
  batch.Put(keys::AuditKey(2), *std::move(saved));
  batch.Delete(keys::AuditKey(4));
  ASSERT_OK(store_.Write(batch, true));
  ASSERT_OK_AND_ASSIGN(audit, journal_->ListAudit(0, 0));
  EXPECT_FALSE(audit.chain_valid());
  EXPECT_EQ(audit.entries_verified(), 3);
  EXPECT_THAT(audit.chain_error(), HasSubstr("entry 4: missing"));
}

}  // namespace
}  // namespace cohortd
