// Per-cohort noisy statistics with confidence intervals.
//
// Each metric is built once per query from the contribution bounds, its
// share of rho and a confidence level, then released per cohort from the
// exact bounded statistics the executor accumulated (integers; measures in
// fixed point). Noise is the discrete Gaussian (gaussian_mechanism.h),
// calibrated to the per-account L2 sensitivity from
// contribution_bounding.h, so each metric is rho-zCDP over the whole
// group-by (all cohorts together).
//
// Predicted half-widths (accuracy-first queries, query_plan.h): each
// metric's PredictedHalfWidth(n) is a data-independent prediction of its
// interval's half-width, (ci_high - ci_low) / 2, for a cohort of n
// sessions: the half-width the interval has when every noise draw is
// zero, for the least favourable cohort value (an upper bound over the
// values). It depends only on the mechanism and n, never on records, and
// does not increase with rho.
//
// What the intervals cover: the exact statistic of the *bounded* data (after
// contribution bounding and clamping), i.e. what the query would return
// with no noise. They account for the noise only, not for bounding bias or
// sampling. Each holds with probability >= the confidence level
// (unconditionally, i.e. not conditioned on the cohort being released).
//
// Thread-safety: immutable after Create(); pass each thread's RandomWords.
#ifndef COHORTD_SERVER_PRIVACY_AGGREGATIONS_H_
#define COHORTD_SERVER_PRIVACY_AGGREGATIONS_H_

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "server/crypto/csprng.h"
#include "server/privacy/contribution_bounding.h"
#include "server/privacy/gaussian_mechanism.h"
#include "server/privacy/noise_mechanism.h"
#include "server/privacy/ratio_interval.h"

namespace cohortd::privacy {

// A released number and its interval, in the metric's natural unit.
struct Estimate {
  double value = 0;
  double ci_low = 0;
  double ci_high = 0;
};

// Number of sessions. Noise sigma^2 = L0 Linf^2 / (2 rho). Interval:
// value +- c with P[|Z| <= c] >= confidence (exact discrete quantile),
// clipped at 0. The value is clipped at 0 too (post-processing).
// CreateLaplace: discrete Laplace noise instead, scale L0 Linf / epsilon
// (L1 sensitivity L0 Linf), same interval construction.
class SessionCountMetric {
 public:
  static absl::StatusOr<SessionCountMetric> Create(
      const ContributionBounds& bounds, double rho, double confidence);
  static absl::StatusOr<SessionCountMetric> CreateLaplace(
      const ContributionBounds& bounds, double epsilon, double confidence);
  absl::StatusOr<Estimate> Release(int64_t sessions, RandomWords& rng) const;
  const NoiseMechanism& noise() const { return noise_; }
  // Predicted half-width (see "Predicted half-widths" above): the noise's
  // half-width c, whatever the cohort's size.
  double PredictedHalfWidth(int64_t sessions) const;

 private:
  explicit SessionCountMetric(NoiseMechanism noise) : noise_(noise) {}
  NoiseMechanism noise_;
};

// Sum of a measure: noise on the fixed-point sum with
// sigma^2 = L0 (Linf MaxAbs)^2 / (2 rho). Interval: value +- c (exact
// discrete quantile), not clipped (the session count is not known here).
// Reported in measure units (fixed point * granularity). CreateLaplace:
// discrete Laplace noise, scale L0 Linf MaxAbs / epsilon.
class SumMetric {
 public:
  static absl::StatusOr<SumMetric> Create(const ContributionBounds& bounds,
                                          const MeasureDomain& domain,
                                          double rho, double confidence);
  static absl::StatusOr<SumMetric> CreateLaplace(
      const ContributionBounds& bounds, const MeasureDomain& domain,
      double epsilon, double confidence);
  // `sum_fp`: sum of the cohort's bounded fixed-point values, in 128 bits
  // (no sum of int64 values can overflow it here). Errors: randomness.
  absl::StatusOr<Estimate> Release(__int128 sum_fp, RandomWords& rng) const;
  const NoiseMechanism& noise() const { return noise_; }
  // Predicted half-width: c in measure units, whatever the cohort's size.
  double PredictedHalfWidth(int64_t sessions) const;

 private:
  SumMetric(MeasureDomain domain, NoiseMechanism noise)
      : domain_(domain), noise_(noise) {}
  MeasureDomain domain_;
  NoiseMechanism noise_;
};

// The sessions at which MeanCountShare() minimises the mean's interval
// width: the log-midpoint of the cohort sizes analysts read (200 to
// 20,000 sessions; bench/privacy/utility_bench prints all three).
inline constexpr double kTypicalMeanSessions = 2000;

// How many steps of the cohort value (rate, mean) MeanMetric and
// RateMetric's PredictedHalfWidth scan for the widest zero-noise
// interval.
inline constexpr int kPredictionGrid = 64;

// The share f of a mean's rho given to its noisy count (the centred sum
// gets 1 - f), chosen from public parameters only: the f in
// {0.01, ..., 0.99} minimising the Fieller interval's width at the
// noiseless pair, averaged over a mean uniform on [lo, hi]:
//   width(theta) = 2 z sqrt(s_s^2 n^2 + s_n^2 theta^2 n^2 - z^2 s_n^2 s_s^2)
//                  / (n^2 - z^2 s_n^2),          capped at the domain (2W),
// with n = kTypicalMeanSessions, theta = 2 (mean - mid) in [-W, W],
// s_n^2 = L0 Linf^2 / (2 f rho), s_s^2 = L0 Linf^2 W^2 / (2 (1 - f) rho),
// z the normal (1 + confidence)/2 quantile (the normal approximation of
// ratio_interval.h's test, solved for theta). W cancels, so f depends on
// (L0, Linf, rho, confidence) only. At large cohorts it tends to
// 1 / (1 + sqrt(3)) = 0.37 (minimising s_s^2 + E[theta^2] s_n^2 with
// E[theta^2] = W^2 / 3); small cohorts pay for count noise in the
// denominator and shift budget to the count.
double MeanCountShare(const ContributionBounds& bounds, double rho,
                      double confidence);

// The same choice for a mean under discrete Laplace noise (epsilon split
// f : 1 - f, count scale b_n = L0 Linf / (f epsilon), centred-sum scale
// b_s = L0 Linf W / ((1 - f) epsilon)): the width above with the Laplace
// variances s_n^2 = 2 b_n^2, s_s^2 = 2 b_s^2 (normal approximation, used
// only to pick f). At large cohorts it tends to 1 / (1 + 3^(1/3)) = 0.41
// (minimising b_s^2 + E[theta^2] b_n^2), which is also what it returns
// when every f gives the whole domain.
double MeanCountShareLaplace(const ContributionBounds& bounds, double epsilon,
                             double confidence);

// Mean of a measure, as in Google's BoundedMean: a noisy count n~ and a
// noisy centred sum S~ of (2v - lo - hi) (whose sensitivity is
// Linf (hi - lo), about half that of the raw sum), with rho split
// f : 1 - f by MeanCountShare() (not halves);
// mean = (lo + hi)/2 + S~ / (2 n~), clamped to [lo, hi].
// CreateLaplace: discrete Laplace noise on both, epsilon split f : 1 - f
// by MeanCountShareLaplace(), L1 sensitivities L0 Linf (count) and
// L0 Linf (hi - lo) (centred sum); the interval is the same test
// inversion with the Laplace laws (ratio_interval.h).
// Interval: ratio_interval.h's test inversion for theta = S / n over
// [-(hi - lo), hi - lo] (pivot S~ - theta n~), mapped to
// mean = mid + theta / 2, intersected with [lo, hi]; it contains the
// value. Covers with probability >= confidence for every data set.
class MeanMetric {
 public:
  static absl::StatusOr<MeanMetric> Create(const ContributionBounds& bounds,
                                           const MeasureDomain& domain,
                                           double rho, double confidence);
  static absl::StatusOr<MeanMetric> CreateLaplace(
      const ContributionBounds& bounds, const MeasureDomain& domain,
      double epsilon, double confidence);
  // `sum_fp` (128 bits) and `count` over the cohort's bounded sessions.
  // The centred sum is formed in 128 bits too, so no overflow error
  // depends on the data. Errors: randomness failure.
  absl::StatusOr<Estimate> Release(__int128 sum_fp, int64_t count,
                                   RandomWords& rng) const;
  // Predicted half-width for a cohort of `sessions` sessions carrying the
  // measure, in measure units: the half-width of the interval Release()
  // gives with zero noise draws (the Fieller interval of the exact pair),
  // the widest over kPredictionGrid + 1 evenly spaced cohort means in
  // [lo, hi]. R / 2 (R = hi - lo) for sessions <= 0.
  double PredictedHalfWidth(int64_t sessions) const;
  const MeasureDomain& domain() const { return domain_; }

  const NoiseMechanism& count_noise() const { return count_noise_; }
  const NoiseMechanism& sum_noise() const { return sum_noise_; }
  // The RDP curve of the pair (both noises composed).
  RdpCurve Curve() const;

 private:
  // The metric of the two noises, with the Fieller-type interval of
  // their laws (Create and CreateLaplace differ only in the noises).
  static absl::StatusOr<MeanMetric> WithInterval(const MeasureDomain& domain,
                                                 NoiseMechanism count_noise,
                                                 NoiseMechanism sum_noise,
                                                 double confidence);
  MeanMetric(MeasureDomain domain, NoiseMechanism count_noise,
             NoiseMechanism sum_noise, RatioInterval interval)
      : domain_(domain),
        count_noise_(count_noise),
        sum_noise_(sum_noise),
        interval_(std::move(interval)) {}
  MeasureDomain domain_;
  NoiseMechanism count_noise_;
  NoiseMechanism sum_noise_;
  RatioInterval interval_;
};

// Share of sessions matching a predicate: noisy matching a~ and
// non-matching b~ counts, both with sigma^2 = L0 Linf^2 / (2 rho) (the
// pair has L2 sensitivity Linf per cohort: a^2 + b^2 <= (a + b)^2);
// rate = a~ / (a~ + b~) with negative counts read as 0 (0.5 if both are).
// Interval: ratio_interval.h's test inversion (Fieller) for r in [0, 1]
// with pivot (1 - r) a~ - r b~, whose noise at the true r is
// (1 - r) X - r Y; it contains the value. Covers with probability
// >= confidence for every (a, b).
// CreateLaplace: discrete Laplace noise of scale L0 Linf / epsilon on both
// counts (the pair's L1 sensitivity is Linf per cohort: a + b <= Linf
// sessions move), the same interval with the Laplace law.
class RateMetric {
 public:
  static absl::StatusOr<RateMetric> Create(const ContributionBounds& bounds,
                                           double rho, double confidence);
  static absl::StatusOr<RateMetric> CreateLaplace(
      const ContributionBounds& bounds, double epsilon, double confidence);
  // `matching` <= `total` sessions of the cohort (bounded).
  // Errors: InvalidArgument if matching > total or either is negative.
  absl::StatusOr<Estimate> Release(int64_t matching, int64_t total,
                                   RandomWords& rng) const;
  // Predicted half-width for a cohort of `sessions` labelled sessions:
  // the half-width of the Fieller interval Release() gives with zero noise
  // draws, the widest over kPredictionGrid + 1 evenly spaced rates in
  // [0, 1]; at most 1/2 (1/2 for sessions <= 0).
  double PredictedHalfWidth(int64_t sessions) const;

  // One noise for both counts; its curve covers the pair (a shift of L1
  // L0 Linf spread over independent noises of one scale, accountant.h).
  const NoiseMechanism& noise() const { return noise_; }

 private:
  // The metric of `noise` (on both counts), with the Fieller-type
  // interval of its law.
  static absl::StatusOr<RateMetric> WithInterval(NoiseMechanism noise,
                                                 double confidence);
  RateMetric(NoiseMechanism noise, RatioInterval interval)
      : noise_(noise), interval_(std::move(interval)) {}
  NoiseMechanism noise_;
  RatioInterval interval_;
};

// Geometric mean of a measure, exp(mean(ln x)), over a positive clamping
// range. Zeros and values below the floor: each session's fixed-point
// value is raised to the floor, the smallest positive grid point of the
// measure's domain (its lower bound when that is positive, otherwise its
// granularity, e.g. 1 line or 0.01 actions), so a zero counts as the
// floor. ln of the floored value is rounded to kLogGranularity and
// clamped to [ln floor, ln hi] in fixed point (LogFixedPoint), and a
// MeanMetric over that log domain releases the mean of logs: its
// sensitivity is the log-clamp range's (centred sum D = Linf (ln hi -
// ln floor)), same rho and k/contributor gate as MEAN. Value and
// interval are exp of the mean-of-logs value and interval (exp is
// increasing, so the interval keeps its coverage), within [floor, hi].
class GeometricMeanMetric {
 public:
  // ln values are rounded to this step: a relative error <= 5e-5 per
  // value, and a log range of ~1e5 steps, like the other measures.
  static constexpr double kLogGranularity = 1e-4;

  // `domain`: the measure's domain. Errors: InvalidArgument when the
  // domain has no positive range (upper bound <= its floor) or for the
  // parameters MeanMetric refuses.
  static absl::StatusOr<GeometricMeanMetric> Create(
      const ContributionBounds& bounds, const MeasureDomain& domain, double rho,
      double confidence);

  // The smallest positive fixed-point value of `domain`: zeros and
  // smaller values are raised to it.
  static int64_t FloorFixedPoint(const MeasureDomain& domain);
  // Fixed-point ln of one session's (clamped) fixed-point value, floored,
  // in the log domain: what the executor sums per cohort.
  int64_t LogFixedPoint(int64_t value_fp) const;

  // `log_sum_fp`: the sum of LogFixedPoint over the cohort's bounded
  // sessions carrying the measure, `count` their number.
  // Errors: randomness failure.
  absl::StatusOr<Estimate> Release(__int128 log_sum_fp, int64_t count,
                                   RandomWords& rng) const;
  // Predicted half-width in measure units for a cohort of `sessions`
  // sessions: with h the log mean's predicted half-width, the widest
  // interval [exp(max(mu - h, L)), exp(min(mu + h, H))] over mu in [L, H]
  // (L = ln floor, H = ln hi) is at mu = H - h: (e^H - e^max(H - 2h, L))
  // / 2.
  double PredictedHalfWidth(int64_t sessions) const;
  const MeasureDomain& log_domain() const { return log_domain_; }

 private:
  GeometricMeanMetric(MeasureDomain domain, int64_t floor_fp,
                      MeasureDomain log_domain, MeanMetric log_mean)
      : domain_(domain),
        floor_fp_(floor_fp),
        log_domain_(log_domain),
        log_mean_(log_mean) {}
  MeasureDomain domain_;
  int64_t floor_fp_;
  MeasureDomain log_domain_;
  MeanMetric log_mean_;
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_AGGREGATIONS_H_
