#include "server/privacy/ratio_interval.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/privacy/samplers.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;
using ::cohortd::testing::StatusIs;

constexpr double kAlpha = 0.05;

// The largest miss count m with P[Bin(n, p) >= m] > 1e-6, plus one: a
// correct interval (miss probability <= p) exceeds it with probability
// <= 1e-6 per check (exact binomial tail, summed in log space).
int64_t MaxMisses(int64_t n, double p) {
  std::vector<double> log_pmf(n + 1);
  for (int64_t k = 0; k <= n; ++k) {
    log_pmf[k] = std::lgamma(n + 1.0) - std::lgamma(k + 1.0) -
                 std::lgamma(n - k + 1.0) + k * std::log(p) +
                 (n - k) * std::log1p(-p);
  }
  double tail = 0;
  for (int64_t m = n; m >= 0; --m) {
    tail += std::exp(log_pmf[m]);
    if (tail > 1e-6) return m;  // P[X >= m] > 1e-6: m misses are plausible
  }
  return n;
}

// A sampler of one noise law, for the simulations.
struct Noise {
  NoiseLaw law;
  std::function<int64_t(RandomWords&)> sample;
};

Noise Gaussian(double sigma2) {
  const DiscreteGaussian g = *DiscreteGaussian::CreateAtLeast(sigma2);
  return {*NoiseLaw::DiscreteGaussian(g.sigma2()),
          [g](RandomWords& rng) { return *g.Sample(rng); }};
}

Noise Laplace(uint64_t scale) {
  const DiscreteLaplace l = *DiscreteLaplace::Create(scale, 1);
  return {*NoiseLaw::DiscreteLaplace(static_cast<double>(scale)),
          [l](RandomWords& rng) { return *l.Sample(rng); }};
}

// P[X >= m] for m = 0 .. last from a pmf on the integers >= 0, summed
// from the far tail down (no cancellation).
std::vector<long double> UpperTails(
    const std::function<long double(int64_t)>& pmf, int64_t last, int64_t far) {
  std::vector<long double> tails(last + 1);
  long double sum = 0;
  for (int64_t x = far; x >= 0; --x) {
    sum += pmf(x);
    if (x <= last) tails[x] = sum;
  }
  return tails;
}

TEST(NoiseLawTest, LaplaceTailIsTheExactPmfSum) {
  for (double t : {0.5, 3.0, 40.0}) {
    ASSERT_OK_AND_ASSIGN(NoiseLaw law, NoiseLaw::DiscreteLaplace(t));
    const long double p = std::exp(-1.0L / t);
    const int64_t last = static_cast<int64_t>(20 * t) + 5;
    const std::vector<long double> tails = UpperTails(
        [&](int64_t x) {
          return (1 - p) / (1 + p) * std::exp(-static_cast<long double>(x) / t);
        },
        last, last + static_cast<int64_t>(200 * t) + 200);
    for (int64_t m = 1; m <= last; ++m) {
      const double exact = static_cast<double>(2 * tails[m]);
      const double got = law.TwoSidedTail(m);
      EXPECT_GE(got, exact * (1 - 1e-12)) << t << " " << m;
      EXPECT_LE(got, exact * (1 + 1e-8)) << t << " " << m;
    }
  }
}

TEST(NoiseLawTest, HalfWidthIsTheSmallestCoveringOne) {
  const NoiseLaw laws[] = {
      *NoiseLaw::DiscreteGaussian(1), *NoiseLaw::DiscreteGaussian(961),
      *NoiseLaw::DiscreteGaussian(1e6), *NoiseLaw::DiscreteLaplace(0.7),
      *NoiseLaw::DiscreteLaplace(20)};
  for (const NoiseLaw& law : laws) {
    for (double alpha : {0.5, 0.05, 0.0253, 1e-6}) {
      const int64_t h = law.HalfWidth(alpha);
      EXPECT_LE(law.TwoSidedTail(h + 1), alpha);
      if (h > 0) {
        EXPECT_GT(law.TwoSidedTail(h), alpha);
      }
    }
  }
  // 95% of N(0, 961) is +-60.8; the discrete one's is the same to +-1.
  EXPECT_NEAR(laws[1].HalfWidth(0.05), 60.8, 1.5);
}

// The lemma behind the continuous bound (ratio_interval.h): for m >= 1,
// P[C >= m] <= P[X >= m] <= P[C >= m - 1], from exact discrete sums.
TEST(NoiseLawTest, ContinuousCounterpartBracketsTheDiscreteTail) {
  for (double sigma2 : {1.0, 2.0, 10.0, 961.0, 40000.0}) {
    const long double s2 = sigma2;
    const double sigma = std::sqrt(sigma2);
    auto density = [&](int64_t z) {
      return std::exp(-static_cast<long double>(z) * z / (2 * s2));
    };
    const int64_t last = static_cast<int64_t>(12 * sigma) + 5;
    const std::vector<long double> tails =
        UpperTails(density, last, static_cast<int64_t>(60 * sigma) + 10);
    const long double norm = 2 * tails[0] - 1;
    for (int64_t m = 1; m <= last; ++m) {
      const double discrete = static_cast<double>(tails[m] / norm);
      const double upper = 0.5 * std::erfc((m - 1) / std::sqrt(2 * sigma2));
      const double lower = 0.5 * std::erfc(m / std::sqrt(2 * sigma2));
      ASSERT_LE(discrete, upper * (1 + 1e-12)) << sigma2 << " " << m;
      ASSERT_GE(discrete, lower * (1 - 1e-12)) << sigma2 << " " << m;
    }
  }
  for (double t : {0.3, 1.0, 7.0, 100.0}) {
    ASSERT_OK_AND_ASSIGN(NoiseLaw law, NoiseLaw::DiscreteLaplace(t));
    for (int64_t m = 1; m < 30 * t + 5; ++m) {
      const double discrete = law.TwoSidedTail(m) / 2;
      EXPECT_LE(discrete, 0.5 * std::exp(-(m - 1) / t) * (1 + 1e-8));
      EXPECT_GE(discrete, 0.5 * std::exp(-m / t));
    }
  }
}

// Simulated P[|a X + b Y| > q]: at most alpha (binomial bound), and not
// far below it (the bound is tight: a vacuous q would pass the first).
TEST(CombinationHalfWidthTest, CoversAndIsTightForBothFamilies) {
  constexpr int kDraws = 20000;
  const struct {
    double a, b;
  } coefficients[] = {{1, 0}, {0.5, 0.5}, {0.8, 0.2}, {1, 3}, {0.05, 1}};
  const Noise noises[] = {Gaussian(961), Laplace(20), Gaussian(4)};
  DeterministicRandom source(11);
  RandomWords rng(&source);
  for (const Noise& x : noises) {
    for (const auto& c : coefficients) {
      const double q = CombinationHalfWidth(c.a, x.law, c.b, x.law, kAlpha);
      int64_t misses = 0;
      for (int i = 0; i < kDraws; ++i) {
        misses += std::abs(c.a * x.sample(rng) + c.b * x.sample(rng)) > q;
      }
      EXPECT_LE(misses, MaxMisses(kDraws, kAlpha))
          << x.law.parameter() << " " << c.a << " " << c.b;
      // Tight to within the lemma's shift: >= 60% of alpha is missed
      // (kZ-style slack: 4.9 sd of Bin(20000, 0.03) is 118 of 600).
      if (x.law.parameter() > 10) {
        EXPECT_GE(misses, kDraws * 0.6 * kAlpha - 120)
            << x.law.parameter() << " " << c.a << " " << c.b;
      }
    }
  }
}

// Misses of the true theta over `trials` releases.
struct Truth {
  double p, q, theta;
};
int64_t Misses(const RatioInterval& interval, const Noise& p_noise,
               const Noise& q_noise, const Truth& t, int trials,
               const std::function<double(double, double)>& estimate,
               uint64_t seed) {
  DeterministicRandom source(seed);
  RandomWords rng(&source);
  int64_t misses = 0;
  for (int i = 0; i < trials; ++i) {
    const double p = t.p + p_noise.sample(rng);
    const double q = t.q + q_noise.sample(rng);
    const ParameterInterval r = interval.Compute(p, q, estimate(p, q));
    EXPECT_LE(r.low, r.high);
    misses += !(r.low <= t.theta && t.theta <= r.high);
  }
  return misses;
}

double RateEstimate(double a, double b) {
  a = std::max(a, 0.0);
  b = std::max(b, 0.0);
  return a + b > 0 ? a / (a + b) : 0.5;
}

const std::vector<std::pair<double, double>>& RateCohorts() {
  static const auto* cohorts = new std::vector<std::pair<double, double>>{
      {0, 0},   {0, 200},     {3, 57},       {97, 98},  {146, 49},
      {40, 10}, {1000, 1000}, {19000, 1000}, {20000, 0}};
  return *cohorts;
}

TEST(RatioIntervalTest, RateCoversEveryCohortForBothFamilies) {
  constexpr int kTrials = 3000;
  const Noise noises[] = {Gaussian(961), Laplace(20)};
  for (const Noise& noise : noises) {
    ASSERT_OK_AND_ASSIGN(
        RatioInterval interval,
        RatioInterval::ForRate(noise.law, noise.law, 1 - kAlpha));
    for (const auto& [a, b] : RateCohorts()) {
      const double truth = a + b > 0 ? a / (a + b) : 0.5;
      // An empty cohort's rate is undefined; any r in [0, 1] is true.
      const int64_t misses =
          a + b > 0 ? Misses(interval, noise, noise, {a, b, truth}, kTrials,
                             RateEstimate, 100 + static_cast<uint64_t>(a))
                    : 0;
      EXPECT_LE(misses, MaxMisses(kTrials, kAlpha))
          << noise.law.parameter() << " a=" << a << " b=" << b;
    }
  }
}

// Positive controls: the same check flags intervals built for too little
// noise (half the noise's scale, or the noise ignored).
TEST(RatioIntervalTest, CoverageCheckFlagsTooNarrowIntervals) {
  constexpr int kTrials = 3000;
  const Noise gauss = Gaussian(961), laplace = Laplace(20);
  const struct {
    const Noise* truth;
    NoiseLaw assumed;
  } controls[] = {
      {&gauss, *NoiseLaw::DiscreteGaussian(961.0 / 4)},
      {&gauss, *NoiseLaw::DiscreteGaussian(1)},
      {&laplace, *NoiseLaw::DiscreteLaplace(10)},
      {&laplace, *NoiseLaw::DiscreteLaplace(0.01)},
  };
  for (const auto& c : controls) {
    ASSERT_OK_AND_ASSIGN(
        RatioInterval narrow,
        RatioInterval::ForRate(c.assumed, c.assumed, 1 - kAlpha));
    const int64_t misses =
        Misses(narrow, *c.truth, *c.truth, {146, 49, 146.0 / 195}, kTrials,
               RateEstimate, 7);
    EXPECT_GT(misses, MaxMisses(kTrials, kAlpha)) << c.assumed.parameter();
  }
}

TEST(RatioIntervalTest, MeanCoversAtTheEdgesAndForSmallCounts) {
  constexpr int kTrials = 3000;
  constexpr double kW = 200;  // values in [0, 200], centred terms +-200
  // Count noise sigma 5 (as Linf = 5 at rho 1/2), sum noise W times that.
  const Noise count = Gaussian(25), sum = Gaussian(25 * kW * kW);
  const Noise lcount = Laplace(5), lsum = Laplace(5 * 200);
  const struct {
    const Noise *s, *n;
  } pairs[] = {{&sum, &count}, {&lsum, &lcount}};
  for (const auto& pair : pairs) {
    ASSERT_OK_AND_ASSIGN(
        RatioInterval interval,
        RatioInterval::ForMean(pair.s->law, pair.n->law, kW, 1 - kAlpha));
    for (double n : {1.0, 10.0, 50.0, 1000.0}) {
      for (double theta : {-kW, -kW / 2, 0.0, kW * 0.9, kW}) {
        const int64_t misses = Misses(
            interval, *pair.s, *pair.n, {theta * n, n, theta}, kTrials,
            [&](double s, double c) {
              return c > 0 ? std::clamp(s / c, -kW, kW) : 0.0;
            },
            200 + static_cast<uint64_t>(n));
        EXPECT_LE(misses, MaxMisses(kTrials, kAlpha))
            << "n=" << n << " theta=" << theta;
      }
    }
  }
}

TEST(RatioIntervalTest, NarrowerThanTheBoxCorners) {
  ASSERT_OK_AND_ASSIGN(NoiseLaw law, NoiseLaw::DiscreteGaussian(961));
  ASSERT_OK_AND_ASSIGN(RatioInterval interval,
                       RatioInterval::ForRate(law, law, 0.95));
  // The former interval: each count within its 97.5% half-width, corners.
  const double c = static_cast<double>(law.HalfWidth(0.025));
  for (const auto& [a, b] :
       std::vector<std::pair<double, double>>{{1000, 1000}, {146, 49}}) {
    const double box = (a + c) / (a + c + b - c) - (a - c) / (a - c + b + c);
    const ParameterInterval r = interval.Compute(a, b, a / (a + b));
    EXPECT_LT(r.high - r.low, 0.9 * box) << a << " " << b;
    EXPECT_LE(r.low, a / (a + b));
    EXPECT_GE(r.high, a / (a + b));
  }
  // At r = 1/2 the threshold is 1 + z sigma sqrt(1/2) (z = 1.96): 0.63 of
  // the box's 2.24 sigma.
  const ParameterInterval mid = interval.Compute(1000, 1000, 0.5);
  EXPECT_NEAR((mid.high - mid.low) / 2 * 2000, 1 + 1.96 * 31 * std::sqrt(0.5),
              1.5);
}

TEST(RatioIntervalTest, StaysInTheDomainAndContainsTheEstimate) {
  ASSERT_OK_AND_ASSIGN(NoiseLaw law, NoiseLaw::DiscreteLaplace(20));
  ASSERT_OK_AND_ASSIGN(RatioInterval interval,
                       RatioInterval::ForRate(law, law, 0.95));
  for (double a : {-500.0, -30.0, 0.0, 12.0, 400.0}) {
    for (double b : {-500.0, -30.0, 0.0, 12.0, 400.0}) {
      const double e = RateEstimate(a, b);
      const ParameterInterval r = interval.Compute(a, b, e);
      EXPECT_GE(r.low, 0);
      EXPECT_LE(r.high, 1);
      EXPECT_LE(r.low, e);
      EXPECT_GE(r.high, e);
    }
  }
  // Both counts near zero: nothing is known.
  const ParameterInterval none = interval.Compute(0, 0, 0.5);
  EXPECT_EQ(none.low, 0);
  EXPECT_EQ(none.high, 1);
}

TEST(RatioIntervalTest, RejectsBadParameters) {
  EXPECT_THAT(NoiseLaw::DiscreteGaussian(0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(NoiseLaw::DiscreteLaplace(0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const NoiseLaw law = *NoiseLaw::DiscreteLaplace(2);
  EXPECT_THAT(RatioInterval::ForRate(law, law, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RatioInterval::ForMean(law, law, 0, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
  RatioInterval::Pivot empty;
  empty.theta_low = empty.theta_high = 1;
  EXPECT_THAT(RatioInterval::Create(empty, law, law, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace cohortd::privacy
