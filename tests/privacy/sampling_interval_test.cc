#include "server/privacy/sampling_interval.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/privacy/query_release.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;
using ::cohortd::testing::StatusIs;

TEST(SamplingIntervalTest, NormalQuantileMatchesTables) {
  EXPECT_NEAR(TwoSidedNormalQuantile(0.95), 1.959964, 1e-6);
  EXPECT_NEAR(TwoSidedNormalQuantile(0.90), 1.644854, 1e-6);
  EXPECT_NEAR(TwoSidedNormalQuantile(0.99), 2.575829, 1e-6);
}

TEST(SamplingIntervalTest, CombinesHalfWidthsInQuadratureAndClips) {
  const Estimate noise{0.5, 0.4, 0.7};
  const double z = TwoSidedNormalQuantile(0.95);
  // se chosen so that z se = 0.1 * sqrt(3)... any value: check formula.
  const double se = 0.2 / z;
  const Estimate e = CombineNoiseAndSampling(noise, se, 0.95, 0, 1);
  EXPECT_DOUBLE_EQ(e.value, 0.5);
  EXPECT_NEAR(e.ci_low, 0.5 - std::sqrt(0.01 + 0.04), 1e-12);
  EXPECT_NEAR(e.ci_high, 0.5 + std::sqrt(0.04 + 0.04), 1e-12);
  // No sampling error: the noise interval unchanged.
  const Estimate same = CombineNoiseAndSampling(noise, 0, 0.95, 0, 1);
  EXPECT_DOUBLE_EQ(same.ci_low, 0.4);
  EXPECT_DOUBLE_EQ(same.ci_high, 0.7);
  // Clipped to the domain.
  const Estimate wide = CombineNoiseAndSampling(noise, 1, 0.95, 0, 1);
  EXPECT_EQ(wide.ci_low, 0);
  EXPECT_EQ(wide.ci_high, 1);
}

// With a huge rho the private SE is the textbook clustered SE up to the
// small upward margin of the upper confidence values.
TEST(SamplingIntervalTest, RatioStandardErrorIsTheClusteredOne) {
  const ContributionBounds bounds{1, 8};
  ASSERT_OK_AND_ASSIGN(ClusteredSamplingVariance v,
                       ClusteredSamplingVariance::Create(
                           bounds, SamplingTarget::kRatio, 1, 10, 1e7, 0.95));
  std::vector<AccountTotal> accounts;
  double sum_y = 0, sum_n = 0;
  for (int i = 0; i < 4000; ++i) {
    const AccountTotal t{i % 3 == 0 ? 3 : 0, 1 + i % 4};
    accounts.push_back(t);
    sum_y += t.y;
    sum_n += t.n;
  }
  const double r = sum_y / sum_n;
  double q = 0;
  for (const AccountTotal& t : accounts) {
    q += (t.y - r * t.n) * (t.y - r * t.n);
  }
  const double expected = std::sqrt(10.0 / 9.0 * q) / sum_n;
  DeterministicRandom source(7);
  RandomWords rng(&source);
  ASSERT_OK_AND_ASSIGN(double se, v.ReleaseStandardError(accounts, r, rng));
  EXPECT_GE(se, expected * 0.999);
  EXPECT_LE(se, expected * 1.01);
}

TEST(SamplingIntervalTest, TotalStandardErrorIsPoissonOne) {
  const ContributionBounds bounds{1, 8};
  ASSERT_OK_AND_ASSIGN(ClusteredSamplingVariance v,
                       ClusteredSamplingVariance::Create(
                           bounds, SamplingTarget::kTotal, 1, 10, 1e7, 0.95));
  std::vector<AccountTotal> accounts;
  double q = 0;
  for (int i = 0; i < 3000; ++i) {
    accounts.push_back({1 + i % 8, 1 + i % 8});
    q += (1 + i % 8) * (1 + i % 8);
  }
  DeterministicRandom source(8);
  RandomWords rng(&source);
  ASSERT_OK_AND_ASSIGN(double se, v.ReleaseStandardError(accounts, 0, rng));
  EXPECT_GE(se, std::sqrt(q) * 0.999);
  EXPECT_LE(se, std::sqrt(q) * 1.01);
}

// An account beyond the stated bound (which bounding prevents) cannot move
// Q by more than the sensitivity: its term is clamped.
TEST(SamplingIntervalTest, AccountTermIsClampedToItsSensitivity) {
  const ContributionBounds bounds{1, 2};
  ASSERT_OK_AND_ASSIGN(ClusteredSamplingVariance v,
                       ClusteredSamplingVariance::Create(
                           bounds, SamplingTarget::kTotal, 1, 10, 1e7, 0.95));
  DeterministicRandom s1(9), s2(9);
  RandomWords r1(&s1), r2(&s2);
  std::vector<AccountTotal> at_bound{{2, 2}}, beyond{{1000, 2}};
  ASSERT_OK_AND_ASSIGN(double a, v.ReleaseStandardError(at_bound, 0, r1));
  ASSERT_OK_AND_ASSIGN(double b, v.ReleaseStandardError(beyond, 0, r2));
  EXPECT_DOUBLE_EQ(a, b);
}

TEST(SamplingIntervalTest, RefusesBadParameters) {
  const ContributionBounds bounds{4, 8};
  EXPECT_THAT(ClusteredSamplingVariance::Create(bounds, SamplingTarget::kRatio,
                                                0, 10, 0.01, 0.95)
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ClusteredSamplingVariance::Create(bounds, SamplingTarget::kRatio,
                                                1, 1, 0.01, 0.95)
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  QueryPrivacyParams params;
  MetricRequest quantiles{
      MetricKind::kQuantiles, *MeasureDomain::Create(0, 10, 1), {0.5}, 0};
  quantiles.sampling_interval = true;
  EXPECT_THAT(QueryReleaser::Create(params, {quantiles}, 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// A sampling-interval metric spends a second share: the per-metric rho of
// one RATE with sampling equals that of two plain metrics.
TEST(SamplingIntervalTest, ChargedAsASecondMetricShare) {
  QueryPrivacyParams params;
  params.bounds = {4, 8};
  MetricRequest rate{MetricKind::kRate, {}, {}};
  rate.sampling_interval = true;
  ASSERT_OK_AND_ASSIGN(QueryReleaser with,
                       QueryReleaser::Create(params, {rate}));
  ASSERT_OK_AND_ASSIGN(
      QueryReleaser two,
      QueryReleaser::Create(params, {{MetricKind::kRate, {}, {}},
                                     {MetricKind::kSessions, {}, {}}}));
  EXPECT_DOUBLE_EQ(with.budget().rho_per_metric, two.budget().rho_per_metric);
  EXPECT_DOUBLE_EQ(with.budget().rho_total, two.budget().rho_total);
}

// GEOMETRIC_MEAN under NOISE_AND_SAMPLING: the sampling part is the ratio
// case on ln values, combined in log units and exp'ed back. Accounts with
// 4 sessions each at 2 or at 32 (half each): geometric mean 8; the
// per-account mean of ln differs from ln 8 by ln 4, so the clustered SE of
// the log mean over m accounts is ln 4 / sqrt(m) (times sqrt(m/(m-1))).
TEST(SamplingIntervalTest, GeometricMeanWidensOnTheLogScale) {
  QueryPrivacyParams params;
  params.bounds = {4, 8};
  params.epsilon = 50;  // little noise: the sampling part dominates
  absl::StatusOr<MeasureDomain> domain = MeasureDomain::Create(0, 200, 0.01);
  ASSERT_OK(domain);
  MetricRequest geo{MetricKind::kGeometricMean, *domain, {}};
  geo.gate = 0;
  ASSERT_OK_AND_ASSIGN(QueryReleaser noise_only,
                       QueryReleaser::Create(params, {geo}, 1));
  geo.sampling_interval = true;
  ASSERT_OK_AND_ASSIGN(QueryReleaser sampled,
                       QueryReleaser::Create(params, {geo}, 1));
  const GeometricMeanMetric* mechanism = sampled.geometric_mean(0);
  ASSERT_NE(mechanism, nullptr);

  constexpr int kAccounts = 400;
  std::vector<AccountTotal> totals;
  MetricInput in;
  for (int a = 0; a < kAccounts; ++a) {
    const int64_t log_fp = mechanism->LogFixedPoint(a % 2 == 0 ? 200 : 3200);
    totals.push_back({4 * log_fp, 4});
    in.sum_fp += 4 * log_fp;
    in.sessions += 4;
  }
  in.account_totals = totals;
  const double se = std::log(4.0) / std::sqrt(kAccounts - 1.0);
  const double z = TwoSidedNormalQuantile(0.95);

  DeterministicRandom source(7);
  RandomWords rng(&source);
  for (int trial = 0; trial < 20; ++trial) {
    ASSERT_OK_AND_ASSIGN(
        CohortRelease plain,
        noise_only.ReleaseCohort(kAccounts, {kAccounts}, {in}, rng));
    ASSERT_OK_AND_ASSIGN(
        CohortRelease wide,
        sampled.ReleaseCohort(kAccounts, {kAccounts}, {in}, rng));
    ASSERT_TRUE(plain.released && wide.released);
    const Estimate& p = plain.metrics[0].estimate;
    const Estimate& w = wide.metrics[0].estimate;
    // Within the metric's domain [floor, hi] = [0.01, 200].
    EXPECT_GE(w.ci_low, 0.01 * (1 - 1e-9));
    EXPECT_LE(w.ci_high, 200 * (1 + 1e-9));
    EXPECT_LT(w.ci_low, w.value);
    EXPECT_GT(w.ci_high, w.value);
    // In log units each side is about z SE (an upper confidence value:
    // low only when Q's noise is below -c_Q; 0.9 leaves room for that)
    // and not far above it with the noise added.
    const double up = std::log(w.ci_high / w.value);
    const double down = std::log(w.value / w.ci_low);
    const double noise = std::log(p.ci_high / p.ci_low) / 2;
    EXPECT_GE(up, z * se * 0.9) << trial;
    EXPECT_GE(down, z * se * 0.9) << trial;
    EXPECT_LE(up, std::hypot(2 * z * se, 2 * noise)) << trial;
    EXPECT_LE(down, std::hypot(2 * z * se, 2 * noise)) << trial;
    EXPECT_GT(w.ci_high - w.ci_low, p.ci_high - p.ci_low);
  }
}

}  // namespace
}  // namespace cohortd::privacy
