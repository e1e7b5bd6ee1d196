// Intervals that include sampling (API IntervalKind NOISE_AND_SAMPLING):
// the account-clustered sampling variance of a cohort's statistic,
// estimated privately, and its combination with the noise interval.
//
// What the interval covers. The noise-only interval (aggregations.h)
// covers the exact statistic of the bounded data at hand. Analysts read
// the figures as statements about the population the accounts were drawn
// from: the super-population model is "accounts are drawn independently
// from a population of accounts (their number itself random, Poisson)",
// and each account, after contribution bounding, brings its own sessions,
// which are correlated (one person's habits). The population value is
//   ratio metrics (MEAN, RATE, a mean of transformed values such as the
//     geometric mean's ln x):  E[y_i] / E[n_i], y_i the account's kept sum
//     (or matches), n_i its kept sessions carrying the metric;
//   totals (SUM, SESSIONS):   E[sum over the cohort's accounts of y_i].
// Standard errors are the linearised cluster-robust ones (cluster =
// account), e.g. Cameron & Miller, "A Practitioner's Guide to
// Cluster-Robust Inference", J. Human Resources 2015, sec. 2:
//   ratio:  SE^2 = m/(m-1) * sum_i (y_i - R n_i)^2 / (sum_i n_i)^2
//   total:  SE^2 = sum_i y_i^2    (Poisson number of accounts)
//
// Privacy. Q = sum_i (y_i - R~ n_i)^2 is computed at the *released* noisy
// ratio R~ (a post-processing of an earlier release in the same query), so
// by adaptive composition (Bun & Steinke 2016, Lemma 2.3) its sensitivity
// is that for a fixed R~: one account changes Q by its own term only. Each
// term is normalised by the largest possible one, (Linf B)^2 with B the
// largest per-session residual (RATE: 1; MEAN: hi - lo in fixed point,
// since R~ and every value lie in [lo, hi]; SUM: max |bound|; SESSIONS:
// 1), and converted to the integer round(2^16 u^2), u in [-1, 1]; so Q has
// per-cohort sensitivity 2^16 and, over L0 cohorts, Delta_2^2 = L0 2^32.
// The ratio's denominator N = sum_i n_i (sensitivity Linf per cohort) is
// released again beside it. Each of the two is a discrete Gaussian with
// half of the metric's rho share (the share is charged on top of the
// metric's own: query_release.h counts a sampling-interval metric twice).
//
// The estimated SE is an upper confidence value, so a noisy Q never makes
// the interval too short: Q+ = Q~ + c_Q and N- = max(N~ - c_N, 1) at the
// query's confidence, and m/(m-1) <= k/(k-1) (every released metric is
// drawn from >= k accounts). For small cohorts this over-states the
// sampling part, where the noise part dominates anyway.
//
// Combination: with the noise interval [l, h] around the value v and
// s = z SE (z the two-sided normal quantile), the interval is
//   [v - sqrt((v - l)^2 + s^2),  v + sqrt((h - v)^2 + s^2)],
// clipped to the metric's domain. For two independent normal errors with
// half-widths at the same level this is exact; the noise interval is
// conservative (>= the normal half-width), and the sampling error is
// normal only asymptotically (many accounts), so coverage is checked by
// simulation against a super-population in
// tests/stochastic/sampling_interval_coverage_test.cc.
//
// Thread-safety: immutable after Create(); pass each thread's RandomWords.
#ifndef COHORTD_SERVER_PRIVACY_SAMPLING_INTERVAL_H_
#define COHORTD_SERVER_PRIVACY_SAMPLING_INTERVAL_H_

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/crypto/csprng.h"
#include "server/privacy/aggregations.h"
#include "server/privacy/contribution_bounding.h"
#include "server/privacy/gaussian_mechanism.h"

namespace cohortd::privacy {

// One account's kept contribution to one cohort's metric: y = its sum of
// fixed-point values (MEAN, SUM), matches (RATE) or sessions (SESSIONS);
// n = its kept sessions that carry the metric. |y| <= Linf * 2^40.
struct AccountTotal {
  int64_t y = 0;
  int64_t n = 0;
};

enum class SamplingTarget { kRatio, kTotal };

// The two-sided standard normal quantile z with P[|N(0,1)| <= z] = level,
// level in (0, 1). Deterministic (bisection on erfc).
double TwoSidedNormalQuantile(double level);

// Widens `noise` (an interval around noise.value) by the sampling standard
// error `se` (same unit) at `confidence`, as in the file comment, then
// clips the bounds to [lo, hi].
Estimate CombineNoiseAndSampling(const Estimate& noise, double se,
                                 double confidence, double lo, double hi);

class ClusteredSamplingVariance {
 public:
  // `per_session_bound` is B of the file comment (> 0, in y units), `k`
  // the dataset's k (>= 2 for ratios; the m/(m-1) factor), `rho` the share
  // this estimator may spend (rho/2 on Q, rho/2 on N for ratios; all on Q
  // for totals). Errors: InvalidArgument on bad parameters.
  static absl::StatusOr<ClusteredSamplingVariance> Create(
      const ContributionBounds& bounds, SamplingTarget target,
      double per_session_bound, int k, double rho, double confidence);

  // The privately estimated (upper confidence) standard error of the
  // cohort's ratio (y per session units; `ratio` is the released ratio in
  // the same units) or total (y units; `ratio` ignored), from the
  // cohort's per-account totals. Errors: randomness failure.
  absl::StatusOr<double> ReleaseStandardError(
      absl::Span<const AccountTotal> accounts, double ratio,
      RandomWords& rng) const;

  // The noise on Q (in units of (Linf B)^2 / 2^16).
  const GaussianMechanism& q_noise() const { return q_noise_; }

  // The per-account term's integer scale: round(2^16 u^2).
  static constexpr int64_t kTermScale = int64_t{1} << 16;

 private:
  ClusteredSamplingVariance(SamplingTarget target, double account_bound, int k,
                            GaussianMechanism q_noise,
                            std::optional<GaussianMechanism> n_noise)
      : target_(target),
        account_bound_(account_bound),
        k_(k),
        q_noise_(q_noise),
        n_noise_(n_noise) {}

  SamplingTarget target_;
  double account_bound_;  // Linf * B
  int k_;
  GaussianMechanism q_noise_;
  std::optional<GaussianMechanism> n_noise_;  // kRatio only
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_SAMPLING_INTERVAL_H_
