#include "server/privacy/aggregations.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "server/privacy/accountant.h"

namespace cohortd::privacy {
namespace {

absl::Status CheckConfidence(double confidence) {
  if (!(confidence > 0) || !(confidence < 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("confidence must be in (0, 1), got %g", confidence));
  }
  return absl::OkStatus();
}

// The standard normal quantile at p in (0.5, 1), by bisection on erfc
// (used only to choose a budget split, not for any interval).
double NormalQuantile(double p) {
  double low = 0, high = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = (low + high) / 2;
    if (0.5 * std::erfc(mid / std::sqrt(2.0)) > 1 - p) {
      low = mid;
    } else {
      high = mid;
    }
  }
  return high;
}

Estimate CountEstimate(int64_t noisy, int64_t c) {
  return {static_cast<double>(std::max<int64_t>(noisy, 0)),
          static_cast<double>(std::max<int64_t>(noisy - c, 0)),
          static_cast<double>(std::max<int64_t>(noisy + c, 0))};
}

}  // namespace

absl::StatusOr<SessionCountMetric> SessionCountMetric::Create(
    const ContributionBounds& bounds, double rho, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  absl::StatusOr<GaussianMechanism> noise =
      GaussianMechanism::Create(SessionCountL2Squared(bounds), rho, confidence);
  if (!noise.ok()) return noise.status();
  return SessionCountMetric(*noise);
}

absl::StatusOr<SessionCountMetric> SessionCountMetric::CreateLaplace(
    const ContributionBounds& bounds, double epsilon, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  absl::StatusOr<LaplaceMechanism> noise = LaplaceMechanism::Create(
      static_cast<int64_t>(bounds.max_cohorts_per_account) *
          bounds.max_sessions_per_cohort,
      epsilon, confidence);
  if (!noise.ok()) return noise.status();
  return SessionCountMetric(*noise);
}

absl::StatusOr<Estimate> SessionCountMetric::Release(int64_t sessions,
                                                     RandomWords& rng) const {
  absl::StatusOr<int64_t> noisy = noise_.AddNoise(sessions, rng);
  if (!noisy.ok()) return noisy.status();
  return CountEstimate(*noisy, noise_.HalfWidth());
}

absl::StatusOr<SumMetric> SumMetric::Create(const ContributionBounds& bounds,
                                            const MeasureDomain& domain,
                                            double rho, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  absl::StatusOr<GaussianMechanism> noise =
      GaussianMechanism::Create(SumL2Squared(bounds, domain), rho, confidence);
  if (!noise.ok()) return noise.status();
  return SumMetric(domain, *noise);
}

absl::StatusOr<SumMetric> SumMetric::CreateLaplace(
    const ContributionBounds& bounds, const MeasureDomain& domain,
    double epsilon, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  const __int128 l1 = static_cast<__int128>(bounds.max_cohorts_per_account) *
                      bounds.max_sessions_per_cohort * domain.MaxAbs();
  if (l1 > (static_cast<__int128>(1) << 62)) {
    return absl::InvalidArgumentError("SumMetric: L1 sensitivity too large");
  }
  absl::StatusOr<LaplaceMechanism> noise =
      LaplaceMechanism::Create(static_cast<int64_t>(l1), epsilon, confidence);
  if (!noise.ok()) return noise.status();
  return SumMetric(domain, *noise);
}

absl::StatusOr<Estimate> SumMetric::Release(__int128 sum_fp,
                                            RandomWords& rng) const {
  absl::StatusOr<__int128> noisy = noise_.AddNoiseWide(sum_fp, rng);
  if (!noisy.ok()) return noisy.status();
  const double c = static_cast<double>(noise_.HalfWidth());
  const double v = static_cast<double>(*noisy);
  return Estimate{domain_.ToValue(v), domain_.ToValue(v - c),
                  domain_.ToValue(v + c)};
}

namespace {

// The f in {0.01, ..., 0.99} minimising the mean's Fieller width averaged
// over theta (aggregations.h MeanCountShare), for noise variances
// sigma_n^2 = variance(f), sigma_s^2 = variance(1 - f) at W = 1.
// `fallback` when every f gives the whole domain (no f is better).
template <typename Variance>
double BestMeanShare(const Variance& variance, double confidence,
                     double fallback) {
  const double z = NormalQuantile(1 - (1 - confidence) / 2);
  const double n = kTypicalMeanSessions;
  constexpr int kThetas = 64;
  double best_f = 0.5, best_width = INFINITY;
  for (int step = 1; step <= 99; ++step) {
    const double f = step / 100.0;
    const double sn2 = variance(f), ss2 = variance(1 - f);
    const double den = n * n - z * z * sn2;
    double width = 0;
    for (int j = 0; j < kThetas; ++j) {
      const double theta = -1 + (2 * j + 1) / static_cast<double>(kThetas);
      const double rad =
          ss2 * n * n + sn2 * theta * theta * n * n - z * z * sn2 * ss2;
      const double w = den > 0 && rad > 0 ? 2 * z * std::sqrt(rad) / den : 2;
      width += std::min(w, 2.0);
    }
    if (width < best_width) {
      best_width = width;
      best_f = f;
    }
  }
  return best_width < 2.0 * kThetas ? best_f : fallback;
}

}  // namespace

double MeanCountShare(const ContributionBounds& bounds, double rho,
                      double confidence) {
  // Widths scale with W = hi - lo (sigma_s and theta both carry it), so
  // work with W = 1. c = L0 Linf^2 / (2 rho): sigma_n^2 = c / f,
  // sigma_s^2 = c / (1 - f).
  const double c = SessionCountL2Squared(bounds) / (2 * rho);
  // (The first f, 0.01, when no f is better: as before the Laplace mean.)
  return BestMeanShare([c](double f) { return c / f; }, confidence, 0.01);
}

double MeanCountShareLaplace(const ContributionBounds& bounds, double epsilon,
                             double confidence) {
  // b = L0 Linf / (f epsilon) (W = 1), variance 2 b^2.
  const double b1 = static_cast<double>(bounds.max_cohorts_per_account) *
                    bounds.max_sessions_per_cohort / epsilon;
  return BestMeanShare([b1](double f) { return 2 * (b1 / f) * (b1 / f); },
                       confidence, 1 / (1 + std::cbrt(3.0)));
}

absl::StatusOr<MeanMetric> MeanMetric::WithInterval(const MeasureDomain& domain,
                                                    NoiseMechanism count_noise,
                                                    NoiseMechanism sum_noise,
                                                    double confidence) {
  absl::StatusOr<NoiseLaw> sum_law = sum_noise.Law();
  if (!sum_law.ok()) return sum_law.status();
  absl::StatusOr<NoiseLaw> count_law = count_noise.Law();
  if (!count_law.ok()) return count_law.status();
  absl::StatusOr<RatioInterval> interval = RatioInterval::ForMean(
      *sum_law, *count_law,
      static_cast<double>(domain.upper_fp - domain.lower_fp), confidence);
  if (!interval.ok()) return interval.status();
  return MeanMetric(domain, count_noise, sum_noise, *interval);
}

absl::StatusOr<MeanMetric> MeanMetric::Create(const ContributionBounds& bounds,
                                              const MeasureDomain& domain,
                                              double rho, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  status = CheckConfidence(confidence);
  if (!status.ok()) return status;
  if (!(rho > 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("MeanMetric: rho must be > 0, got %g", rho));
  }
  // Sequential composition inside the metric: the shares are rounded down,
  // so rho_count + rho_sum <= rho.
  const double f = MeanCountShare(bounds, rho, confidence);
  absl::StatusOr<GaussianMechanism> count_noise = GaussianMechanism::Create(
      SessionCountL2Squared(bounds), RoundRemaining(rho * f), confidence);
  if (!count_noise.ok()) return count_noise.status();
  absl::StatusOr<GaussianMechanism> sum_noise =
      GaussianMechanism::Create(CenteredSumL2Squared(bounds, domain),
                                RoundRemaining(rho * (1 - f)), confidence);
  if (!sum_noise.ok()) return sum_noise.status();
  return WithInterval(domain, *count_noise, *sum_noise, confidence);
}

absl::StatusOr<MeanMetric> MeanMetric::CreateLaplace(
    const ContributionBounds& bounds, const MeasureDomain& domain,
    double epsilon, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  status = CheckConfidence(confidence);
  if (!status.ok()) return status;
  if (!(epsilon > 0) || !std::isfinite(epsilon)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("MeanMetric: epsilon must be > 0, got %g", epsilon));
  }
  // L1 sensitivities: the count moves by <= Linf in each of <= L0
  // cohorts, the centred sum by <= Linf (hi - lo) (each term of
  // 2v - lo - hi lies in [-(hi - lo), hi - lo]). Basic composition inside
  // the metric, shares rounded down.
  const int64_t count_l1 =
      static_cast<int64_t>(bounds.max_cohorts_per_account) *
      bounds.max_sessions_per_cohort;
  const __int128 sum_l1 =
      static_cast<__int128>(count_l1) * (domain.upper_fp - domain.lower_fp);
  if (sum_l1 > (static_cast<__int128>(1) << 62) || sum_l1 < 1) {
    return absl::InvalidArgumentError(
        "MeanMetric: L1 sensitivity of the sum out of range");
  }
  const double f = MeanCountShareLaplace(bounds, epsilon, confidence);
  absl::StatusOr<LaplaceMechanism> count_noise = LaplaceMechanism::Create(
      count_l1, RoundRemaining(epsilon * f), confidence);
  if (!count_noise.ok()) return count_noise.status();
  absl::StatusOr<LaplaceMechanism> sum_noise =
      LaplaceMechanism::Create(static_cast<int64_t>(sum_l1),
                               RoundRemaining(epsilon * (1 - f)), confidence);
  if (!sum_noise.ok()) return sum_noise.status();
  return WithInterval(domain, *count_noise, *sum_noise, confidence);
}

RdpCurve MeanMetric::Curve() const {
  const RdpCurve count = count_noise_.Curve(), sum = sum_noise_.Curve();
  RdpCurve both{};
  for (int i = 0; i < kRdpOrderCount; ++i) {
    both[i] = RoundSpend(count[i] + sum[i]);
  }
  return both;
}

absl::StatusOr<Estimate> MeanMetric::Release(__int128 sum_fp, int64_t count,
                                             RandomWords& rng) const {
  // Centred sum S = sum(2 v - lo - hi) = 2 sum - (lo + hi) count, exact in
  // 128 bits (|sum| < 2^72, |lo + hi| count < 2^73); its per-session term
  // lies in [-(hi - lo), hi - lo].
  const __int128 centred =
      2 * sum_fp -
      static_cast<__int128>(domain_.lower_fp + domain_.upper_fp) * count;
  absl::StatusOr<int64_t> noisy_count = count_noise_.AddNoise(count, rng);
  if (!noisy_count.ok()) return noisy_count.status();
  absl::StatusOr<__int128> noisy_sum = sum_noise_.AddNoiseWide(centred, rng);
  if (!noisy_sum.ok()) return noisy_sum.status();

  const double lo = static_cast<double>(domain_.lower_fp);
  const double hi = static_cast<double>(domain_.upper_fp);
  const double mid = (lo + hi) / 2;
  auto clamp = [&](double x) { return std::clamp(x, lo, hi); };
  const double n = static_cast<double>(*noisy_count);
  const double s = static_cast<double>(*noisy_sum);
  const double value = n > 0 ? clamp(mid + s / (2 * n)) : mid;
  // theta = S / n = 2 (mean - mid): the interval of the pivot S - theta n.
  const ParameterInterval theta = interval_.Compute(s, n, 2 * (value - mid));
  Estimate e;
  e.value = domain_.ToValue(value);
  e.ci_low = domain_.ToValue(clamp(mid + theta.low / 2));
  e.ci_high = domain_.ToValue(clamp(mid + theta.high / 2));
  return e;
}

absl::StatusOr<RateMetric> RateMetric::WithInterval(NoiseMechanism noise,
                                                    double confidence) {
  absl::StatusOr<NoiseLaw> law = noise.Law();
  if (!law.ok()) return law.status();
  absl::StatusOr<RatioInterval> interval =
      RatioInterval::ForRate(*law, *law, confidence);
  if (!interval.ok()) return interval.status();
  return RateMetric(noise, *interval);
}

absl::StatusOr<RateMetric> RateMetric::Create(const ContributionBounds& bounds,
                                              double rho, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  status = CheckConfidence(confidence);
  if (!status.ok()) return status;
  absl::StatusOr<GaussianMechanism> noise =
      GaussianMechanism::Create(RatePairL2Squared(bounds), rho, confidence);
  if (!noise.ok()) return noise.status();
  return WithInterval(*noise, confidence);
}

absl::StatusOr<RateMetric> RateMetric::CreateLaplace(
    const ContributionBounds& bounds, double epsilon, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  status = CheckConfidence(confidence);
  if (!status.ok()) return status;
  // The pair's L1 sensitivity: a + b moves by <= Linf sessions in each of
  // <= L0 cohorts.
  absl::StatusOr<LaplaceMechanism> noise = LaplaceMechanism::Create(
      static_cast<int64_t>(bounds.max_cohorts_per_account) *
          bounds.max_sessions_per_cohort,
      epsilon, confidence);
  if (!noise.ok()) return noise.status();
  return WithInterval(*noise, confidence);
}

absl::StatusOr<Estimate> RateMetric::Release(int64_t matching, int64_t total,
                                             RandomWords& rng) const {
  if (matching < 0 || total < matching) {
    return absl::InvalidArgumentError(
        absl::StrFormat("RateMetric: need 0 <= matching <= total, got %d, %d",
                        matching, total));
  }
  // One rho-zCDP release of the pair (a, b), same sigma for both.
  absl::StatusOr<int64_t> a = noise_.AddNoise(matching, rng);
  if (!a.ok()) return a.status();
  absl::StatusOr<int64_t> b = noise_.AddNoise(total - matching, rng);
  if (!b.ok()) return b.status();
  const double na = std::max(static_cast<double>(*a), 0.0);
  const double nb = std::max(static_cast<double>(*b), 0.0);
  Estimate e;
  // 0.5 is the uninformative midpoint when both noisy counts are <= 0.
  e.value = na + nb > 0 ? na / (na + nb) : 0.5;
  const ParameterInterval r = interval_.Compute(
      static_cast<double>(*a), static_cast<double>(*b), e.value);
  e.ci_low = r.low;
  e.ci_high = r.high;
  return e;
}

double SessionCountMetric::PredictedHalfWidth(int64_t /*sessions*/) const {
  return static_cast<double>(noise_.HalfWidth());
}

double SumMetric::PredictedHalfWidth(int64_t /*sessions*/) const {
  return domain_.ToValue(static_cast<double>(noise_.HalfWidth()));
}

double MeanMetric::PredictedHalfWidth(int64_t sessions) const {
  const double lo = static_cast<double>(domain_.lower_fp);
  const double hi = static_cast<double>(domain_.upper_fp);
  const double width = hi - lo;
  if (sessions <= 0) return domain_.ToValue(width / 2);
  const double n = static_cast<double>(sessions);
  // The released interval at zero noise draws (Release() with the noisy
  // pair equal to the exact one), widest over a grid of cohort values:
  // theta = 2 (mean - mid) in [-W, W], centred sum theta n.
  double widest = 0;
  for (int j = 0; j <= kPredictionGrid; ++j) {
    const double theta = -width + 2 * width * j / kPredictionGrid;
    const ParameterInterval t = interval_.Compute(theta * n, n, theta);
    const double low = std::clamp(t.low / 2, -width / 2, width / 2);
    const double high = std::clamp(t.high / 2, -width / 2, width / 2);
    widest = std::max(widest, (high - low) / 2);
  }
  return domain_.ToValue(widest);
}

double RateMetric::PredictedHalfWidth(int64_t sessions) const {
  if (sessions <= 0) return 0.5;
  const double n = static_cast<double>(sessions);
  // As MeanMetric's: the zero-noise interval, widest over the rates.
  double widest = 0;
  for (int j = 0; j <= kPredictionGrid; ++j) {
    const double r = static_cast<double>(j) / kPredictionGrid;
    const ParameterInterval t = interval_.Compute(r * n, (1 - r) * n, r);
    widest = std::max(widest, (t.high - t.low) / 2);
  }
  return std::min(widest, 0.5);
}

int64_t GeometricMeanMetric::FloorFixedPoint(const MeasureDomain& domain) {
  return std::max<int64_t>(domain.lower_fp, 1);
}

absl::StatusOr<GeometricMeanMetric> GeometricMeanMetric::Create(
    const ContributionBounds& bounds, const MeasureDomain& domain, double rho,
    double confidence) {
  const int64_t floor_fp = FloorFixedPoint(domain);
  if (domain.upper_fp <= floor_fp) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "geometric mean: the measure's upper bound %g is not above its "
        "positive floor %g",
        domain.ToValue(domain.upper_fp), domain.ToValue(floor_fp)));
  }
  absl::StatusOr<MeasureDomain> log_domain = MeasureDomain::Create(
      std::log(domain.ToValue(floor_fp)),
      std::log(domain.ToValue(domain.upper_fp)), kLogGranularity);
  if (!log_domain.ok()) return log_domain.status();
  absl::StatusOr<MeanMetric> log_mean =
      MeanMetric::Create(bounds, *log_domain, rho, confidence);
  if (!log_mean.ok()) return log_mean.status();
  return GeometricMeanMetric(domain, floor_fp, *log_domain, *log_mean);
}

int64_t GeometricMeanMetric::LogFixedPoint(int64_t value_fp) const {
  const int64_t v = std::clamp(value_fp, floor_fp_, domain_.upper_fp);
  // The clamp into the log domain is what the sensitivity relies on; ln
  // itself only has to be deterministic.
  return log_domain_.ToFixedPoint(std::log(domain_.ToValue(v)));
}

absl::StatusOr<Estimate> GeometricMeanMetric::Release(__int128 log_sum_fp,
                                                      int64_t count,
                                                      RandomWords& rng) const {
  absl::StatusOr<Estimate> log_mean = log_mean_.Release(log_sum_fp, count, rng);
  if (!log_mean.ok()) return log_mean.status();
  return Estimate{std::exp(log_mean->value), std::exp(log_mean->ci_low),
                  std::exp(log_mean->ci_high)};
}

double GeometricMeanMetric::PredictedHalfWidth(int64_t sessions) const {
  const double h = log_mean_.PredictedHalfWidth(sessions);
  const double low = log_domain_.ToValue(log_domain_.lower_fp);
  const double high = log_domain_.ToValue(log_domain_.upper_fp);
  return (std::exp(high) - std::exp(std::max(high - 2 * h, low))) / 2;
}

}  // namespace cohortd::privacy
