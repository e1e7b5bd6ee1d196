// Predicted half-widths (aggregations.h): the data-independent width that
// accuracy-first queries search epsilon with, checked against the widths
// the mechanisms actually release.
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/privacy/aggregations.h"
#include "server/privacy/query_release.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;
using ::cohortd::testing::StatusIs;

const ContributionBounds kBounds{4, 8};
constexpr int kTrials = 4000;

MeasureDomain Domain(double lower, double upper, double granularity) {
  absl::StatusOr<MeasureDomain> d =
      MeasureDomain::Create(lower, upper, granularity);
  EXPECT_OK(d);
  return *d;
}

// The mean of (ci_high - ci_low) / 2 over kTrials releases.
double MeanObservedHalfWidth(
    const std::function<Estimate(RandomWords&)>& release, uint64_t seed) {
  DeterministicRandom source(seed);
  RandomWords rng(&source);
  double total = 0;
  for (int i = 0; i < kTrials; ++i) {
    const Estimate e = release(rng);
    total += (e.ci_high - e.ci_low) / 2;
  }
  return total / kTrials;
}

TEST(PredictedHalfWidthTest, CountsAndSumsReleaseExactlyThePredictedWidth) {
  ASSERT_OK_AND_ASSIGN(SessionCountMetric count,
                       SessionCountMetric::Create(kBounds, 0.1, 0.95));
  const MeasureDomain value = Domain(0, 5000, 0.01);
  ASSERT_OK_AND_ASSIGN(SumMetric sum,
                       SumMetric::Create(kBounds, value, 0.1, 0.95));
  DeterministicRandom source(1);
  RandomWords rng(&source);
  for (int i = 0; i < 200; ++i) {
    // Far from 0, so nothing is clipped.
    ASSERT_OK_AND_ASSIGN(Estimate c, count.Release(100000, rng));
    EXPECT_DOUBLE_EQ((c.ci_high - c.ci_low) / 2, count.PredictedHalfWidth(7));
    ASSERT_OK_AND_ASSIGN(Estimate s, sum.Release(100000000, rng));
    EXPECT_NEAR((s.ci_high - s.ci_low) / 2, sum.PredictedHalfWidth(7), 1e-6);
  }
  EXPECT_GT(count.PredictedHalfWidth(1), 0);
}

// RATE's interval is Fieller's (ratio_interval.h), whose width depends on
// the rate: the prediction is the widest zero-noise width over the rates,
// so no rate's mean observed width exceeds it (up to the noise in n), the
// widest is close to it, and it scales as 1 / n.
TEST(PredictedHalfWidthTest, RateWidthIsBoundedOverTheRate) {
  ASSERT_OK_AND_ASSIGN(RateMetric rate, RateMetric::Create(kBounds, 0.1, 0.95));
  for (int64_t n : {500, 2000, 8000}) {
    const double predicted = rate.PredictedHalfWidth(n);
    double widest = 0;
    for (double r : {0.0, 0.02, 0.05, 0.1, 0.3, 0.5, 0.9, 1.0}) {
      const int64_t matching = std::llround(r * n);
      const double observed = MeanObservedHalfWidth(
          [&](RandomWords& rng) { return *rate.Release(matching, n, rng); }, n);
      // Noisy n differs from n by a few noise sds (~20 here): 5%.
      EXPECT_LE(observed, predicted * 1.05) << n << " " << r;
      widest = std::max(widest, observed);
    }
    EXPECT_GE(widest, 0.8 * predicted) << n;
  }
  EXPECT_NEAR(rate.PredictedHalfWidth(4000) * 2, rate.PredictedHalfWidth(2000),
              0.02 * rate.PredictedHalfWidth(2000));
  EXPECT_EQ(rate.PredictedHalfWidth(1), 0.5);
}

// For MEAN and GEOMETRIC_MEAN the prediction bounds the width over the
// cohort's value: no value's mean observed width exceeds it (up to the
// noise in n), and the widest is not far below it (so the accuracy the
// search promises is not wasted budget).
TEST(PredictedHalfWidthTest, MeanWidthIsBoundedOverTheCohortValue) {
  const MeasureDomain value = Domain(0, 1, 0.001);
  ASSERT_OK_AND_ASSIGN(MeanMetric mean,
                       MeanMetric::Create(kBounds, value, 0.1, 0.95));
  const int64_t n = 2000;
  const double predicted = mean.PredictedHalfWidth(n);
  double widest = 0;
  for (double share : {0.0, 0.5, 0.8, 0.9, 0.95, 1.0}) {
    const __int128 sum = static_cast<__int128>(share * 1000 * n);
    const double observed = MeanObservedHalfWidth(
        [&](RandomWords& rng) { return *mean.Release(sum, n, rng); }, 3);
    EXPECT_LE(observed, predicted * 1.02) << share;
    widest = std::max(widest, observed);
  }
  EXPECT_GE(widest, 0.6 * predicted);
}

TEST(PredictedHalfWidthTest, GeometricMeanWidthIsBoundedOverTheCohortValue) {
  const MeasureDomain value = Domain(0, 200, 0.01);
  ASSERT_OK_AND_ASSIGN(GeometricMeanMetric geo,
                       GeometricMeanMetric::Create(kBounds, value, 0.5, 0.95));
  const int64_t n = 5000;
  const double predicted = geo.PredictedHalfWidth(n);
  double widest = 0;
  for (double v : {0.01, 1.0, 12.0, 150.0, 190.0, 200.0}) {
    const __int128 sum =
        static_cast<__int128>(geo.LogFixedPoint(std::llround(v / 0.01))) * n;
    const double observed = MeanObservedHalfWidth(
        [&](RandomWords& rng) { return *geo.Release(sum, n, rng); }, 5);
    EXPECT_LE(observed, predicted * 1.02) << v;
    widest = std::max(widest, observed);
  }
  EXPECT_GE(widest, 0.5 * predicted);
}

TEST(PredictedHalfWidthTest, ReleaserDispatchesAndWidthsShrinkWithEpsilon) {
  std::vector<MetricRequest> metrics(6);
  metrics[0].kind = MetricKind::kSessions;
  metrics[1].kind = MetricKind::kAccounts;
  metrics[2].kind = MetricKind::kMean;
  metrics[2].domain = Domain(0, 1, 0.001);
  metrics[2].gate = 0;
  metrics[3].kind = MetricKind::kRate;
  metrics[4].kind = MetricKind::kGeometricMean;
  metrics[4].domain = Domain(0, 200, 0.01);
  metrics[4].gate = 1;
  metrics[5].kind = MetricKind::kSum;
  metrics[5].domain = Domain(0, 200, 0.01);
  metrics[5].gate = 1;
  std::vector<double> previous(metrics.size(), INFINITY);
  for (double epsilon : {0.05, 0.1, 0.3, 1.0, 3.0, 10.0}) {
    QueryPrivacyParams params;
    params.epsilon = epsilon;
    params.delta = 1e-8;
    ASSERT_OK_AND_ASSIGN(QueryReleaser releaser,
                         QueryReleaser::Create(params, metrics, 2));
    for (size_t i = 0; i < metrics.size(); ++i) {
      ASSERT_OK_AND_ASSIGN(double w, releaser.PredictedHalfWidth(i, 1000));
      EXPECT_GT(w, 0) << i;
      EXPECT_LE(w, previous[i]) << i << " at epsilon " << epsilon;
      previous[i] = w;
    }
    ASSERT_OK_AND_ASSIGN(double accounts, releaser.PredictedHalfWidth(1, 9));
    EXPECT_EQ(accounts, releaser.partition_selector().AccountsHalfWidth());
    EXPECT_THAT(releaser.PredictedHalfWidth(6, 1000),
                StatusIs(absl::StatusCode::kOutOfRange));
  }

  std::vector<MetricRequest> quantiles(1);
  quantiles[0].kind = MetricKind::kQuantiles;
  quantiles[0].domain = Domain(0, 200, 0.01);
  quantiles[0].quantiles = {0.5};
  quantiles[0].gate = 0;
  ASSERT_OK_AND_ASSIGN(
      QueryReleaser q,
      QueryReleaser::Create(QueryPrivacyParams(), quantiles, 1));
  EXPECT_THAT(q.PredictedHalfWidth(0, 1000),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace cohortd::privacy
