#include "server/privacy/gaussian_mechanism.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"
#include "tests/privacy/stat_checks.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;
using ::cohortd::testing::ExpectBinomial;
using ::cohortd::testing::StatusIs;

double BruteTail(double sigma2, int64_t m) {
  double num = 0, den = 0;
  for (int64_t z = -2000; z <= 2000; ++z) {
    const double w = std::exp(-static_cast<double>(z) * z / (2 * sigma2));
    den += w;
    if (z >= m) num += w;
  }
  return num / den;
}

TEST(DiscreteGaussianUpperTailTest, ExactForSmallSigma) {
  for (double sigma2 : {0.25, 1.0, 4.0, 100.0}) {
    for (int64_t m : {1, 2, 5, 20}) {
      EXPECT_NEAR(DiscreteGaussianUpperTail(sigma2, m), BruteTail(sigma2, m),
                  1e-12 + 1e-9 * BruteTail(sigma2, m));
      EXPECT_GE(DiscreteGaussianUpperTail(sigma2, m), BruteTail(sigma2, m));
    }
  }
}

TEST(DiscreteGaussianUpperTailTest, UpperBoundsAndIsTightForLargeSigma) {
  const double sigma2 = 1e6;  // sigma = 1000 > 256: the bound branch
  for (int64_t m : {1, 1000, 3000, 5000}) {
    const double bound = DiscreteGaussianUpperTail(sigma2, m);
    const double continuous = 0.5 * std::erfc(m / std::sqrt(2 * sigma2));
    EXPECT_GE(bound, continuous);
    EXPECT_LT(bound, continuous * 1.01 + 1e-3);
  }
}

TEST(GaussianMechanismTest, SigmaFromRhoAndSpentRhoWithinGrant) {
  // Delta_2^2 = 64, rho = 0.5 => sigma^2 = 64.
  ASSERT_OK_AND_ASSIGN(GaussianMechanism m,
                       GaussianMechanism::Create(64, 0.5, 0.95));
  EXPECT_GE(m.sigma2(), 64);
  EXPECT_LT(m.sigma2(), 64.001);
  EXPECT_LE(m.rho(), 0.5 * (1 + 1e-8));
}

TEST(GaussianMechanismTest, HalfWidthIsTheSmallestCoveringOne) {
  for (double sigma2 : {1.0, 30.0, 1e6}) {
    ASSERT_OK_AND_ASSIGN(GaussianMechanism m,
                         GaussianMechanism::Create(2 * sigma2, 1, 0.95));
    const int64_t c = m.HalfWidth();
    EXPECT_GE(m.Coverage(), 0.95);
    EXPECT_GE(1 - 2 * DiscreteGaussianUpperTail(m.sigma2(), c + 1), 0.95);
    EXPECT_LT(1 - 2 * DiscreteGaussianUpperTail(m.sigma2(), c), 0.95);
    // Close to the continuous 1.96 sigma.
    EXPECT_NEAR(static_cast<double>(c), 1.96 * std::sqrt(sigma2),
                0.02 * std::sqrt(sigma2) + 1.5);
  }
}

TEST(GaussianMechanismTest, EmpiricalCoverageMatchesExactCoverage) {
  ASSERT_OK_AND_ASSIGN(GaussianMechanism m,
                       GaussianMechanism::Create(16, 0.08, 0.9));
  DeterministicRandom source(5);
  RandomWords rng(&source);
  constexpr int kTrials = 100000;
  int64_t covered = 0;
  for (int i = 0; i < kTrials; ++i) {
    ASSERT_OK_AND_ASSIGN(int64_t noisy, m.AddNoise(1000, rng));
    covered += std::abs(noisy - 1000) <= m.HalfWidth();
  }
  ExpectBinomial(covered, kTrials, m.Coverage());
}

TEST(GaussianMechanismTest, RejectsBadParametersAndOverflow) {
  EXPECT_THAT(GaussianMechanism::Create(0, 1, 0.9),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(GaussianMechanism::Create(1, 0, 0.9),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(GaussianMechanism::Create(1, 1, 1.0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(GaussianMechanism m,
                       GaussianMechanism::Create(1e6, 1, 0.9));
  DeterministicRandom source(5);
  RandomWords rng(&source);
  int64_t overflows = 0;
  for (int i = 0; i < 10; ++i) {
    overflows += !m.AddNoise(INT64_MAX, rng).ok();
  }
  EXPECT_GT(overflows, 0);
}

}  // namespace
}  // namespace cohortd::privacy
