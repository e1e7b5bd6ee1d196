#include "server/privacy/query_release.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/privacy/gaussian_mechanism.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;
using ::cohortd::testing::StatusIs;

// Gate 0: the accounts carrying the measure (sum, mean, quantiles); gate
// 1: those carrying the rate's label.
constexpr int kGates = 2;
std::vector<MetricRequest> AllMetrics() {
  const MeasureDomain domain = *MeasureDomain::Create(0, 200, 1);
  return {{MetricKind::kSessions, {}, {}},
          {MetricKind::kAccounts, {}, {}},
          {MetricKind::kSum, domain, {}, 0},
          {MetricKind::kMean, domain, {}, 0},
          {MetricKind::kRate, {}, {}, 1},
          {MetricKind::kQuantiles, domain, {0.25, 0.5, 0.75}, 0}};
}

TEST(QueryReleaserTest, PlansOneSharePerNoisyMetricAndGate) {
  ASSERT_OK_AND_ASSIGN(
      QueryReleaser r,
      QueryReleaser::Create(QueryPrivacyParams{}, AllMetrics(), kGates));
  // Five noisy metrics + two gates + partition selection = eight equal
  // shares of rho; the approximate delta (half the query's) in three.
  const QueryBudget& b = r.budget();
  EXPECT_NEAR(b.rho_per_metric, b.rho_total / 8, 1e-6 * b.rho_total);
  EXPECT_EQ(b.rho_per_gate, b.rho_per_metric);
  EXPECT_LE(
      b.rho_partition_selection + 5 * b.rho_per_metric + 2 * b.rho_per_gate,
      b.rho_total);
  EXPECT_NEAR(b.delta_per_gate, 1e-7 / 2 / 3, 1e-7 / 6 * 1e-8);
  EXPECT_LE(b.delta_partition_selection + 2 * b.delta_per_gate,
            b.Charge().delta);
  EXPECT_EQ(b.Charge().delta, 1e-7 / 2);
  EXPECT_LE(r.partition_selector().rho(),
            b.rho_partition_selection * (1 + 1e-8));
  EXPECT_LE(r.partition_selector().delta(), b.delta_partition_selection);
  ASSERT_EQ(r.gates(), 2);
  for (int g = 0; g < 2; ++g) {
    EXPECT_LE(r.gate(g).rho(), b.rho_per_gate * (1 + 1e-8));
    EXPECT_LE(r.gate(g).delta(), b.delta_per_gate);
  }
}

TEST(QueryReleaserTest, GateSuppressesMetricsDrawnFromFewerThanKAccounts) {
  // A cohort of 2000 accounts where only k - 1 = 9 carry the measure: its
  // sum, mean and quantiles are never released, however large epsilon
  // (little noise) and however many sessions they have; the cohort,
  // its sessions, accounts and rate (gate 1: 2000 accounts) are.
  QueryPrivacyParams params;
  params.epsilon = 50;
  ASSERT_OK_AND_ASSIGN(QueryReleaser r,
                       QueryReleaser::Create(params, AllMetrics(), kGates));
  const std::vector<int64_t> values(7200, 7);
  std::vector<MetricInput> inputs(6);
  for (MetricInput& in : inputs) {
    in.sessions = 7200;
    in.sum_fp = 50400;
    in.matching = 3000;
    in.values_fp = values;
  }
  inputs[0].sessions = inputs[4].sessions = 16000;
  DeterministicRandom source(34);
  RandomWords rng(&source);
  const int64_t few[kGates] = {9, 2000};
  for (int i = 0; i < 5000; ++i) {
    ASSERT_OK_AND_ASSIGN(CohortRelease c,
                         r.ReleaseCohort(2000, few, inputs, rng));
    ASSERT_TRUE(c.released);
    ASSERT_EQ(c.metrics.size(), 6u);
    for (int m : {2, 3, 5}) {
      ASSERT_TRUE(c.metrics[m].suppressed) << m;
      ASSERT_TRUE(c.metrics[m].quantiles.empty());
    }
    for (int m : {0, 1, 4}) ASSERT_FALSE(c.metrics[m].suppressed) << m;
  }
  // The control: with 200 accounts carrying the measure it is released.
  const int64_t enough[kGates] = {200, 2000};
  ASSERT_OK_AND_ASSIGN(CohortRelease c,
                       r.ReleaseCohort(2000, enough, inputs, rng));
  for (const MetricOutput& m : c.metrics) EXPECT_FALSE(m.suppressed);
  EXPECT_NEAR(c.metrics[3].estimate.value, 7, 1);
}

TEST(QueryReleaserTest, GateReleasesWithTheNoiseLawOfItsSelector) {
  // Above k the gate is the selector's Gaussian threshold on the metric's
  // own count: released w.p. P[Z >= tau - n'], checked at n' = tau (1/2).
  ASSERT_OK_AND_ASSIGN(
      QueryReleaser r,
      QueryReleaser::Create(QueryPrivacyParams{}, AllMetrics(), kGates));
  const int64_t n = r.gate(0).threshold() + 9;
  std::vector<MetricInput> inputs(6);
  for (MetricInput& in : inputs) in.sessions = 8 * n;
  DeterministicRandom source(35);
  RandomWords rng(&source);
  constexpr int kTrials = 20000;
  int64_t released = 0;
  const int64_t gate_accounts[kGates] = {n, 100000};
  for (int i = 0; i < kTrials; ++i) {
    ASSERT_OK_AND_ASSIGN(CohortRelease c,
                         r.ReleaseCohort(100000, gate_accounts, inputs, rng));
    ASSERT_TRUE(c.released);
    released += !c.metrics[3].suppressed;
    // One gate per measure: sum, mean and quantiles stand or fall together.
    ASSERT_EQ(c.metrics[2].suppressed, c.metrics[3].suppressed);
    ASSERT_EQ(c.metrics[5].suppressed, c.metrics[3].suppressed);
  }
  // P[Z >= 0] for the discrete Gaussian = 1/2 + P[Z = 0]/2.
  const double p = 1 - DiscreteGaussianUpperTail(r.gate(0).sigma2(), 1);
  EXPECT_NEAR(static_cast<double>(released) / kTrials, p,
              5 * std::sqrt(p * (1 - p) / kTrials));
}

TEST(QueryReleaserTest, RefusesUngatedMeasureMetricsAndUnusedGates) {
  const MeasureDomain domain = *MeasureDomain::Create(0, 200, 1);
  for (MetricKind kind :
       {MetricKind::kSum, MetricKind::kMean, MetricKind::kQuantiles}) {
    EXPECT_THAT(
        QueryReleaser::Create(QueryPrivacyParams{}, {{kind, domain, {0.5}}}),
        StatusIs(absl::StatusCode::kInvalidArgument));
  }
  EXPECT_THAT(QueryReleaser::Create(QueryPrivacyParams{},
                                    {{MetricKind::kSessions, {}, {}, 0}}, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(QueryReleaser::Create(QueryPrivacyParams{},
                                    {{MetricKind::kRate, {}, {}, 1}}, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(QueryReleaser::Create(QueryPrivacyParams{},
                                    {{MetricKind::kRate, {}, {}}}, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // A RATE whose label the cohort requires needs no gate.
  EXPECT_OK(
      QueryReleaser::Create(QueryPrivacyParams{}, {{MetricKind::kRate, {}, {}}})
          .status());
}

TEST(QueryReleaserTest, SumsBeyondInt64AreReleasedNotRefused) {
  // 128-bit sums: a sum no int64 holds is noised like any other, so no
  // error (and no timing) depends on the data's magnitude.
  const MeasureDomain domain = *MeasureDomain::Create(0, 1e6, 1);
  ASSERT_OK_AND_ASSIGN(
      QueryReleaser r,
      QueryReleaser::Create(QueryPrivacyParams{},
                            {{MetricKind::kSum, domain, {}, 0},
                             {MetricKind::kMean, domain, {}, 0}},
                            1));
  std::vector<MetricInput> inputs(2);
  for (MetricInput& in : inputs) {
    in.sessions = int64_t{1} << 44;  // every session at the upper bound
    in.sum_fp = static_cast<__int128>(in.sessions) * 1000000;  // ~2^64
  }
  DeterministicRandom source(36);
  RandomWords rng(&source);
  const int64_t gate_accounts[1] = {1000000};
  ASSERT_OK_AND_ASSIGN(CohortRelease c,
                       r.ReleaseCohort(1000000, gate_accounts, inputs, rng));
  ASSERT_TRUE(c.released);
  EXPECT_NEAR(c.metrics[0].estimate.value, 17592186044416e6, 1e13);
  EXPECT_NEAR(c.metrics[1].estimate.value, 1e6, 1);
}

TEST(QueryReleaserTest, KMinusOneAccountsNeverReleasedWhateverTheSessions) {
  QueryPrivacyParams params;
  params.epsilon = 50;  // little noise: only the pre-threshold protects
  ASSERT_OK_AND_ASSIGN(QueryReleaser r,
                       QueryReleaser::Create(params, AllMetrics(), kGates));
  const std::vector<int64_t> values(100000, 7);
  std::vector<MetricInput> inputs(6);
  for (MetricInput& in : inputs) {
    in.sessions = 1000000;
    in.sum_fp = 7000000;
    in.matching = 500000;
    in.values_fp = values;
  }
  DeterministicRandom source(31);
  RandomWords rng(&source);
  for (int i = 0; i < 20000; ++i) {
    const int64_t gate_accounts[kGates] = {9, 9};
    ASSERT_OK_AND_ASSIGN(CohortRelease c,
                         r.ReleaseCohort(9, gate_accounts, inputs, rng));
    ASSERT_FALSE(c.released);
    ASSERT_TRUE(c.metrics.empty());
  }
  // The control: the same cohort with 200 accounts is released.
  const int64_t big_gates[kGates] = {200, 200};
  ASSERT_OK_AND_ASSIGN(CohortRelease big,
                       r.ReleaseCohort(200, big_gates, inputs, rng));
  EXPECT_TRUE(big.released);
}

TEST(QueryReleaserTest, ReleasedCohortHasEveryMetricInOrder) {
  ASSERT_OK_AND_ASSIGN(
      QueryReleaser r,
      QueryReleaser::Create(QueryPrivacyParams{}, AllMetrics(), kGates));
  std::vector<int64_t> values;
  for (int i = 0; i < 5000; ++i) values.push_back(i % 200);
  std::vector<MetricInput> inputs(6);
  for (MetricInput& in : inputs) {
    in.sessions = 5000;
    in.sum_fp = 497500;
    in.matching = 1000;
    in.values_fp = values;
  }
  DeterministicRandom source(32);
  RandomWords rng(&source);
  const int64_t gate_accounts[kGates] = {2000, 2000};
  ASSERT_OK_AND_ASSIGN(CohortRelease c,
                       r.ReleaseCohort(2000, gate_accounts, inputs, rng));
  ASSERT_TRUE(c.released);
  ASSERT_EQ(c.metrics.size(), 6u);
  // Accuracy is tested per mechanism; here: the right metric in the right
  // slot. ACCOUNTS (sigma ~ 17) is within 12 sigma of 2000; the others lie
  // in their own intervals and domains.
  EXPECT_NEAR(c.metrics[1].estimate.value, 2000, 200);
  for (int i : {0, 1, 2, 3, 4}) {
    EXPECT_LE(c.metrics[i].estimate.ci_low, c.metrics[i].estimate.value);
    EXPECT_LE(c.metrics[i].estimate.value, c.metrics[i].estimate.ci_high);
  }
  EXPECT_GE(c.metrics[3].estimate.value, 0);
  EXPECT_LE(c.metrics[3].estimate.value, 200);
  EXPECT_GE(c.metrics[4].estimate.value, 0);
  EXPECT_LE(c.metrics[4].estimate.value, 1);
  ASSERT_EQ(c.metrics[5].quantiles.size(), 3u);
  EXPECT_EQ(c.metrics[5].quantiles[1].q, 0.5);
  EXPECT_LE(c.metrics[5].quantiles[0].estimate.value,
            c.metrics[5].quantiles[0].estimate.ci_high);
}

TEST(QueryReleaserTest, RejectsBadInput) {
  QueryPrivacyParams bad;
  bad.k = 0;
  EXPECT_THAT(QueryReleaser::Create(bad, AllMetrics(), kGates),
              StatusIs(absl::StatusCode::kInvalidArgument));
  bad = QueryPrivacyParams{};
  bad.epsilon = 0;
  EXPECT_THAT(QueryReleaser::Create(bad, AllMetrics(), kGates),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(
      QueryReleaser r,
      QueryReleaser::Create(QueryPrivacyParams{}, AllMetrics(), kGates));
  DeterministicRandom source(33);
  RandomWords rng(&source);
  std::vector<MetricInput> too_few(2);
  EXPECT_THAT(r.ReleaseCohort(100, too_few, rng),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<MetricInput> inputs(6);
  EXPECT_THAT(r.ReleaseCohort(100, inputs, rng),  // no gate counts
              StatusIs(absl::StatusCode::kInvalidArgument));
  const int64_t more_than_cohort[kGates] = {101, 5};
  EXPECT_THAT(r.ReleaseCohort(100, more_than_cohort, inputs, rng),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// ------------------------------------------------ choosing the noise

QueryPrivacyParams ParamsAt(int l0, int linf, double epsilon, double delta) {
  QueryPrivacyParams p;
  p.k = 10;
  p.bounds = {l0, linf};
  p.epsilon = epsilon;
  p.delta = delta;
  p.confidence = 0.95;
  return p;
}

std::vector<MetricRequest> SessionsOnly() {
  return {{MetricKind::kSessions, {}, {}}};
}

// The target, at Google DP's parameters (L0 = 1, Linf = 5, delta
// 1e-5, 95%, k = 10), one query selecting cohorts and releasing a session
// count at a total epsilon of 1, that query being the whole budget:
// Google's library gives +-30.0 and keeps ~37 accounts w.p. 0.95.
TEST(QueryReleaserTest, ChooserBeatsGooglesLaplaceAtItsParameters) {
  QueryPrivacyParams p = ParamsAt(1, 5, 1.0, 1e-5);
  p.reference_budget_epsilon = 1.0;
  p.reference_budget_delta = 1e-5;
  ASSERT_OK_AND_ASSIGN(QueryReleaser r,
                       QueryReleaser::Create(p, SessionsOnly()));
  EXPECT_EQ(r.budget().family, NoiseFamily::kLaplace);
  const std::vector<double> widths = r.Widths();
  ASSERT_EQ(widths.size(), 2u);
  EXPECT_LE(widths[1] - 1, 30);  // the count's half-width
  EXPECT_GE(r.partition_selector().KeepProbability(37), 0.95);
  EXPECT_LE(r.budget().Reported().epsilon, 1.0);
  EXPECT_EQ(r.budget().Reported().delta, 1e-5);
  // The whole query is charged, and fits a budget of exactly itself.
  ASSERT_OK_AND_ASSIGN(BudgetLedger ledger, BudgetLedger::Create(1.0, 1e-5));
  EXPECT_OK(ledger.Charge(r.budget().Charge()));
  EXPECT_FALSE(ledger.CanAfford(r.budget().Charge()));
  // The Gaussian plan is wider on both counts.
  p.family = QueryPrivacyParams::Family::kGaussian;
  ASSERT_OK_AND_ASSIGN(QueryReleaser g,
                       QueryReleaser::Create(p, SessionsOnly()));
  EXPECT_GT(g.Widths()[1], widths[1]);
  EXPECT_LT(g.partition_selector().KeepProbability(37), 0.95);
}

// At delta 1e-7 the Laplace plan is narrower for one query, but a budget
// of (20, 1e-5) would afford far fewer of them: the chooser keeps the
// Gaussian plan, so no fewer queries fit than before.
TEST(QueryReleaserTest, ChooserNeverTradesQueriesPerBudgetForWidth) {
  QueryPrivacyParams p = ParamsAt(1, 5, 1.0, 1e-7);
  ASSERT_OK_AND_ASSIGN(QueryReleaser unguarded,
                       QueryReleaser::Create(p, SessionsOnly()));
  EXPECT_EQ(unguarded.budget().family, NoiseFamily::kLaplace);
  p.reference_budget_epsilon = 20;
  p.reference_budget_delta = 1e-5;
  ASSERT_OK_AND_ASSIGN(QueryReleaser r,
                       QueryReleaser::Create(p, SessionsOnly()));
  EXPECT_EQ(r.budget().family, NoiseFamily::kGaussian);
  EXPECT_GE(RepetitionsAffordable(r.budget().Charge(), 20, 1e-5),
            RepetitionsAffordable(unguarded.budget().Charge(), 20, 1e-5));
}

// QUANTILES (and GEOMETRIC_MEAN) have only a Gaussian mechanism: the
// all-Laplace family refuses them, the chooser still serves the query.
TEST(QueryReleaserTest, QuantilesKeepTheAllLaplaceFamilyOut) {
  QueryPrivacyParams p = ParamsAt(1, 5, 1.0, 1e-5);
  ASSERT_OK_AND_ASSIGN(QueryReleaser r,
                       QueryReleaser::Create(p, AllMetrics(), kGates));
  EXPECT_NE(r.budget().family, NoiseFamily::kLaplace);
  p.family = QueryPrivacyParams::Family::kLaplace;
  EXPECT_THAT(QueryReleaser::Create(p, AllMetrics(), kGates),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// RATE and MEAN now have discrete Laplace variants: when the query is the
// whole budget (Google DP's parameters) the chooser gives them Laplace
// noise, and their predicted widths (accuracy-first) are the narrower
// Laplace ones.
TEST(QueryReleaserTest, RatesAndMeansTakeLaplaceNoiseWhenItIsNarrower) {
  QueryPrivacyParams p = ParamsAt(1, 5, 1.0, 1e-5);
  p.reference_budget_epsilon = 1.0;
  p.reference_budget_delta = 1e-5;
  const MeasureDomain domain = *MeasureDomain::Create(0, 200, 1);
  for (const std::vector<MetricRequest>& metrics :
       {std::vector<MetricRequest>{{MetricKind::kRate, {}, {}}},
        std::vector<MetricRequest>{{MetricKind::kMean, domain, {}, 0}}}) {
    const int gates = metrics[0].gate + 1;
    ASSERT_OK_AND_ASSIGN(QueryReleaser r,
                         QueryReleaser::Create(p, metrics, gates));
    EXPECT_EQ(r.budget().family, NoiseFamily::kLaplace);
    QueryPrivacyParams gp = p;
    gp.family = QueryPrivacyParams::Family::kGaussian;
    ASSERT_OK_AND_ASSIGN(QueryReleaser g,
                         QueryReleaser::Create(gp, metrics, gates));
    for (int64_t n : {200, 2000, 20000}) {
      ASSERT_OK_AND_ASSIGN(double wl, r.PredictedHalfWidth(0, n));
      ASSERT_OK_AND_ASSIGN(double wg, g.PredictedHalfWidth(0, n));
      EXPECT_LT(wl, wg) << n;
    }
    EXPECT_LE(r.budget().Reported().epsilon, 1.0);
    ASSERT_OK_AND_ASSIGN(BudgetLedger ledger, BudgetLedger::Create(1.0, 1e-5));
    EXPECT_OK(ledger.Charge(r.budget().Charge()));
  }
}

// The all-Laplace plan with a rate and a gated mean: its charge is the
// composition of the optimal selection's and gate's curves with each
// metric's exact Laplace curve (the mean's two noises composed), and its
// basic pair is the plan's (epsilon, delta).
TEST(QueryReleaserTest, LaplacePlanChargesTheExactCurveOfWhatRuns) {
  QueryPrivacyParams p = ParamsAt(1, 5, 1.0, 1e-5);
  p.family = QueryPrivacyParams::Family::kLaplace;
  const MeasureDomain domain = *MeasureDomain::Create(0, 200, 1);
  ASSERT_OK_AND_ASSIGN(
      QueryReleaser r,
      QueryReleaser::Create(
          p, {{MetricKind::kRate, {}, {}}, {MetricKind::kMean, domain, {}, 0}},
          1));
  const QueryBudget& b = r.budget();
  ASSERT_EQ(b.family, NoiseFamily::kLaplace);
  EXPECT_TRUE(r.partition_selector().is_optimal());
  ASSERT_OK_AND_ASSIGN(
      RateMetric rate,
      RateMetric::CreateLaplace(p.bounds, b.epsilon_per_metric, 0.95));
  ASSERT_OK_AND_ASSIGN(
      MeanMetric mean,
      MeanMetric::CreateLaplace(p.bounds, domain, b.epsilon_per_metric, 0.95));
  PrivacyCharge expected =
      Compose(r.partition_selector().Charge(), r.gate(0).Charge());
  for (const RdpCurve& curve : {rate.noise().Curve(), mean.Curve()}) {
    PrivacyCharge part;
    part.rdp = curve;
    part.dp_epsilon = 0;
    expected = Compose(expected, part);
  }
  for (int i = 0; i < kRdpOrderCount; ++i) {
    EXPECT_EQ(b.Charge().rdp[i], expected.rdp[i]) << i;
  }
  EXPECT_EQ(b.Charge().delta, expected.delta);
  EXPECT_LE(b.Charge().dp_epsilon, 1.0);
  EXPECT_EQ(b.Charge().dp_delta, 1e-5);
  EXPECT_LE(2 * b.epsilon_partition_selection + 2 * b.epsilon_per_metric, 1.0);
}

// The per-metric plan at L0' = 1, epsilon 1, delta 1e-10 (a no-group-by
// query): the session count and the rate take discrete Laplace noise, the
// quantiles stay Gaussian, the selection's share is not the equal one;
// every width is at most the Gaussian plan's, and the charge is exactly
// the composition of what runs: the selection's and gate's curves, each
// Laplace metric's exact curve and the Gaussians' rho a.
TEST(QueryReleaserTest, PerMetricPlanChargesTheExactCurveOfWhatRuns) {
  QueryPrivacyParams p = ParamsAt(1, 8, 1.0, 1e-10);
  const MeasureDomain domain = *MeasureDomain::Create(0, 200, 1);
  const std::vector<MetricRequest> metrics = {
      {MetricKind::kSessions, {}, {}},
      {MetricKind::kRate, {}, {}},
      {MetricKind::kAccounts, {}, {}},
      {MetricKind::kQuantiles, domain, {0.5}, 0}};
  ASSERT_OK_AND_ASSIGN(QueryReleaser r, QueryReleaser::Create(p, metrics, 1));
  const QueryBudget& b = r.budget();
  ASSERT_EQ(b.family, NoiseFamily::kMixed);
  ASSERT_EQ(b.metric_epsilon.size(), 4u);
  EXPECT_GT(b.metric_epsilon[0], 0);
  EXPECT_GT(b.metric_epsilon[1], 0);
  EXPECT_EQ(b.metric_epsilon[2], 0);  // ACCOUNTS: the selection's count
  EXPECT_EQ(b.metric_epsilon[3], 0);  // QUANTILES: Gaussian only
  p.family = QueryPrivacyParams::Family::kGaussian;
  ASSERT_OK_AND_ASSIGN(QueryReleaser g, QueryReleaser::Create(p, metrics, 1));
  EXPECT_GT(b.rho_partition_selection, g.budget().rho_partition_selection);
  const std::vector<double> wr = r.Widths(), wg = g.Widths();
  ASSERT_EQ(wr.size(), wg.size());
  for (size_t i = 0; i < wr.size(); ++i) EXPECT_LE(wr[i], wg[i]) << i;
  // The exact curve.
  PrivacyCharge expected =
      Compose(r.partition_selector().Charge(), r.gate(0).Charge());
  ASSERT_OK_AND_ASSIGN(
      SessionCountMetric count,
      SessionCountMetric::CreateLaplace(p.bounds, b.metric_epsilon[0], 0.95));
  ASSERT_OK_AND_ASSIGN(
      RateMetric rate,
      RateMetric::CreateLaplace(p.bounds, b.metric_epsilon[1], 0.95));
  for (const RdpCurve& curve : {count.noise().Curve(), rate.noise().Curve(),
                                ZcdpCurve(b.rho_per_metric)}) {
    PrivacyCharge part;
    part.rdp = curve;
    part.dp_epsilon = 0;
    expected = Compose(expected, part);
  }
  for (int i = 0; i < kRdpOrderCount; ++i) {
    EXPECT_EQ(b.Charge().rdp[i], expected.rdp[i]) << i;
  }
  EXPECT_EQ(b.Charge().delta, expected.delta);
  EXPECT_LE(b.Charge().delta, 0.5e-10 * (1 + 1e-9));
  // It is (epsilon, delta)-DP by its curve, and reports that epsilon.
  const double converted = RdpEpsilon(b.Charge().rdp, b.Charge().delta, 1e-10);
  EXPECT_LE(converted, 1.0);
  EXPECT_EQ(b.Reported().epsilon, converted);
  EXPECT_EQ(b.Charge().dp_epsilon, converted);
  // Accuracy-first reads the mechanisms that run.
  ASSERT_OK_AND_ASSIGN(double count_width, r.PredictedHalfWidth(0, 2000));
  EXPECT_EQ(count_width, count.PredictedHalfWidth(2000));
  ASSERT_OK_AND_ASSIGN(double rate_width, r.PredictedHalfWidth(1, 2000));
  EXPECT_EQ(rate_width, rate.PredictedHalfWidth(2000));
}

// With a reference budget of many queries, the per-metric plan is kept
// only if it affords as many of them as the Gaussian plan.
TEST(QueryReleaserTest, PerMetricPlanIsGuardedByQueriesPerBudget) {
  QueryPrivacyParams p = ParamsAt(1, 8, 1.0, 1e-10);
  p.reference_budget_epsilon = 20;
  p.reference_budget_delta = 1e-5;
  ASSERT_OK_AND_ASSIGN(QueryReleaser r,
                       QueryReleaser::Create(p, SessionsOnly()));
  p.family = QueryPrivacyParams::Family::kGaussian;
  ASSERT_OK_AND_ASSIGN(QueryReleaser g,
                       QueryReleaser::Create(p, SessionsOnly()));
  EXPECT_GE(RepetitionsAffordable(r.budget().Charge(), 20, 1e-5),
            RepetitionsAffordable(g.budget().Charge(), 20, 1e-5));
  p.family = QueryPrivacyParams::Family::kMixed;
  ASSERT_OK_AND_ASSIGN(QueryReleaser m,
                       QueryReleaser::Create(p, SessionsOnly()));
  EXPECT_EQ(m.budget().family, NoiseFamily::kMixed);
  EXPECT_LT(RepetitionsAffordable(m.budget().Charge(), 20, 1e-5),
            RepetitionsAffordable(g.budget().Charge(), 20, 1e-5));
  EXPECT_NE(r.budget().family, NoiseFamily::kMixed);
}

// The Laplace family end to end: ACCOUNTS has its own noise (the optimal
// selection releases no count), floored at k, a SUM behind its gate, and
// cohorts below k are never released.
TEST(QueryReleaserTest, LaplaceFamilyReleasesAccountsSessionsAndGatedSums) {
  QueryPrivacyParams p = ParamsAt(1, 5, 2.0, 1e-5);
  p.family = QueryPrivacyParams::Family::kLaplace;
  const MeasureDomain domain = *MeasureDomain::Create(0, 10, 1);
  std::vector<MetricRequest> metrics = {{MetricKind::kAccounts, {}, {}},
                                        {MetricKind::kSessions, {}, {}},
                                        {MetricKind::kSum, domain, {}, 0}};
  ASSERT_OK_AND_ASSIGN(QueryReleaser r, QueryReleaser::Create(p, metrics, 1));
  const QueryBudget& b = r.budget();
  EXPECT_EQ(b.family, NoiseFamily::kLaplace);
  EXPECT_LE(2 * b.epsilon_partition_selection + 3 * b.epsilon_per_metric, 2.0);
  EXPECT_LE(b.delta_partition_selection + b.delta_per_gate, 1e-5);
  EXPECT_TRUE(r.gate(0).is_optimal());
  DeterministicRandom source(31);
  RandomWords rng(&source);
  MetricInput in;
  in.sessions = 5000;
  in.sum_fp = 20000;
  const std::vector<MetricInput> inputs(3, in);
  const int64_t gate_accounts[] = {1000};
  int released = 0;
  for (int i = 0; i < 200; ++i) {
    ASSERT_OK_AND_ASSIGN(CohortRelease c,
                         r.ReleaseCohort(1000, gate_accounts, inputs, rng));
    if (!c.released) continue;
    ++released;
    EXPECT_GE(c.metrics[0].estimate.ci_low, 10);
    EXPECT_NEAR(c.metrics[0].estimate.value, 1000, 200);
    EXPECT_NEAR(c.metrics[1].estimate.value, 5000, 500);
    EXPECT_FALSE(c.metrics[2].suppressed);
  }
  EXPECT_EQ(released, 200);
  const int64_t few[] = {9};
  for (int i = 0; i < 200; ++i) {
    ASSERT_OK_AND_ASSIGN(CohortRelease c, r.ReleaseCohort(9, few, inputs, rng));
    EXPECT_FALSE(c.released);
  }
}

}  // namespace
}  // namespace cohortd::privacy
