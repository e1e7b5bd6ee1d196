// Empirical DP audit of the released mechanisms (label: stochastic).
//
// Neighbouring datasets: D, and D' = D plus one account with maximal
// contribution — Linf sessions (at the measure's upper bound, matching the
// rate predicate) in each of L0 = 4 cohorts. The audited statistic is the
// sum over those 4 cohorts of the released values, which is the most
// powerful test for Gaussian noise with that shift (it projects on the
// shift direction), so the audit sees the full L2 sensitivity
// sqrt(L0) Linf.
//
// Each mechanism gets rho = 0.5 (mu = Delta_2 / sigma = 1). Its claimed
// guarantee at delta = 1e-3 is epsilon = 3.54 (accountant.h, CKS20 Cor.
// 13; the exact Gaussian curve gives 3.15). With 5e5 trials per side the
// honest mechanisms' lower bounds land near 2.7, and the positive control
// (noise scale halved, mu = 2) is flagged with a lower bound near 5.6.
// alpha = 1e-3 overall.
//
// Partition selection and each metric's contributor gate (the same
// pre-thresholded selection on the metric's own contributing accounts)
// are audited on both of their cases, newly present (the delta event) and
// existing (the zCDP part), each with a positive control.
#include "tests/stochastic/dp_audit.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "server/privacy/accountant.h"
#include "server/privacy/aggregations.h"
#include "server/privacy/partition_selection.h"
#include "server/privacy/query_release.h"
#include "tests/privacy/deterministic_random.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::AuditEpsilon;
using ::cohortd::testing::AuditResult;
using ::cohortd::testing::DeterministicRandom;

constexpr int64_t kTrials = 500000;
constexpr double kDelta = 1e-3;
constexpr double kAlpha = 1e-3;
constexpr int kCohorts = 4;  // L0
const ContributionBounds kBounds{kCohorts, 8};

double ClaimedEpsilon(double rho) {
  return *EpsilonFromRho(rho, kDelta, Rounding::kUp);
}

// Thresholds base + m * sd for m in [-3, 6] step 0.5: fixed before
// sampling, they cover the best events for mu = 1 and mu = 2.
std::vector<double> Thresholds(double base, double sd) {
  std::vector<double> t;
  for (double m = -3; m <= 6; m += 0.5) t.push_back(base + m * sd);
  return t;
}

// The count audit for a SessionCountMetric built with `rho_used`.
AuditResult AuditCount(double rho_used, uint64_t seed) {
  const SessionCountMetric m =
      *SessionCountMetric::Create(kBounds, rho_used, 0.95);
  auto stat = [&](int64_t per_cohort) {
    return [&m, per_cohort](RandomWords& rng) {
      double s = 0;
      for (int c = 0; c < kCohorts; ++c) {
        s += m.Release(per_cohort, rng)->value;
      }
      return s;
    };
  };
  DeterministicRandom source(seed);
  RandomWords rng(&source);
  // Claimed sd of the statistic: sqrt(4 sigma^2) = 2 * 16 = 32.
  return AuditEpsilon(stat(1000), stat(1000 + 8), rng, kTrials,
                      Thresholds(4000, 32), kDelta, kAlpha);
}

TEST(DpAuditTest, SessionCountStaysUnderClaimedEpsilon) {
  const AuditResult r = AuditCount(0.5, 1);
  std::printf("count: epsilon_lb=%.3f claimed=%.3f\n", r.epsilon_lower_bound,
              ClaimedEpsilon(0.5));
  EXPECT_LE(r.epsilon_lower_bound, ClaimedEpsilon(0.5));
  EXPECT_GT(r.epsilon_lower_bound, 0.5);  // the audit has power
}

TEST(DpAuditTest, PositiveControlHalvedNoiseIsFlagged) {
  // rho 2.0 instead of 0.5: sigma 8 instead of 16, but still claiming the
  // epsilon of rho = 0.5.
  const AuditResult r = AuditCount(2.0, 2);
  std::printf("count, halved noise: epsilon_lb=%.3f claimed=%.3f\n",
              r.epsilon_lower_bound, ClaimedEpsilon(0.5));
  EXPECT_GT(r.epsilon_lower_bound, ClaimedEpsilon(0.5));
}

TEST(DpAuditTest, SumStaysUnderClaimedEpsilon) {
  const MeasureDomain domain = *MeasureDomain::Create(0, 10, 1);
  const SumMetric m = *SumMetric::Create(kBounds, domain, 0.5, 0.95);
  // Per cohort the new account adds Linf * 10 = 80; sigma = 4 * 80 / 2 =
  // 160, statistic sd 320.
  auto stat = [&](int64_t per_cohort) {
    return [&m, per_cohort](RandomWords& rng) {
      double s = 0;
      for (int c = 0; c < kCohorts; ++c) s += m.Release(per_cohort, rng)->value;
      return s;
    };
  };
  DeterministicRandom source(3);
  RandomWords rng(&source);
  const AuditResult r = AuditEpsilon(stat(5000), stat(5080), rng, kTrials,
                                     Thresholds(20000, 320), kDelta, kAlpha);
  std::printf("sum: epsilon_lb=%.3f claimed=%.3f\n", r.epsilon_lower_bound,
              ClaimedEpsilon(0.5));
  EXPECT_LE(r.epsilon_lower_bound, ClaimedEpsilon(0.5));
  EXPECT_GT(r.epsilon_lower_bound, 0.5);
}

TEST(DpAuditTest, RateStaysUnderClaimedEpsilon) {
  const RateMetric m = *RateMetric::Create(kBounds, 0.5, 0.95);
  // a = 1000 of 101000 sessions match; the new account adds 8 matching
  // sessions per cohort. The rate moves by ~8 b / (a + b)^2 = 7.84e-5 per
  // cohort against a noise sd of ~16 b / (a + b)^2 = 1.57e-4.
  auto stat = [&](int64_t matching, int64_t total) {
    return [&m, matching, total](RandomWords& rng) {
      double s = 0;
      for (int c = 0; c < kCohorts; ++c) {
        s += m.Release(matching, total, rng)->value;
      }
      return s;
    };
  };
  DeterministicRandom source(4);
  RandomWords rng(&source);
  const AuditResult r =
      AuditEpsilon(stat(1000, 101000), stat(1008, 101008), rng, kTrials,
                   Thresholds(4 * 1000.0 / 101000, 3.14e-4), kDelta, kAlpha);
  std::printf("rate: epsilon_lb=%.3f claimed=%.3f\n", r.epsilon_lower_bound,
              ClaimedEpsilon(0.5));
  EXPECT_LE(r.epsilon_lower_bound, ClaimedEpsilon(0.5));
  EXPECT_GT(r.epsilon_lower_bound, 0.5);
}

// Partition selection with rho = 0.5 (sigma^2 = L0 / (2 rho) = 4) and a
// large delta_ps = 0.02 so that its delta event is measurable.
PartitionSelector AuditSelector() {
  return *PartitionSelector::Create(10, kCohorts, 0.5, 0.02, 0.95);
}

double ReleasedCount(const PartitionSelector& s, int64_t accounts,
                     RandomWords& rng) {
  double released = 0;
  for (int c = 0; c < kCohorts; ++c)
    released += s.Decide(accounts, rng)->released;
  return released;
}

TEST(DpAuditTest, PartitionSelectionNewCohortsStayWithinDelta) {
  // D: 4 cohorts with k - 1 = 9 accounts (never released); D': 10 each.
  // Claim: P'[any released] <= e^eps * 0 + delta_ps + delta.
  const PartitionSelector s = AuditSelector();
  DeterministicRandom source(5);
  RandomWords rng(&source);
  const AuditResult r =
      AuditEpsilon([&](RandomWords& g) { return ReleasedCount(s, 9, g); },
                   [&](RandomWords& g) { return ReleasedCount(s, 10, g); }, rng,
                   kTrials, {1, 2}, s.delta() + kDelta, kAlpha);
  std::printf("partition selection (new cohorts): epsilon_lb=%.3f\n",
              r.epsilon_lower_bound);
  EXPECT_LE(r.epsilon_lower_bound, ClaimedEpsilon(s.rho()));
}

TEST(DpAuditTest, PositiveControlMiscalibratedThresholdIsFlagged) {
  // A selector whose threshold was computed for delta 0.5 while the claim
  // is still delta 0.02: new cohorts of k accounts get through far too
  // often, and the same audit says so.
  const PartitionSelector claimed = AuditSelector();
  const PartitionSelector loose =
      *PartitionSelector::Create(10, kCohorts, 0.5, 0.5, 0.95);
  DeterministicRandom source(7);
  RandomWords rng(&source);
  const AuditResult r =
      AuditEpsilon([&](RandomWords& g) { return ReleasedCount(loose, 9, g); },
                   [&](RandomWords& g) { return ReleasedCount(loose, 10, g); },
                   rng, kTrials, {1, 2}, claimed.delta() + kDelta, kAlpha);
  std::printf("partition selection, loose threshold: epsilon_lb=%.3f\n",
              r.epsilon_lower_bound);
  EXPECT_GT(r.epsilon_lower_bound, ClaimedEpsilon(claimed.rho()));
}

TEST(DpAuditTest, PartitionSelectionExistingCohortsStayUnderClaim) {
  // Cohorts around the threshold: n' = tau (released about half the time)
  // in D, n' + 1 in D'. Statistic: how many of the 4 are released.
  const PartitionSelector s = AuditSelector();
  const int64_t n = s.threshold() + 9;
  DeterministicRandom source(6);
  RandomWords rng(&source);
  const AuditResult r =
      AuditEpsilon([&](RandomWords& g) { return ReleasedCount(s, n, g); },
                   [&](RandomWords& g) { return ReleasedCount(s, n + 1, g); },
                   rng, kTrials, {1, 2, 3, 4}, s.delta() + kDelta, kAlpha);
  std::printf("partition selection (existing): epsilon_lb=%.3f claimed=%.3f\n",
              r.epsilon_lower_bound, ClaimedEpsilon(s.rho()));
  EXPECT_LE(r.epsilon_lower_bound, ClaimedEpsilon(s.rho()));
  EXPECT_GT(r.epsilon_lower_bound, 0.3);
}

// Contributor gates, audited through QueryReleaser::ReleaseCohort (the
// wiring the executor uses): a MEAN behind its gate, in cohorts of 1000
// accounts (always released) where `carrying` accounts carry the measure.
// The statistic is how many of the L0 = 4 cohorts publish the mean. The
// releaser is planned at delta 0.08, so each of partition selection and
// the gate gets delta 0.02 (measurable) and epsilon 5 gives the gate a
// rho near 0.5.
QueryReleaser GatedMeanReleaser(double delta) {
  QueryPrivacyParams params;
  params.bounds = kBounds;
  params.epsilon = 5;
  params.delta = delta;
  const MeasureDomain domain = *MeasureDomain::Create(0, 10, 1);
  return *QueryReleaser::Create(params, {{MetricKind::kMean, domain, {}, 0}},
                                1);
}

double PublishedMeans(const QueryReleaser& r, int64_t carrying,
                      RandomWords& rng) {
  MetricInput in;
  in.sessions = 8 * carrying;
  in.sum_fp = 40 * carrying;
  const int64_t gate_accounts[1] = {carrying};
  double published = 0;
  for (int c = 0; c < kCohorts; ++c) {
    const CohortRelease release =
        *r.ReleaseCohort(1000, gate_accounts, {&in, 1}, rng);
    published += release.released && !release.metrics[0].suppressed;
  }
  return published;
}

TEST(DpAuditTest, GateNewlyCarriedMetricsStayWithinDelta) {
  // D: the measure is carried by k - 1 = 9 accounts in each of 4 cohorts
  // (never published); D': by 10. Claim: P'[published] <= delta_gate +
  // e^eps * 0 (+ the audit's delta).
  const QueryReleaser r = GatedMeanReleaser(0.08);
  ASSERT_GT(r.gate(0).delta(), 1e-3);
  DeterministicRandom source(8);
  RandomWords rng(&source);
  const AuditResult a = AuditEpsilon(
      [&](RandomWords& g) { return PublishedMeans(r, 9, g); },
      [&](RandomWords& g) { return PublishedMeans(r, 10, g); }, rng,
      kTrials / 2, {1, 2}, r.gate(0).delta() + kDelta, kAlpha);
  std::printf("gate (newly carried): epsilon_lb=%.3f claimed=%.3f\n",
              a.epsilon_lower_bound, ClaimedEpsilon(r.gate(0).rho()));
  EXPECT_LE(a.epsilon_lower_bound, ClaimedEpsilon(r.gate(0).rho()));
}

TEST(DpAuditTest, PositiveControlMisSetGateThresholdIsFlagged) {
  // A gate whose threshold was planned for delta 0.9 (0.225 per gate)
  // while the claim is the correctly planned gate's: metrics carried by
  // exactly k accounts get through far too often, and the audit says so.
  const QueryReleaser claimed = GatedMeanReleaser(0.08);
  const QueryReleaser loose = GatedMeanReleaser(0.9);
  ASSERT_LT(loose.gate(0).threshold(), claimed.gate(0).threshold());
  DeterministicRandom source(9);
  RandomWords rng(&source);
  const AuditResult a = AuditEpsilon(
      [&](RandomWords& g) { return PublishedMeans(loose, 9, g); },
      [&](RandomWords& g) { return PublishedMeans(loose, 10, g); }, rng,
      kTrials / 2, {1, 2}, claimed.gate(0).delta() + kDelta, kAlpha);
  std::printf("gate, mis-set threshold: epsilon_lb=%.3f claimed=%.3f\n",
              a.epsilon_lower_bound, ClaimedEpsilon(claimed.gate(0).rho()));
  EXPECT_GT(a.epsilon_lower_bound, ClaimedEpsilon(claimed.gate(0).rho()));
}

TEST(DpAuditTest, GateExistingMetricsStayUnderClaim) {
  // Carried by n = tau + k - 1 accounts (published about half the time)
  // in D and n + 1 in D', in each of the 4 cohorts.
  const QueryReleaser r = GatedMeanReleaser(0.08);
  const int64_t n = r.gate(0).threshold() + 9;
  DeterministicRandom source(10);
  RandomWords rng(&source);
  const AuditResult a = AuditEpsilon(
      [&](RandomWords& g) { return PublishedMeans(r, n, g); },
      [&](RandomWords& g) { return PublishedMeans(r, n + 1, g); }, rng,
      kTrials / 2, {1, 2, 3, 4}, r.gate(0).delta() + kDelta, kAlpha);
  std::printf("gate (existing): epsilon_lb=%.3f claimed=%.3f\n",
              a.epsilon_lower_bound, ClaimedEpsilon(r.gate(0).rho()));
  EXPECT_LE(a.epsilon_lower_bound, ClaimedEpsilon(r.gate(0).rho()));
  EXPECT_GT(a.epsilon_lower_bound, 0.2);  // the audit has power
}

// ------------------------------------------------ the Laplace family
// The chooser's other noise family (query_release.h): discrete Laplace
// metrics and the optimal (epsilon, delta) partition selection. Pure
// epsilon-DP claims are audited at the same delta = 1e-3 (a weaker claim).
// The Laplace metrics use L0 = 1 so that the whole L1 sensitivity lands on
// one coordinate, where the threshold events are the most powerful test.
const ContributionBounds kOneCohort{1, 8};

AuditResult AuditLaplaceCount(double epsilon_used, uint64_t seed) {
  const SessionCountMetric m =
      *SessionCountMetric::CreateLaplace(kOneCohort, epsilon_used, 0.95);
  auto stat = [&](int64_t sessions) {
    return [&m, sessions](RandomWords& rng) {
      return m.Release(sessions, rng)->value;
    };
  };
  DeterministicRandom source(seed);
  RandomWords rng(&source);
  // Claimed scale b = 8 / 1: thresholds around the shift in units of b.
  return AuditEpsilon(stat(1000), stat(1000 + 8), rng, kTrials,
                      Thresholds(1000, 8), kDelta, kAlpha);
}

TEST(DpAuditTest, LaplaceSessionCountStaysUnderClaimedEpsilon) {
  const AuditResult r = AuditLaplaceCount(1.0, 21);
  std::printf("Laplace count: epsilon_lb=%.3f claimed=1\n",
              r.epsilon_lower_bound);
  EXPECT_LE(r.epsilon_lower_bound, 1.0);
  EXPECT_GT(r.epsilon_lower_bound, 0.5);  // the audit has power
}

TEST(DpAuditTest, PositiveControlMisScaledLaplaceIsFlagged) {
  // Scale for epsilon 2 (half the noise) while claiming epsilon 1.
  const AuditResult r = AuditLaplaceCount(2.0, 22);
  std::printf("Laplace count, half scale: epsilon_lb=%.3f claimed=1\n",
              r.epsilon_lower_bound);
  EXPECT_GT(r.epsilon_lower_bound, 1.0);
}

TEST(DpAuditTest, LaplaceSumStaysUnderClaimedEpsilon) {
  const MeasureDomain domain = *MeasureDomain::Create(0, 10, 1);
  const SumMetric m = *SumMetric::CreateLaplace(kOneCohort, domain, 1.0, 0.95);
  // The new account adds Linf * 10 = 80 to the sum: b = 80.
  auto stat = [&](int64_t sum) {
    return [&m, sum](RandomWords& rng) { return m.Release(sum, rng)->value; };
  };
  DeterministicRandom source(23);
  RandomWords rng(&source);
  const AuditResult r = AuditEpsilon(stat(5000), stat(5080), rng, kTrials,
                                     Thresholds(5000, 80), kDelta, kAlpha);
  std::printf("Laplace sum: epsilon_lb=%.3f claimed=1\n",
              r.epsilon_lower_bound);
  EXPECT_LE(r.epsilon_lower_bound, 1.0);
  EXPECT_GT(r.epsilon_lower_bound, 0.5);
}

// ACCOUNTS with its own Laplace noise (the optimal selection releases no
// count), through the Laplace-family releaser; cohorts of 1000 accounts
// are always kept, so the statistic is the released accounts estimate.
TEST(DpAuditTest, LaplaceAccountsThroughTheReleaserStayUnderClaim) {
  QueryPrivacyParams p;
  p.k = 10;
  p.bounds = kOneCohort;
  p.epsilon = 2.0;
  p.delta = 1e-3;
  p.family = QueryPrivacyParams::Family::kLaplace;
  MetricRequest accounts;
  accounts.kind = MetricKind::kAccounts;
  const QueryReleaser r = *QueryReleaser::Create(p, {accounts});
  ASSERT_EQ(r.budget().family, NoiseFamily::kLaplace);
  const double eps_metric = r.budget().epsilon_per_metric;
  auto stat = [&](int64_t n) {
    return [&r, n](RandomWords& rng) {
      absl::StatusOr<CohortRelease> c =
          r.ReleaseCohort(n, {MetricInput{}}, rng);
      return c->released ? c->metrics[0].estimate.value : -1.0;
    };
  };
  DeterministicRandom source(24);
  RandomWords rng(&source);
  const double b = 1 / eps_metric;
  const AuditResult result = AuditEpsilon(stat(1000), stat(1001), rng, kTrials,
                                          Thresholds(1000, b), kDelta, kAlpha);
  std::printf("Laplace accounts: epsilon_lb=%.3f claimed=%.3f\n",
              result.epsilon_lower_bound, eps_metric);
  EXPECT_LE(result.epsilon_lower_bound, eps_metric);
  EXPECT_GT(result.epsilon_lower_bound, 0.3 * eps_metric);
}

// The Laplace rate (per-metric chooser and the all-Laplace family): the
// new account adds Linf = 8 matching sessions (the pair's whole L1 shift)
// to a = 1000 of 101000; the rate moves by ~8 / 101000 against a noise of
// scale b / 101000 (b = 8 / epsilon); b's noise on the non-matching count
// moves the rate ~100x less.
AuditResult AuditLaplaceRate(double epsilon_used, uint64_t seed) {
  const RateMetric m =
      *RateMetric::CreateLaplace(kOneCohort, epsilon_used, 0.95);
  auto stat = [&](int64_t matching, int64_t total) {
    return [&m, matching, total](RandomWords& rng) {
      return m.Release(matching, total, rng)->value;
    };
  };
  DeterministicRandom source(seed);
  RandomWords rng(&source);
  return AuditEpsilon(stat(1000, 101000), stat(1008, 101008), rng, kTrials,
                      Thresholds(1000.0 / 101000, 8.0 / 101000), kDelta,
                      kAlpha);
}

TEST(DpAuditTest, LaplaceRateStaysUnderClaimedEpsilon) {
  const AuditResult r = AuditLaplaceRate(1.0, 29);
  std::printf("Laplace rate: epsilon_lb=%.3f claimed=1\n",
              r.epsilon_lower_bound);
  EXPECT_LE(r.epsilon_lower_bound, 1.0);
  EXPECT_GT(r.epsilon_lower_bound, 0.5);
}

TEST(DpAuditTest, PositiveControlMisScaledLaplaceRateIsFlagged) {
  // Scale for epsilon 2 (half the noise) while claiming epsilon 1.
  const AuditResult r = AuditLaplaceRate(2.0, 30);
  std::printf("Laplace rate, half scale: epsilon_lb=%.3f claimed=1\n",
              r.epsilon_lower_bound);
  EXPECT_GT(r.epsilon_lower_bound, 1.0);
}

// The Laplace mean of a [0, 10] measure: the new account adds 8 sessions
// at the upper bound, which moves the centred sum by its whole L1
// sensitivity Linf (hi - lo) = 80 and the count by 8. The released mean
// mostly shows the sum's noise (share 1 - f ~ 0.6 of epsilon), so the
// honest lower bound stays near that share; the positive control claims 1
// for a mean built at epsilon 3 (the sum's share ~1.8).
AuditResult AuditLaplaceMean(double epsilon_used, uint64_t seed) {
  const MeasureDomain domain = *MeasureDomain::Create(0, 10, 1);
  const MeanMetric m =
      *MeanMetric::CreateLaplace(kOneCohort, domain, epsilon_used, 0.95);
  auto stat = [&](__int128 sum, int64_t count) {
    return [&m, sum, count](RandomWords& rng) {
      return m.Release(sum, count, rng)->value;
    };
  };
  DeterministicRandom source(seed);
  RandomWords rng(&source);
  // Mean 5 over 1000 sessions vs 5080 / 1008 = 5.0397; the mean's noise
  // scale is about b_s / (2n) = 80 / (0.6 epsilon 2000) = 0.067 / epsilon.
  return AuditEpsilon(stat(5000, 1000), stat(5080, 1008), rng, kTrials,
                      Thresholds(5, 0.04), kDelta, kAlpha);
}

TEST(DpAuditTest, LaplaceMeanStaysUnderClaimedEpsilon) {
  const AuditResult r = AuditLaplaceMean(1.0, 31);
  std::printf("Laplace mean: epsilon_lb=%.3f claimed=1\n",
              r.epsilon_lower_bound);
  EXPECT_LE(r.epsilon_lower_bound, 1.0);
  EXPECT_GT(r.epsilon_lower_bound, 0.3);
}

TEST(DpAuditTest, PositiveControlMisScaledLaplaceMeanIsFlagged) {
  const AuditResult r = AuditLaplaceMean(3.0, 32);
  std::printf("Laplace mean, epsilon 3 as 1: epsilon_lb=%.3f claimed=1\n",
              r.epsilon_lower_bound);
  EXPECT_GT(r.epsilon_lower_bound, 1.0);
}

// The per-metric plan through the releaser (forced: Gaussian selection,
// discrete Laplace count and rate, composed in RDP): cohorts of 1000
// accounts are always kept, and each Laplace metric's release stays under
// its own epsilon (a part of the query's, which converts to <= 2 at
// delta 1e-3 with the selection).
TEST(DpAuditTest, PerMetricPlanThroughTheReleaserStaysUnderItsParts) {
  QueryPrivacyParams p;
  p.k = 10;
  p.bounds = kOneCohort;
  p.epsilon = 2.0;
  p.delta = 1e-3;
  p.family = QueryPrivacyParams::Family::kMixed;
  MetricRequest sessions, rate;
  sessions.kind = MetricKind::kSessions;
  rate.kind = MetricKind::kRate;
  const QueryReleaser r = *QueryReleaser::Create(p, {sessions, rate});
  ASSERT_EQ(r.budget().family, NoiseFamily::kMixed);
  ASSERT_LE(r.budget().Reported().epsilon, 2.0);
  const double eps_count = r.budget().metric_epsilon[0];
  const double eps_rate = r.budget().metric_epsilon[1];
  ASSERT_GT(eps_count, 0);
  ASSERT_GT(eps_rate, 0);
  for (int metric = 0; metric < 2; ++metric) {
    auto stat = [&r, metric](int64_t matching, int64_t total) {
      return [&r, metric, matching, total](RandomWords& rng) {
        MetricInput in;
        in.sessions = total;
        in.matching = matching;
        const MetricInput inputs[2] = {in, in};
        absl::StatusOr<CohortRelease> c = r.ReleaseCohort(1000, inputs, rng);
        return c->released ? c->metrics[metric].estimate.value : -1.0;
      };
    };
    DeterministicRandom source(33 + metric);
    RandomWords rng(&source);
    const double eps = metric == 0 ? eps_count : eps_rate;
    const double unit = metric == 0 ? 1.0 : 1.0 / 101000;
    const double base = metric == 0 ? 101000 : 1000.0 / 101000;
    const AuditResult result =
        AuditEpsilon(stat(1000, 101000), stat(1008, 101008), rng, kTrials / 2,
                     Thresholds(base, 8 * unit / eps), kDelta, kAlpha);
    std::printf("per-metric plan, %s: epsilon_lb=%.3f claimed=%.3f\n",
                metric == 0 ? "count" : "rate", result.epsilon_lower_bound,
                eps);
    EXPECT_LE(result.epsilon_lower_bound, eps);
    EXPECT_GT(result.epsilon_lower_bound, 0.3 * eps);
  }
}

// The optimal selection at epsilon 2, delta 0.008 over L0 = 4 cohorts: per
// cohort (0.5, 0.002), measurable, and small enough that the tight events
// (all four kept) are far more likely than delta.
PartitionSelector OptimalAuditSelector(double epsilon, double delta) {
  return *PartitionSelector::CreateOptimal(10, kCohorts, epsilon, delta);
}

TEST(DpAuditTest, OptimalSelectionNewCohortsStayWithinDelta) {
  const PartitionSelector s = OptimalAuditSelector(2.0, 0.008);
  DeterministicRandom source(25);
  RandomWords rng(&source);
  const AuditResult r =
      AuditEpsilon([&](RandomWords& g) { return ReleasedCount(s, 9, g); },
                   [&](RandomWords& g) { return ReleasedCount(s, 10, g); }, rng,
                   kTrials, {1, 2}, 0.008 + kDelta, kAlpha);
  std::printf("optimal selection (new cohorts): epsilon_lb=%.3f\n",
              r.epsilon_lower_bound);
  EXPECT_LE(r.epsilon_lower_bound, 2.0);
}

TEST(DpAuditTest, PositiveControlOptimalSelectionWithWrongDeltaIsFlagged) {
  // Keep probabilities computed for delta 0.6 while claiming 0.008.
  const PartitionSelector loose = OptimalAuditSelector(2.0, 0.6);
  DeterministicRandom source(26);
  RandomWords rng(&source);
  const AuditResult r =
      AuditEpsilon([&](RandomWords& g) { return ReleasedCount(loose, 9, g); },
                   [&](RandomWords& g) { return ReleasedCount(loose, 10, g); },
                   rng, kTrials, {1, 2}, 0.008 + kDelta, kAlpha);
  std::printf("optimal selection, loose delta: epsilon_lb=%.3f\n",
              r.epsilon_lower_bound);
  EXPECT_GT(r.epsilon_lower_bound, 2.0);
}

// Existing cohorts in the multiplicative regime of pi (pi(n'+1) =
// e^{eps1} pi(n') + delta1), where the claim is tight: all 4 cohorts kept
// is about e^{4 eps1} = e^2 times likelier in D' (exact computation of the
// events' probabilities: the honest lower bound can reach ~1.9 at best).
AuditResult AuditOptimalExisting(const PartitionSelector& s, uint64_t seed) {
  int64_t n = 10;
  while (s.KeepProbability(n) < 0.2) ++n;
  DeterministicRandom source(seed);
  RandomWords rng(&source);
  return AuditEpsilon(
      [&](RandomWords& g) { return ReleasedCount(s, n, g); },
      [&](RandomWords& g) { return ReleasedCount(s, n + 1, g); }, rng, kTrials,
      {1, 2, 3, 4}, 0.008 + kDelta, kAlpha);
}

TEST(DpAuditTest, OptimalSelectionExistingCohortsStayUnderClaim) {
  const AuditResult r =
      AuditOptimalExisting(OptimalAuditSelector(2.0, 0.008), 27);
  std::printf("optimal selection (existing): epsilon_lb=%.3f claimed=2\n",
              r.epsilon_lower_bound);
  EXPECT_LE(r.epsilon_lower_bound, 2.0);
  EXPECT_GT(r.epsilon_lower_bound, 0.5);
}

TEST(DpAuditTest, PositiveControlOptimalSelectionWithWrongEpsilonIsFlagged) {
  // Keep probabilities for epsilon 6 while claiming 2.
  const AuditResult r =
      AuditOptimalExisting(OptimalAuditSelector(6.0, 0.008), 28);
  std::printf("optimal selection, epsilon 6 as 2: epsilon_lb=%.3f\n",
              r.epsilon_lower_bound);
  EXPECT_GT(r.epsilon_lower_bound, 2.0);
}

}  // namespace
}  // namespace cohortd::privacy
