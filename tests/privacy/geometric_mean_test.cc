// GeometricMeanMetric: exp of the DP mean of floored, clamped logs; its
// floor for zeros, its log-clamp domain and the coverage of its interval.
#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/privacy/aggregations.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"
#include "tests/privacy/stat_checks.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;
using ::cohortd::testing::kZ;
using ::cohortd::testing::StatusIs;

const ContributionBounds kBounds{4, 8};

MeasureDomain Domain(double lower, double upper, double granularity) {
  absl::StatusOr<MeasureDomain> d =
      MeasureDomain::Create(lower, upper, granularity);
  EXPECT_OK(d);
  return *d;
}

TEST(GeometricMeanMetricTest, ZerosCountAsTheSmallestPositiveGridPoint) {
  // lines_added: [0, 10000] in whole lines: the floor is 1 line.
  const MeasureDomain lines = Domain(0, 10000, 1);
  EXPECT_EQ(GeometricMeanMetric::FloorFixedPoint(lines), 1);
  ASSERT_OK_AND_ASSIGN(GeometricMeanMetric m,
                       GeometricMeanMetric::Create(kBounds, lines, 1, 0.95));
  EXPECT_EQ(m.LogFixedPoint(0), 0);  // ln 1
  EXPECT_EQ(m.LogFixedPoint(1), 0);
  EXPECT_EQ(m.LogFixedPoint(100), std::llround(std::log(100.0) * 1e4));
  // The log-clamp domain is [ln floor, ln hi].
  EXPECT_EQ(m.log_domain().lower_fp, 0);
  EXPECT_EQ(m.log_domain().upper_fp,
            static_cast<int64_t>(std::floor(std::log(10000.0) * 1e4)));
  EXPECT_EQ(m.LogFixedPoint(20000), m.log_domain().upper_fp);

  // actions_per_prompt: [0, 200] in steps of 0.01: the floor is 0.01.
  const MeasureDomain actions = Domain(0, 200, 0.01);
  EXPECT_EQ(GeometricMeanMetric::FloorFixedPoint(actions), 1);
  // A positive lower bound is its own floor.
  EXPECT_EQ(GeometricMeanMetric::FloorFixedPoint(Domain(2, 50, 0.5)), 4);
}

TEST(GeometricMeanMetricTest, ValueIsExpOfTheMeanOfLogs) {
  // With a huge rho the noise is negligible: {0 -> 1, 10, 100} has
  // geometric mean (1 * 10 * 100)^(1/3) = 10.
  const MeasureDomain lines = Domain(0, 10000, 1);
  ASSERT_OK_AND_ASSIGN(GeometricMeanMetric m,
                       GeometricMeanMetric::Create(kBounds, lines, 1e9, 0.95));
  const std::vector<int64_t> values = {0, 10, 100};
  __int128 sum = 0;
  for (int64_t v : values) sum += m.LogFixedPoint(v);
  DeterministicRandom source(7);
  RandomWords rng(&source);
  ASSERT_OK_AND_ASSIGN(Estimate e, m.Release(sum, 3, rng));
  EXPECT_NEAR(e.value, 10.0, 0.01);
  EXPECT_LE(e.ci_low, e.value);
  EXPECT_GE(e.ci_high, e.value);
}

TEST(GeometricMeanMetricTest, IntervalCoversTheBoundedGeometricMean) {
  // 300 sessions of actions per prompt from 0.5 to 150, some zeros.
  const MeasureDomain actions = Domain(0, 200, 0.01);
  ASSERT_OK_AND_ASSIGN(GeometricMeanMetric m, GeometricMeanMetric::Create(
                                                  kBounds, actions, 0.5, 0.95));
  __int128 sum = 0;
  const int64_t n = 300;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = i % 25 == 0 ? 0 : 50 + (i * 7919) % 15000;
    sum += m.LogFixedPoint(v);
  }
  const double truth =
      std::exp(static_cast<double>(sum) * GeometricMeanMetric::kLogGranularity /
               static_cast<double>(n));
  DeterministicRandom source(11);
  RandomWords rng(&source);
  const int trials = 5000;
  int covered = 0;
  std::vector<double> widths;
  for (int i = 0; i < trials; ++i) {
    ASSERT_OK_AND_ASSIGN(Estimate e, m.Release(sum, n, rng));
    ASSERT_LE(e.ci_low, e.value);
    ASSERT_LE(e.value, e.ci_high);
    ASSERT_GE(e.ci_low, 0.01 - 1e-9);
    ASSERT_LE(e.ci_high, 200 + 1e-9);
    covered += e.ci_low <= truth && truth <= e.ci_high;
    widths.push_back(e.ci_high - e.ci_low);
  }
  // Coverage >= 0.95 up to kZ binomial standard errors; the intervals
  // vary with the noise (they would not if the noise were missing).
  const double se = std::sqrt(0.95 * 0.05 / trials);
  EXPECT_GE(static_cast<double>(covered) / trials, 0.95 - kZ * se);
  EXPECT_LT(static_cast<double>(covered) / trials, 1.0);
  EXPECT_GT(*std::max_element(widths.begin(), widths.end()),
            *std::min_element(widths.begin(), widths.end()));
}

TEST(GeometricMeanMetricTest, RefusesADomainWithoutAPositiveRange) {
  EXPECT_THAT(GeometricMeanMetric::Create(kBounds, Domain(-5, 0, 1), 1, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(GeometricMeanMetric::Create(kBounds, Domain(-5, 1, 1), 1, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace cohortd::privacy
