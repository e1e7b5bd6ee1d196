// Empirical differential-privacy audit (after Jagielski, Ullman & Oprea,
// "Auditing differentially private machine learning", NeurIPS 2020):
// run a mechanism many times on two neighbouring datasets, estimate the
// probabilities of a few fixed events with Clopper-Pearson intervals, and
// turn them into a high-confidence LOWER bound on epsilon:
//   epsilon_lb = max over events E of ln((P'_low[E] - delta) / P_high[E]),
// valid for any (epsilon, delta)-DP mechanism with probability >= 1 - alpha
// (the events' intervals are Bonferroni-corrected). A correct mechanism
// must give epsilon_lb <= its claimed epsilon; one with too little noise
// exceeds it.
#ifndef COHORTD_TESTS_STOCHASTIC_DP_AUDIT_H_
#define COHORTD_TESTS_STOCHASTIC_DP_AUDIT_H_

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "server/crypto/csprng.h"

namespace cohortd::testing {

// Regularised incomplete beta I_x(a, b) by Lentz's continued fraction
// (Numerical Recipes, 3rd ed., 6.4).
inline double BetaContinuedFraction(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::abs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m < 10000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a - 1 + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1 + m2));
    d = 1 + aa * d;
    if (std::abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::abs(del - 1) < 1e-15) break;
  }
  return h;
}

inline double RegularizedBeta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double front =
      std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) +
               a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2))
    return front * BetaContinuedFraction(a, b, x) / a;
  return 1 - front * BetaContinuedFraction(b, a, 1 - x) / b;
}

// x with I_x(a, b) = p, by bisection.
inline double BetaQuantile(double p, double a, double b) {
  double lo = 0, hi = 1;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (RegularizedBeta(a, b, mid) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

// Clopper-Pearson bounds for k successes in n trials, each one-sided at
// level `alpha`.
inline double ClopperPearsonLow(int64_t k, int64_t n, double alpha) {
  return k == 0 ? 0 : BetaQuantile(alpha, k, n - k + 1);
}
inline double ClopperPearsonHigh(int64_t k, int64_t n, double alpha) {
  return k == n ? 1 : BetaQuantile(1 - alpha, k + 1, n - k);
}

struct AuditResult {
  double epsilon_lower_bound = 0;
  double best_threshold = 0;
};

// Samples statistic(D) and statistic(D') `trials` times each and bounds
// epsilon from below with the events {stat >= t} (D' more likely) and
// {stat < t} (D more likely) for every t in `thresholds`, at overall
// confidence 1 - alpha.
inline AuditResult AuditEpsilon(
    const std::function<double(RandomWords&)>& on_d,
    const std::function<double(RandomWords&)>& on_d_prime, RandomWords& rng,
    int64_t trials, const std::vector<double>& thresholds, double delta,
    double alpha) {
  std::vector<double> d(trials), dp(trials);
  for (int64_t i = 0; i < trials; ++i) {
    d[i] = on_d(rng);
    dp[i] = on_d_prime(rng);
  }
  std::sort(d.begin(), d.end());
  std::sort(dp.begin(), dp.end());
  // Two one-sided bounds per event, two events per threshold.
  const double a = alpha / (4.0 * thresholds.size());
  AuditResult result;
  auto consider = [&](int64_t k_more, int64_t k_less, double t) {
    const double high = ClopperPearsonLow(k_more, trials, a) - delta;
    const double low = ClopperPearsonHigh(k_less, trials, a);
    if (high > 0 && std::log(high / low) > result.epsilon_lower_bound) {
      result.epsilon_lower_bound = std::log(high / low);
      result.best_threshold = t;
    }
  };
  for (double t : thresholds) {
    const int64_t d_at_least =
        d.end() - std::lower_bound(d.begin(), d.end(), t);
    const int64_t dp_at_least =
        dp.end() - std::lower_bound(dp.begin(), dp.end(), t);
    consider(dp_at_least, d_at_least, t);
    consider(trials - d_at_least, trials - dp_at_least, t);
  }
  return result;
}

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_STOCHASTIC_DP_AUDIT_H_
