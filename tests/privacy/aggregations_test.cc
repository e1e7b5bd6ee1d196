#include "server/privacy/aggregations.h"

#include <cmath>
#include <functional>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"
#include "tests/privacy/stat_checks.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;
using ::cohortd::testing::ExpectBinomial;
using ::cohortd::testing::kZ;
using ::cohortd::testing::StatusIs;

constexpr int kTrials = 20000;
const ContributionBounds kBounds{4, 8};

// Runs `release` kTrials times; returns the share of intervals covering
// `truth` and fills the released values.
double Coverage(const std::function<Estimate(RandomWords&)>& release,
                double truth, std::vector<double>* values, uint64_t seed) {
  DeterministicRandom source(seed);
  RandomWords rng(&source);
  int64_t covered = 0;
  for (int i = 0; i < kTrials; ++i) {
    const Estimate e = release(rng);
    EXPECT_LE(e.ci_low, e.ci_high);
    covered += e.ci_low <= truth && truth <= e.ci_high;
    values->push_back(e.value);
  }
  return static_cast<double>(covered) / kTrials;
}

double Variance(const std::vector<double>& v) {
  double mean = 0, var = 0;
  for (double x : v) mean += x;
  mean /= v.size();
  for (double x : v) var += (x - mean) * (x - mean);
  return var / (v.size() - 1);
}

// The empirical variance of kTrials (near-)Gaussian values is within kZ
// standard errors (sd of s^2 = var sqrt(2 / n)) of `expected`, widened by
// `model_error` relative for delta-method approximations. Fails when noise
// is missing or mis-scaled by more than ~5%.
void ExpectVariance(const std::vector<double>& values, double expected,
                    double model_error) {
  EXPECT_NEAR(Variance(values), expected,
              expected * (kZ * std::sqrt(2.0 / values.size()) + model_error));
}

// One-sided: coverage at least `nominal` minus kZ binomial errors.
void ExpectCoverageAtLeast(double coverage, double nominal) {
  EXPECT_GE(coverage,
            nominal - kZ * std::sqrt(nominal * (1 - nominal) / kTrials));
}

TEST(SessionCountMetricTest, CoverageIsExactAndNoiseHasTheClaimedScale) {
  // sigma^2 = L0 Linf^2 / (2 rho) = 256 / 0.01 = 25600.
  ASSERT_OK_AND_ASSIGN(SessionCountMetric m,
                       SessionCountMetric::Create(kBounds, 0.005, 0.95));
  EXPECT_NEAR(m.noise().sigma2(), 25600, 1e-3);
  std::vector<double> values;
  const double coverage =
      Coverage([&](RandomWords& rng) { return *m.Release(100000, rng); },
               100000, &values, 1);
  ExpectBinomial(static_cast<int64_t>(coverage * kTrials), kTrials,
                 m.noise().Coverage());
  ExpectVariance(values, 25600, 0);
}

TEST(SessionCountMetricTest, ClipsAtZero) {
  ASSERT_OK_AND_ASSIGN(SessionCountMetric m,
                       SessionCountMetric::Create(kBounds, 0.005, 0.95));
  DeterministicRandom source(2);
  RandomWords rng(&source);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_OK_AND_ASSIGN(Estimate e, m.Release(0, rng));
    EXPECT_GE(e.value, 0);
    EXPECT_GE(e.ci_low, 0);
  }
}

TEST(SumMetricTest, CoversAtNominalLevelWithTheClaimedScale) {
  // Domain [0, 200] step 0.5: fixed point [0, 400]; sigma^2 =
  // L0 (Linf 400)^2 / (2 rho) = 4 * 3200^2 / 1.
  ASSERT_OK_AND_ASSIGN(MeasureDomain domain,
                       MeasureDomain::Create(0, 200, 0.5));
  ASSERT_OK_AND_ASSIGN(SumMetric m,
                       SumMetric::Create(kBounds, domain, 0.5, 0.9));
  const double sigma2 = 4.0 * 3200 * 3200;
  EXPECT_NEAR(m.noise().sigma2(), sigma2, 1);
  std::vector<double> values;
  // True sum 12345.5 in measure units = 24691 in fixed point.
  const double coverage =
      Coverage([&](RandomWords& rng) { return *m.Release(24691, rng); },
               12345.5, &values, 3);
  ExpectCoverageAtLeast(coverage, 0.9);
  // sigma > 256 uses the tail bound, which over-covers by < 1%.
  EXPECT_LE(coverage, 0.9 + 0.01 + kZ * std::sqrt(0.09 / kTrials));
  ExpectVariance(values, sigma2 * 0.25, 0);  // 0.25 = granularity^2
}

TEST(MeanMetricTest, CoversAndHasTheDeltaMethodVariance) {
  ASSERT_OK_AND_ASSIGN(MeasureDomain domain, MeasureDomain::Create(0, 200, 1));
  ASSERT_OK_AND_ASSIGN(MeanMetric m,
                       MeanMetric::Create(kBounds, domain, 0.5, 0.95));
  // The sum's share (1 - f) rho: sigma_s^2 = L0 (Linf 200)^2 / (2 (1 - f)
  // 0.5), up to the sampler's rounding up (< 2^-16).
  const double f = MeanCountShare(kBounds, 0.5, 0.95);
  const double sigma_s2 = 4 * 1600.0 * 1600 / (1 - f);
  EXPECT_NEAR(m.sum_noise().sigma2(), sigma_s2, 1e-6 * sigma_s2);
  EXPECT_LE(m.sum_noise().rho() + m.count_noise().rho(), 0.5 * (1 + 1e-9));
  // n = 10000 sessions all at 100 (the midpoint): S = 0 and
  // mean ~ 100 + S~ / (2 n), Var ~ sigma_s^2 / (4 n^2). The noisy count's
  // relative sd (< 40 / 10000) changes this by < 1e-4 relative.
  const int64_t n = 10000;
  std::vector<double> values;
  const double coverage =
      Coverage([&](RandomWords& rng) { return *m.Release(100 * n, n, rng); },
               100, &values, 4);
  ExpectCoverageAtLeast(coverage, 0.95);
  ExpectVariance(values, sigma_s2 / (4.0 * n * n), 0.001);
}

TEST(MeanMetricTest, CountShareIsChosenByTheBounds) {
  // Large cohorts against the noise (huge rho): near 1 / (1 + sqrt 3) =
  // 0.366, which minimises the mean variance sigma_s^2 + E[theta^2]
  // sigma_n^2 for a mean uniform on the domain (the mean width, an
  // expectation of a square root, puts its optimum at 0.35).
  EXPECT_NEAR(MeanCountShare(kBounds, 1e4, 0.95), 0.366, 0.03);
  // At the defaults' metric share (rho ~ 0.004, sigma_n ~ 200 at f = 1/2)
  // a 2,000-session cohort's count noise is felt in the denominator:
  // more goes to the count, and the choice is data-independent (no
  // argument but public parameters).
  const double f = MeanCountShare(kBounds, 0.004, 0.95);
  EXPECT_GT(f, 0.37);
  EXPECT_LT(f, 0.99);
  // Equal to the domain-free definition for any domain.
  ASSERT_OK_AND_ASSIGN(MeasureDomain small, MeasureDomain::Create(0, 1, 0.001));
  ASSERT_OK_AND_ASSIGN(MeanMetric m,
                       MeanMetric::Create(kBounds, small, 0.004, 0.95));
  EXPECT_NEAR(m.count_noise().sigma2(), 4 * 64 / (2 * 0.004 * f),
              1e-6 * 4 * 64 / (2 * 0.004 * f));
}

TEST(MeanMetricTest, CoversForSmallSkewedCohorts) {
  ASSERT_OK_AND_ASSIGN(MeasureDomain domain, MeasureDomain::Create(0, 200, 1));
  ASSERT_OK_AND_ASSIGN(MeanMetric m,
                       MeanMetric::Create(kBounds, domain, 0.05, 0.9));
  // 50 sessions with total 750: mean 15, near the lower bound.
  std::vector<double> values;
  const double coverage =
      Coverage([&](RandomWords& rng) { return *m.Release(750, 50, rng); }, 15,
               &values, 5);
  ExpectCoverageAtLeast(coverage, 0.9);
  for (double v : values) {
    ASSERT_GE(v, 0);
    ASSERT_LE(v, 200);
  }
}

TEST(RateMetricTest, CoversAndHasTheDeltaMethodVariance) {
  // sigma^2 = L0 Linf^2 / (2 rho) = 256; a = b = 5000:
  // Var(a/(a+b)) ~ sigma^2 (a^2 + b^2) / (a + b)^4 = 1.28e-6.
  ASSERT_OK_AND_ASSIGN(RateMetric m, RateMetric::Create(kBounds, 0.5, 0.95));
  std::vector<double> values;
  const double coverage =
      Coverage([&](RandomWords& rng) { return *m.Release(5000, 10000, rng); },
               0.5, &values, 6);
  ExpectCoverageAtLeast(coverage, 0.95);
  ExpectVariance(values, 1.28e-6, 0.01);
}

TEST(RateMetricTest, CoversForSmallCohortsNearZero) {
  ASSERT_OK_AND_ASSIGN(RateMetric m, RateMetric::Create(kBounds, 0.05, 0.9));
  std::vector<double> values;
  const double coverage =
      Coverage([&](RandomWords& rng) { return *m.Release(3, 60, rng); }, 0.05,
               &values, 7);
  ExpectCoverageAtLeast(coverage, 0.9);
  for (double v : values) {
    ASSERT_GE(v, 0);
    ASSERT_LE(v, 1);
  }
}

// The Laplace rate (per-metric chooser): both counts get Lap_Z(b),
// b = L0 Linf / epsilon = 32 at epsilon 1; a = b = 5000: Var(rate) ~
// V (a^2 + b^2) / (a + b)^4 with V = 2 r / (1 - r)^2 (r = e^{-1/b}), the
// discrete Laplace's exact variance. The values are a mix of Laplaces
// (kurtosis above the Gaussian's ExpectVariance assumes): 3% more model
// error. Coverage at 95% (the Fieller interval with Laplace tails), and
// not far above it (the interval is not the box's).
TEST(RateMetricTest, LaplaceCoversAndHasTheLaplaceVariance) {
  ASSERT_OK_AND_ASSIGN(RateMetric m,
                       RateMetric::CreateLaplace(kBounds, 1.0, 0.95));
  ASSERT_TRUE(m.noise().is_laplace());
  std::vector<double> values;
  const double coverage =
      Coverage([&](RandomWords& rng) { return *m.Release(5000, 10000, rng); },
               0.5, &values, 16);
  ExpectCoverageAtLeast(coverage, 0.95);
  EXPECT_LT(coverage, 0.995);
  const double r = std::exp(-1.0 / 32);
  const double v = 2 * r / ((1 - r) * (1 - r));
  ExpectVariance(values, v * 5e7 / 1e16, 0.03);
}

TEST(RateMetricTest, LaplaceCoversForSmallCohortsNearZero) {
  ASSERT_OK_AND_ASSIGN(RateMetric m,
                       RateMetric::CreateLaplace(kBounds, 0.2, 0.9));
  std::vector<double> values;
  const double coverage =
      Coverage([&](RandomWords& rng) { return *m.Release(3, 60, rng); }, 0.05,
               &values, 17);
  ExpectCoverageAtLeast(coverage, 0.9);
}

// The Laplace mean: its epsilon split tends to 1 / (1 + 3^(1/3)) = 0.41
// for large budgets (aggregations.h MeanCountShareLaplace) and moves to
// the count when the count's noise is felt in the denominator; the
// interval covers large and small skewed cohorts.
TEST(MeanMetricTest, LaplaceSplitIsChosenByTheBoundsAndCovers) {
  EXPECT_NEAR(MeanCountShareLaplace(kBounds, 100, 0.95), 0.41, 0.02);
  EXPECT_GT(MeanCountShareLaplace(kBounds, 0.2, 0.95),
            MeanCountShareLaplace(kBounds, 100, 0.95));
  EXPECT_NEAR(MeanCountShareLaplace(kBounds, 0.01, 0.95), 0.41, 0.01);
  ASSERT_OK_AND_ASSIGN(MeasureDomain domain, MeasureDomain::Create(0, 200, 1));
  ASSERT_OK_AND_ASSIGN(MeanMetric m,
                       MeanMetric::CreateLaplace(kBounds, domain, 1.0, 0.95));
  ASSERT_TRUE(m.count_noise().is_laplace());
  ASSERT_TRUE(m.sum_noise().is_laplace());
  // The two epsilons (rho() = epsilon^2 / 2 for a Laplace) add up to at
  // most the metric's.
  EXPECT_LE(
      std::sqrt(2 * m.count_noise().rho()) + std::sqrt(2 * m.sum_noise().rho()),
      1 + 1e-8);
  std::vector<double> values;
  double coverage = Coverage(
      [&](RandomWords& rng) { return *m.Release(100 * 2000, 2000, rng); }, 100,
      &values, 18);
  ExpectCoverageAtLeast(coverage, 0.95);
  ASSERT_OK_AND_ASSIGN(MeanMetric small,
                       MeanMetric::CreateLaplace(kBounds, domain, 0.2, 0.9));
  values.clear();
  coverage =
      Coverage([&](RandomWords& rng) { return *small.Release(750, 50, rng); },
               15, &values, 19);
  ExpectCoverageAtLeast(coverage, 0.9);
  for (double v : values) {
    ASSERT_GE(v, 0);
    ASSERT_LE(v, 200);
  }
}

TEST(RateMetricTest, RejectsInconsistentCounts) {
  ASSERT_OK_AND_ASSIGN(RateMetric m, RateMetric::Create(kBounds, 0.5, 0.95));
  DeterministicRandom source(1);
  RandomWords rng(&source);
  EXPECT_THAT(m.Release(5, 4, rng),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(m.Release(-1, 4, rng),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(MetricsTest, RejectBadParameters) {
  ASSERT_OK_AND_ASSIGN(MeasureDomain domain, MeasureDomain::Create(0, 1, 0.1));
  EXPECT_THAT(SessionCountMetric::Create({0, 8}, 0.5, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SumMetric::Create(kBounds, domain, -1, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MeanMetric::Create(kBounds, domain, 0.5, 1.5),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RateMetric::Create(kBounds, 0.5, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace cohortd::privacy
