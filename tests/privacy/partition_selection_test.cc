#include "server/privacy/partition_selection.h"

#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/privacy/accountant.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"
#include "tests/privacy/stat_checks.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;
using ::cohortd::testing::ExpectBinomial;
using ::cohortd::testing::StatusIs;

// The config defaults: k = 10, epsilon = 1, delta = 1e-10, L0 = 4, one
// noisy metric besides partition selection.
constexpr double kDefaultDelta = 1e-10;
// The smallest cohort released w.p. >= 0.95 at those defaults, as
// docs/privacy.md and README "Queries" state it.
constexpr int64_t kDocumentedReliableSize = 158;
PartitionSelector DefaultSelector() {
  const QueryBudget budget = *PlanQueryBudget(1.0, kDefaultDelta, 1);
  return *PartitionSelector::Create(10, 4, budget.rho_partition_selection,
                                    budget.delta_partition_selection, 0.95);
}

TEST(PartitionSelectorTest, ThresholdIsTheSmallestMeetingDelta) {
  const PartitionSelector s = DefaultSelector();
  const int64_t tau = s.threshold();
  const double delta_ps = kDefaultDelta / 2;
  EXPECT_LE(4 * DiscreteGaussianUpperTail(s.sigma2(), tau - 1), delta_ps);
  EXPECT_GT(4 * DiscreteGaussianUpperTail(s.sigma2(), tau - 2), delta_ps);
  EXPECT_LE(s.delta(), delta_ps);
  EXPECT_GT(tau, 1);
}

TEST(PartitionSelectorTest, BelowKDrawsTheSameNoiseAndIsNeverReleased) {
  const PartitionSelector s = DefaultSelector();
  // Below k the selector consumes exactly the randomness of a cohort above
  // k (one noise sample, discarded), so its work does not reveal it: two
  // generators with the same seed stay in step whatever the counts.
  for (int64_t below = 0; below < 10; ++below) {
    DeterministicRandom a_source(100 + below), b_source(100 + below);
    RandomWords a(&a_source), b(&b_source);
    for (int i = 0; i < 50; ++i) {
      ASSERT_OK_AND_ASSIGN(PartitionSelector::Decision d, s.Decide(below, a));
      EXPECT_FALSE(d.released);
      ASSERT_OK(s.Decide(below + 1000, b).status());
    }
    uint64_t wa = 0, wb = 0;
    ASSERT_TRUE(a.Next(&wa));
    ASSERT_TRUE(b.Next(&wb));
    EXPECT_EQ(wa, wb) << below;
  }
  // A failing source is reported below k too: the draw really happens.
  class Broken : public RandomSource {
    absl::Status Fill(uint64_t*, size_t) override {
      return absl::InternalError("randomness failed");
    }
  } broken;
  RandomWords rng(&broken);
  EXPECT_THAT(s.Decide(3, rng), StatusIs(absl::StatusCode::kInternal));
}

TEST(PartitionSelectorTest, KMinusOneAccountsNeverReleasedEvenWithTinyNoise) {
  // Huge rho (almost no noise) and a generous delta: a mechanism without
  // the pre-threshold would release a 9-account cohort almost always.
  ASSERT_OK_AND_ASSIGN(PartitionSelector s,
                       PartitionSelector::Create(10, 4, 100.0, 0.4, 0.95));
  DeterministicRandom source(3);
  RandomWords rng(&source);
  // tau = 2 here, so a cohort of k + 1 accounts (n' = 2) is the control.
  int released_above = 0;
  for (int i = 0; i < 100000; ++i) {
    ASSERT_OK_AND_ASSIGN(auto below, s.Decide(9, rng));
    ASSERT_FALSE(below.released);
    ASSERT_OK_AND_ASSIGN(auto above, s.Decide(11, rng));
    released_above += above.released;
  }
  EXPECT_GT(released_above, 90000);
}

TEST(PartitionSelectorTest, ReleaseProbabilityMatchesTheNoiseLaw) {
  const PartitionSelector s = DefaultSelector();
  DeterministicRandom source(11);
  RandomWords rng(&source);
  constexpr int kTrials = 40000;
  // n' = tau + 5 is released iff Z >= -5, i.e. with probability
  // 1 - P[Z >= 6].
  const int64_t n = s.threshold() + 5 + 9;
  int64_t released = 0;
  for (int i = 0; i < kTrials; ++i) {
    ASSERT_OK_AND_ASSIGN(auto d, s.Decide(n, rng));
    released += d.released;
  }
  ExpectBinomial(released, kTrials,
                 1 - DiscreteGaussianUpperTail(s.sigma2(), 6));
}

TEST(PartitionSelectorTest, AccountsIntervalCoversAndReliableSizeIsReleased) {
  const PartitionSelector s = DefaultSelector();
  const int64_t reliable = s.MinCohortSizeReleasedWith(0.95);
  std::printf(
      "defaults: sigma=%.2f tau=%lld min size released w.p. 0.95: "
      "%lld, 0.5: %lld\n",
      std::sqrt(s.sigma2()), static_cast<long long>(s.threshold()),
      static_cast<long long>(reliable),
      static_cast<long long>(s.MinCohortSizeReleasedWith(0.5)));
  DeterministicRandom source(12);
  RandomWords rng(&source);
  constexpr int kTrials = 20000;
  int64_t released = 0, covered = 0;
  for (int i = 0; i < kTrials; ++i) {
    ASSERT_OK_AND_ASSIGN(auto d, s.Decide(reliable, rng));
    if (!d.released) continue;
    ++released;
    covered += d.accounts.ci_low <= reliable && reliable <= d.accounts.ci_high;
  }
  // P[release] >= 0.95 (one-sided binomial lower bound).
  EXPECT_GE(released, 0.95 * kTrials - 4.9 * std::sqrt(kTrials * 0.0475));
  // Conditioned on release the interval covers at >= its nominal level
  // minus the released mass near the threshold (<= 5%).
  EXPECT_GE(covered, 0.90 * released);
}

// The table of docs/privacy.md ("smallest reliably released cohort"):
// the shipped defaults (k = 10, epsilon = 1, delta_per_query = 1e-10,
// L0 = 4, Linf = 8) for several numbers of noisy metrics and contributor
// gates, with L0 = 4 (group-by of >= 4 possible cohorts) and L0 = 1 (no
// group-by). Printed for the docs; the sizes are checked to grow with the
// number of shares and to shrink with L0, and one entry is pinned so the
// docs cannot silently go stale.
TEST(PartitionSelectorTest, ReliablyReleasedSizesAtTheShippedDefaults) {
  std::printf("metrics gates L0 sigma_ps tau  p=0.5 p=0.95 sigma_sessions\n");
  int64_t previous = 0;
  for (int l0 : {4, 1}) {
    for (auto [metrics, gates] : std::vector<std::pair<int, int>>{
             {0, 0}, {1, 0}, {2, 0}, {2, 1}, {3, 1}, {3, 2}, {5, 2}}) {
      const QueryBudget b = *PlanQueryBudget(1.0, 1e-10, metrics, gates);
      const PartitionSelector s = *PartitionSelector::Create(
          10, l0, b.rho_partition_selection, b.delta_partition_selection, 0.95);
      const int64_t reliable = s.MinCohortSizeReleasedWith(0.95);
      // Sessions noise: sigma^2 = L0 Linf^2 / (2 rho_per_metric).
      const double sigma_sessions =
          metrics > 0 ? std::sqrt(l0 * 64 / (2 * b.rho_per_metric)) : 0;
      std::printf("%7d %5d %2d %8.1f %4lld %6lld %6lld %8.1f\n", metrics, gates,
                  l0, std::sqrt(s.sigma2()),
                  static_cast<long long>(s.threshold()),
                  static_cast<long long>(s.MinCohortSizeReleasedWith(0.5)),
                  static_cast<long long>(reliable), sigma_sessions);
      if (l0 == 4 && metrics == 1 && gates == 0) {
        EXPECT_EQ(reliable, kDocumentedReliableSize);
      }
      if (metrics > 0 && l0 == 4) EXPECT_GE(reliable, previous);
      previous = reliable;
    }
    previous = 0;
  }
}

TEST(PartitionSelectorTest, RejectsBadParameters) {
  EXPECT_THAT(PartitionSelector::Create(0, 4, 0.1, 1e-7, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PartitionSelector::Create(10, 0, 0.1, 1e-7, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PartitionSelector::Create(10, 4, 0.1, 0, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PartitionSelector::Create(10, 4, 0, 1e-7, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// ------------------------------------------ optimal (epsilon, delta)

// Every DP constraint between neighbouring counts holds for the keep
// probabilities actually used (the words, not the real-valued pi), per
// cohort at (epsilon / L0, delta / L0), and the absent -> one-account step
// is at most delta / L0. The check is in doubles, whose rounding of the
// 64-bit words (up to 2^-53, amplified by e^eps1 on the right-hand side)
// exceeds the construction's margin of delta * 1e-6 at delta = 1e-10:
// allowed (1 + e^eps1) 2.3e-16 absolute.
TEST(PartitionSelectorTest, OptimalKeepProbabilitiesMeetEveryDpConstraint) {
  for (double epsilon : {0.1, 0.47, 1.0, 3.0}) {
    for (double delta : {1e-10, 1e-5, 0.01}) {
      for (int l0 : {1, 4}) {
        ASSERT_OK_AND_ASSIGN(
            PartitionSelector s,
            PartitionSelector::CreateOptimal(10, l0, epsilon, delta));
        const double e1 = std::exp(epsilon / l0), d1 = delta / l0;
        EXPECT_EQ(s.KeepProbability(9), 0);
        EXPECT_LE(s.KeepProbability(10), d1);
        for (int64_t n = 10; s.KeepProbability(n) < 1; ++n) {
          const double p = s.KeepProbability(n), q = s.KeepProbability(n + 1);
          EXPECT_LE(p, q);
          const double tol = (1 + e1) * 2.3e-16;
          EXPECT_LE(q, e1 * p + d1 + tol) << n;
          EXPECT_LE(1 - p, e1 * (1 - q) + d1 + tol) << n;
        }
      }
    }
  }
}

TEST(PartitionSelectorTest, OptimalBelowKDrawsOneWordAndIsNeverReleased) {
  ASSERT_OK_AND_ASSIGN(PartitionSelector s,
                       PartitionSelector::CreateOptimal(10, 1, 100, 0.5));
  DeterministicRandom a(3), b(3);
  RandomWords ra(&a), rb(&b);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_OK_AND_ASSIGN(auto below, s.Decide(9, ra));
    EXPECT_FALSE(below.released);
    ASSERT_OK_AND_ASSIGN(auto at_k, s.Decide(10, rb));
    (void)at_k;
  }
  // Both consumed the same words: the streams are still in step.
  uint64_t x, y;
  ASSERT_TRUE(ra.Next(&x));
  ASSERT_TRUE(rb.Next(&y));
  EXPECT_EQ(x, y);
}

TEST(PartitionSelectorTest, OptimalReleaseFrequencyMatchesKeepProbability) {
  ASSERT_OK_AND_ASSIGN(PartitionSelector s,
                       PartitionSelector::CreateOptimal(10, 1, 0.5, 1e-3));
  DeterministicRandom source(11);
  RandomWords rng(&source);
  for (int64_t n : {10, 15, 20, 25}) {
    constexpr int64_t kTrials = 40000;
    int64_t released = 0;
    for (int64_t i = 0; i < kTrials; ++i) {
      ASSERT_OK_AND_ASSIGN(auto d, s.Decide(n, rng));
      released += d.released;
      EXPECT_FALSE(d.released && s.provides_accounts());
    }
    ExpectBinomial(released, kTrials, s.KeepProbability(n));
  }
}

// Google DP's parameters (L0 = 1, delta = 1e-5, k = 10): the optimal
// selection at the share the chooser picks (0.47 of epsilon 1) keeps a
// 37-account cohort with p >= 0.95; the Gaussian selection of the zCDP
// plan kept it about half the time.
TEST(PartitionSelectorTest, OptimalKeepsA37AccountCohortAtGooglesParameters) {
  ASSERT_OK_AND_ASSIGN(PartitionSelector s,
                       PartitionSelector::CreateOptimal(10, 1, 0.47, 1e-5));
  EXPECT_GE(s.KeepProbability(37), 0.95);
  EXPECT_LE(s.MinCohortSizeReleasedWith(0.95), 37);
  EXPECT_TRUE(s.is_optimal());
  EXPECT_FALSE(s.provides_accounts());
  const PrivacyCharge c = s.Charge();
  EXPECT_EQ(c.dp_epsilon, 0.47);
  EXPECT_EQ(c.dp_delta, 1e-5);
  EXPECT_EQ(c.delta, 1e-5);
  EXPECT_THAT(PartitionSelector::CreateOptimal(10, 1, 0, 1e-5),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PartitionSelector::CreateOptimal(10, 1, 1, 1e-20),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace cohortd::privacy
