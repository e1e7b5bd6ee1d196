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

}  // namespace
}  // namespace cohortd::privacy
