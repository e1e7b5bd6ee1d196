// Statistical checks shared by the privacy tests: chi-square goodness of
// fit against an exact pmf, and moment checks with derived tolerances.
// Every test here uses a fixed seed, so a pass is reproducible; the
// tolerances are set so that a correct sampler would fail with probability
// about 1e-6 per check under a fresh seed, while wrong noise (missing,
// mis-scaled) fails by many standard errors.
#ifndef COHORTD_TESTS_PRIVACY_STAT_CHECKS_H_
#define COHORTD_TESTS_PRIVACY_STAT_CHECKS_H_

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cohortd::testing {

// Standard normal quantile for a two-sided 1e-6 test.
inline constexpr double kZ = 4.9;

// Chi-square critical value with `df` degrees of freedom at the level
// matching kZ one-sided (Wilson & Hilferty 1931 cube-root approximation).
inline double ChiSquareCritical(int df) {
  const double a = 2.0 / (9.0 * df);
  const double z = 4.75;  // one-sided 1e-6
  return df * std::pow(1 - a + z * std::sqrt(a), 3);
}

// Moments of an integer pmf over [-radius, radius].
struct PmfMoments {
  double mean = 0, variance = 0, fourth_central = 0;
};
inline PmfMoments MomentsOf(const std::function<double(int64_t)>& pmf,
                            int64_t radius) {
  PmfMoments m;
  for (int64_t x = -radius; x <= radius; ++x) m.mean += x * pmf(x);
  for (int64_t x = -radius; x <= radius; ++x) {
    const double d = x - m.mean;
    m.variance += d * d * pmf(x);
    m.fourth_central += d * d * d * d * pmf(x);
  }
  return m;
}

// Asserts that `samples` fit `pmf` (supported, up to negligible mass, on
// [-radius, radius]) by a chi-square test over bins of expected count
// >= max(20, n / 100), and that the sample mean and variance are within kZ
// standard errors of the pmf's (SE of the variance from the fourth central
// moment: Var(s^2) ~ (mu4 - sigma^4) / n).
inline void ExpectMatchesPmf(const std::vector<int64_t>& samples,
                             const std::function<double(int64_t)>& pmf,
                             int64_t radius) {
  const double n = static_cast<double>(samples.size());
  std::map<int64_t, double> observed;
  for (int64_t s : samples) observed[s] += 1;
  // Bins: consecutive ranges with enough expected mass; the first and last
  // bins extend to -inf / +inf.
  const double min_expected = std::max(20.0, n / 100);
  std::vector<int64_t> bin_starts = {INT64_MIN};
  std::vector<double> expected = {0};
  for (int64_t x = -radius; x <= radius; ++x) {
    if (expected.back() >= min_expected) {
      bin_starts.push_back(x);
      expected.push_back(0);
    }
    expected.back() += n * pmf(x);
  }
  if (expected.size() > 1 && expected.back() < min_expected) {
    expected[expected.size() - 2] += expected.back();
    expected.pop_back();
    bin_starts.pop_back();
  }
  std::vector<double> counts(expected.size(), 0);
  for (const auto& [x, c] : observed) {
    size_t bin = std::upper_bound(bin_starts.begin(), bin_starts.end(), x) -
                 bin_starts.begin() - 1;
    counts[bin] += c;
  }
  double chi2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    chi2 += (counts[i] - expected[i]) * (counts[i] - expected[i]) / expected[i];
  }
  const int df = static_cast<int>(counts.size()) - 1;
  ASSERT_GE(df, 1);
  EXPECT_LT(chi2, ChiSquareCritical(df)) << "bins=" << counts.size();

  const PmfMoments m = MomentsOf(pmf, radius);
  double mean = 0;
  for (int64_t s : samples) mean += s;
  mean /= n;
  double var = 0;
  for (int64_t s : samples) var += (s - mean) * (s - mean);
  var /= n - 1;
  EXPECT_NEAR(mean, m.mean, kZ * std::sqrt(m.variance / n));
  EXPECT_NEAR(var, m.variance,
              kZ * std::sqrt((m.fourth_central - m.variance * m.variance) / n));
}

// Two-sided binomial check: observed successes k of n against p, within
// kZ standard errors (plus 1 for discreteness).
inline void ExpectBinomial(int64_t k, int64_t n, double p) {
  EXPECT_NEAR(static_cast<double>(k), n * p,
              kZ * std::sqrt(n * p * (1 - p)) + 1)
      << "p=" << p << " n=" << n;
}

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_PRIVACY_STAT_CHECKS_H_
