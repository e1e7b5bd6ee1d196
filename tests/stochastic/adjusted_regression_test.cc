// Adjusted rates (privacy/adjusted_regression.h) on a confounded
// population with a planted effect.
//
// Two cohorts (novice, expert) and one control (work mode: fix, build).
// Success probability 0.10 + 0.10 [expert] + 0.30 [build], i.e. an
// additive model; novices work mostly in "fix" (80%), experts mostly in
// "build" (80%), so the raw rates differ by 0.10 + 0.30 * 0.6 = 0.28
// while the adjusted ones differ by the planted 0.10.
//
// Coverage: the noise interval covers the noiseless adjusted value (the
// same estimator on the exact statistics) in at least 95% of releases up
// to a binomial tolerance (P[Bin(R, 0.05) > t] <= 1e-6). The delta-method
// interval is an approximation, so this checks it. Positive control: the
// raw (unadjusted) difference is far outside what the adjusted estimate
// allows, i.e. the adjustment removes the planted confounding.
#include "server/privacy/adjusted_regression.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;

int BinomialUpperBound(int n, double p, double tail) {
  double cdf = 0;
  for (int t = 0; t <= n; ++t) {
    cdf += std::exp(std::lgamma(n + 1.0) - std::lgamma(t + 1.0) -
                    std::lgamma(n - t + 1.0) + t * std::log(p) +
                    (n - t) * std::log1p(-p));
    if (1 - cdf <= tail) return t;
  }
  return n;
}

struct Rows {
  std::vector<int32_t> cohort, levels;
  std::vector<int64_t> y;
  double raw[2] = {0, 0};
};

Rows Population(uint64_t seed, int sessions_per_cohort) {
  DeterministicRandom source(seed);
  RandomWords words(&source);
  auto uniform = [&] {
    uint64_t w = 0;
    EXPECT_TRUE(words.Next(&w));
    return static_cast<double>(w >> 11) * 0x1.0p-53;
  };
  Rows rows;
  double matches[2] = {0, 0};
  for (int c = 0; c < 2; ++c) {
    for (int i = 0; i < sessions_per_cohort; ++i) {
      const bool build = uniform() < (c == 1 ? 0.8 : 0.2);
      const bool success = uniform() < 0.1 + 0.1 * c + 0.3 * build;
      rows.cohort.push_back(c);
      rows.levels.push_back(build ? 1 : 0);
      rows.y.push_back(success ? 1 : -1);
      matches[c] += success;
    }
    rows.raw[c] = matches[c] / sessions_per_cohort;
  }
  return rows;
}

double Rate(double centred) { return (centred + 1) / 2; }

TEST(AdjustedRegressionTest, RecoversThePlantedEffectAndCoversNoiseless) {
  const ContributionBounds bounds{1, 8};
  const Rows rows = Population(5, 40000);
  ASSERT_OK_AND_ASSIGN(AdjustedRegression exact,
                       AdjustedRegression::Create(bounds, {2}, 1, 1e9, 0.95));
  ASSERT_OK_AND_ASSIGN(AdjustedRegression noisy,
                       AdjustedRegression::Create(bounds, {2}, 1, 0.05, 0.95));
  DeterministicRandom s0(1);
  RandomWords r0(&s0);
  ASSERT_OK_AND_ASSIGN(std::vector<Estimate> truth,
                       exact.Release(2, rows.cohort, rows.levels, rows.y, r0));
  ASSERT_EQ(truth.size(), 2u);
  const double adjusted_gap = Rate(truth[1].value) - Rate(truth[0].value);
  const double raw_gap = rows.raw[1] - rows.raw[0];
  std::printf("raw gap %.4f, adjusted gap %.4f (planted 0.10)\n", raw_gap,
              adjusted_gap);
  // The noiseless adjusted gap is the planted effect up to sampling
  // (sd ~ 0.005 at 40,000 sessions per cohort).
  EXPECT_NEAR(adjusted_gap, 0.10, 0.03);
  EXPECT_NEAR(raw_gap, 0.28, 0.03);  // the confounding the test plants

  const int reps = 400;
  const int t = BinomialUpperBound(reps, 0.05, 1e-6);
  DeterministicRandom s1(2);
  RandomWords r1(&s1);
  int misses = 0, raw_inside = 0;
  for (int r = 0; r < reps; ++r) {
    ASSERT_OK_AND_ASSIGN(
        std::vector<Estimate> e,
        noisy.Release(2, rows.cohort, rows.levels, rows.y, r1));
    ASSERT_EQ(e.size(), 2u);
    for (int c = 0; c < 2; ++c) {
      misses +=
          !(e[c].ci_low <= truth[c].value && truth[c].value <= e[c].ci_high);
    }
    // Positive control: the raw expert rate (0.44; adjusted at the
    // overall mix 0.35) must not pass for the adjusted one.
    raw_inside +=
        Rate(e[1].ci_low) <= rows.raw[1] && rows.raw[1] <= Rate(e[1].ci_high);
  }
  std::printf("misses %d of %d (allowed %d)\n", misses, 2 * reps,
              BinomialUpperBound(2 * reps, 0.05, 1e-6));
  EXPECT_LE(misses, BinomialUpperBound(2 * reps, 0.05, 1e-6));
  EXPECT_LE(raw_inside, t);
}

TEST(AdjustedRegressionTest, RefusesBadInput) {
  const ContributionBounds bounds{1, 8};
  EXPECT_FALSE(AdjustedRegression::Create(bounds, {}, 1, 1, 0.95).ok());
  EXPECT_FALSE(AdjustedRegression::Create(bounds, {0}, 1, 1, 0.95).ok());
  ASSERT_OK_AND_ASSIGN(AdjustedRegression r,
                       AdjustedRegression::Create(bounds, {2}, 1, 1, 0.95));
  DeterministicRandom s(3);
  RandomWords rng(&s);
  EXPECT_FALSE(r.Release(1, {0}, {2}, {1}, rng).ok());  // level 2 of 2
  EXPECT_FALSE(r.Release(1, {1}, {0}, {1}, rng).ok());  // cohort 1 of 1
  EXPECT_FALSE(r.Release(1, {0}, {}, {1}, rng).ok());   // no levels
}

}  // namespace
}  // namespace cohortd::privacy
