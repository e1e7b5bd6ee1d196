#include "server/privacy/aggregations.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace cohortd::privacy {
namespace {

absl::Status CheckConfidence(double confidence) {
  if (!(confidence > 0) || !(confidence < 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("confidence must be in (0, 1), got %g", confidence));
  }
  return absl::OkStatus();
}

// The per-noise confidence when two independent noises must both be within
// their half-widths: (1 - alpha/2) each, union bound.
double HalfAlpha(double confidence) { return 1 - (1 - confidence) / 2; }

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

absl::StatusOr<Estimate> SumMetric::Release(__int128 sum_fp,
                                            RandomWords& rng) const {
  absl::StatusOr<__int128> noisy = noise_.AddNoiseWide(sum_fp, rng);
  if (!noisy.ok()) return noisy.status();
  const double c = static_cast<double>(noise_.HalfWidth());
  const double v = static_cast<double>(*noisy);
  return Estimate{domain_.ToValue(v), domain_.ToValue(v - c),
                  domain_.ToValue(v + c)};
}

absl::StatusOr<MeanMetric> MeanMetric::Create(const ContributionBounds& bounds,
                                              const MeasureDomain& domain,
                                              double rho, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  status = CheckConfidence(confidence);
  if (!status.ok()) return status;
  // Sequential composition inside the metric: rho/2 + rho/2 = rho.
  absl::StatusOr<GaussianMechanism> count_noise = GaussianMechanism::Create(
      SessionCountL2Squared(bounds), rho / 2, HalfAlpha(confidence));
  if (!count_noise.ok()) return count_noise.status();
  absl::StatusOr<GaussianMechanism> sum_noise = GaussianMechanism::Create(
      CenteredSumL2Squared(bounds, domain), rho / 2, HalfAlpha(confidence));
  if (!sum_noise.ok()) return sum_noise.status();
  return MeanMetric(domain, *count_noise, *sum_noise);
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
  Estimate e;
  e.value = domain_.ToValue(n > 0 ? clamp(mid + s / (2 * n)) : mid);
  const double cn = static_cast<double>(count_noise_.HalfWidth());
  const double cs = static_cast<double>(sum_noise_.HalfWidth());
  // A cohort has >= 1 session, so the box's n may be floored at 1.
  const double n_low = std::max(n - cn, 1.0);
  const double n_high = n + cn;
  if (n_high < 1) {
    e.ci_low = domain_.ToValue(lo);
    e.ci_high = domain_.ToValue(hi);
    return e;
  }
  double low = hi, high = lo;
  for (double ns : {n_low, n_high}) {
    for (double ss : {s - cs, s + cs}) {
      const double m = clamp(mid + ss / (2 * ns));
      low = std::min(low, m);
      high = std::max(high, m);
    }
  }
  e.ci_low = domain_.ToValue(low);
  e.ci_high = domain_.ToValue(high);
  return e;
}

absl::StatusOr<RateMetric> RateMetric::Create(const ContributionBounds& bounds,
                                              double rho, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  status = CheckConfidence(confidence);
  if (!status.ok()) return status;
  absl::StatusOr<GaussianMechanism> noise = GaussianMechanism::Create(
      RatePairL2Squared(bounds), rho, HalfAlpha(confidence));
  if (!noise.ok()) return noise.status();
  return RateMetric(*noise);
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
  const double c = static_cast<double>(noise_.HalfWidth());
  // True counts are >= 0, so clipping the box at 0 keeps them inside it.
  auto pos = [](double x) { return std::max(x, 0.0); };
  auto ratio = [](double num, double den, double if_empty) {
    return den > 0 ? num / den : if_empty;
  };
  const double na = pos(static_cast<double>(*a));
  const double nb = pos(static_cast<double>(*b));
  Estimate e;
  // 0.5 is the uninformative midpoint when both noisy counts are <= 0.
  e.value = ratio(na, na + nb, 0.5);
  const double a_low = pos(*a - c), a_high = pos(*a + c);
  const double b_low = pos(*b - c), b_high = pos(*b + c);
  e.ci_low = ratio(a_low, a_low + b_high, 0.0);
  e.ci_high = ratio(a_high, a_high + b_low, 1.0);
  return e;
}

double SessionCountMetric::PredictedHalfWidth(int64_t /*sessions*/) const {
  return static_cast<double>(noise_.HalfWidth());
}

double SumMetric::PredictedHalfWidth(int64_t /*sessions*/) const {
  return domain_.ToValue(static_cast<double>(noise_.HalfWidth()));
}

double MeanMetric::PredictedHalfWidth(int64_t sessions) const {
  const double range = static_cast<double>(domain_.upper_fp - domain_.lower_fp);
  const double cn = static_cast<double>(count_noise_.HalfWidth());
  const double cs = static_cast<double>(sum_noise_.HalfWidth());
  const double n = static_cast<double>(sessions);
  // As in Release(): the box's n is floored at 1.
  const double box = (cs + range * cn) / (2 * std::max(n - cn, 1.0));
  return domain_.ToValue(std::min(box, range / 2));
}

double RateMetric::PredictedHalfWidth(int64_t sessions) const {
  if (sessions <= 0) return 0.5;
  return std::min(
      static_cast<double>(noise_.HalfWidth()) / static_cast<double>(sessions),
      0.5);
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
