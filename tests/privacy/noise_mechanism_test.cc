#include "server/privacy/noise_mechanism.h"

#include <cmath>
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
using ::cohortd::testing::ExpectMatchesPmf;
using ::cohortd::testing::StatusIs;

double LaplacePmf(double b, int64_t x) {
  const double r = std::exp(-1 / b);
  return (1 - r) / (1 + r) * std::pow(r, std::llabs(x));
}

// The half-width is the smallest c with P[|Z| <= c] >= confidence, from
// the exact pmf.
TEST(LaplaceMechanismTest, HalfWidthIsTheExactSmallestQuantile) {
  for (double b : {0.5, 3.0, 10.0, 1000.0}) {
    for (double conf : {0.9, 0.95, 0.99}) {
      const int64_t c = DiscreteLaplaceHalfWidth(b, conf);
      double mass = LaplacePmf(b, 0);
      for (int64_t x = 1; x <= c; ++x) mass += 2 * LaplacePmf(b, x);
      EXPECT_GE(mass, conf - 1e-12) << b << " " << conf;
      if (c > 0) {
        EXPECT_LT(mass - 2 * LaplacePmf(b, c), conf) << b << " " << conf;
      }
    }
  }
  // Google's count at epsilon 0.5, L1 5 (continuous +-29.96): the
  // smallest c with 2 r^(c+1) / (1 + r) <= 0.05, r = e^-0.1, is 30.
  EXPECT_EQ(DiscreteLaplaceHalfWidth(10, 0.95), 30);
}

TEST(LaplaceMechanismTest, SamplesFollowThePmfAtTheRoundedUpScale) {
  ASSERT_OK_AND_ASSIGN(LaplaceMechanism m,
                       LaplaceMechanism::Create(5, 0.5, 0.95));
  EXPECT_GE(m.scale(), 10.0);
  EXPECT_NEAR(m.scale(), 10.0, 1e-4);
  EXPECT_LE(m.epsilon(), 0.5 * (1 + 1e-8));
  DeterministicRandom source(41);
  RandomWords rng(&source);
  std::vector<int64_t> samples;
  int64_t inside = 0;
  for (int i = 0; i < 100000; ++i) {
    ASSERT_OK_AND_ASSIGN(int64_t v, m.AddNoise(0, rng));
    samples.push_back(v);
    inside += std::llabs(v) <= m.HalfWidth();
  }
  const double b = m.scale();
  ExpectMatchesPmf(
      samples, [b](int64_t x) { return LaplacePmf(b, x); }, 400);
  ExpectBinomial(inside, 100000, m.Coverage());
  EXPECT_THAT(LaplaceMechanism::Create(0, 1, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(LaplaceMechanism::Create(1, 1e-12, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// A positive control for the moment checks above: a mechanism whose scale
// is half the claimed one is rejected by the same pmf test.
TEST(LaplaceMechanismTest, HalfScaleFailsThePmfCheck) {
  ASSERT_OK_AND_ASSIGN(LaplaceMechanism m,
                       LaplaceMechanism::Create(5, 1.0, 0.95));
  DeterministicRandom source(42);
  RandomWords rng(&source);
  std::vector<int64_t> samples;
  for (int i = 0; i < 20000; ++i) samples.push_back(*m.AddNoise(0, rng));
  double var = 0;
  for (int64_t s : samples) var += static_cast<double>(s) * s;
  var /= samples.size();
  // Claimed scale 10 has variance 2r/(1-r)^2 ~ 200; the actual ~ 50.
  const NoiseMechanism claimed = *LaplaceMechanism::Create(5, 0.5, 0.95);
  EXPECT_LT(var, claimed.sigma2() / 2);
  EXPECT_NEAR(var, NoiseMechanism(m).sigma2(),
              0.1 * NoiseMechanism(m).sigma2());
}

}  // namespace
}  // namespace cohortd::privacy
