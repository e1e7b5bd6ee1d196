#include "server/privacy/sampling_interval.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace cohortd::privacy {

double TwoSidedNormalQuantile(double level) {
  // P[|N(0,1)| > z] = erfc(z / sqrt 2) is decreasing in z: bisect.
  const double alpha = 1 - level;
  double lo = 0, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    if (std::erfc(mid / std::sqrt(2.0)) > alpha) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return hi;
}

Estimate CombineNoiseAndSampling(const Estimate& noise, double se,
                                 double confidence, double lo, double hi) {
  const double s = TwoSidedNormalQuantile(confidence) * std::max(se, 0.0);
  const double down = std::max(noise.value - noise.ci_low, 0.0);
  const double up = std::max(noise.ci_high - noise.value, 0.0);
  Estimate e = noise;
  e.ci_low = std::clamp(noise.value - std::sqrt(down * down + s * s), lo, hi);
  e.ci_high = std::clamp(noise.value + std::sqrt(up * up + s * s), lo, hi);
  return e;
}

absl::StatusOr<ClusteredSamplingVariance> ClusteredSamplingVariance::Create(
    const ContributionBounds& bounds, SamplingTarget target,
    double per_session_bound, int k, double rho, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  if (!(per_session_bound > 0) || !std::isfinite(per_session_bound)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "sampling variance: per-session bound must be > 0, got %g",
        per_session_bound));
  }
  if (target == SamplingTarget::kRatio && k < 2) {
    return absl::InvalidArgumentError(
        "sampling variance of a ratio needs k >= 2");
  }
  // Q's per-cohort sensitivity is kTermScale; over L0 cohorts (L2):
  const double q_l2_squared =
      static_cast<double>(bounds.max_cohorts_per_account) *
      static_cast<double>(kTermScale) * static_cast<double>(kTermScale);
  const double q_rho = target == SamplingTarget::kRatio ? rho / 2 : rho;
  absl::StatusOr<GaussianMechanism> q_noise =
      GaussianMechanism::Create(q_l2_squared, q_rho, confidence);
  if (!q_noise.ok()) return q_noise.status();
  std::optional<GaussianMechanism> n_noise;
  if (target == SamplingTarget::kRatio) {
    absl::StatusOr<GaussianMechanism> n = GaussianMechanism::Create(
        SessionCountL2Squared(bounds), rho / 2, confidence);
    if (!n.ok()) return n.status();
    n_noise = *n;
  }
  return ClusteredSamplingVariance(
      target, bounds.max_sessions_per_cohort * per_session_bound, k, *q_noise,
      n_noise);
}

absl::StatusOr<double> ClusteredSamplingVariance::ReleaseStandardError(
    absl::Span<const AccountTotal> accounts, double ratio,
    RandomWords& rng) const {
  const bool is_ratio = target_ == SamplingTarget::kRatio;
  // Each account's term round(2^16 (r / (Linf B))^2), clamped to its
  // bound so the sensitivity holds whatever the floating point does.
  int64_t q = 0;
  int64_t n = 0;
  for (const AccountTotal& a : accounts) {
    const double r =
        is_ratio ? static_cast<double>(a.y) - ratio * static_cast<double>(a.n)
                 : static_cast<double>(a.y);
    const double u = std::min(std::abs(r) / account_bound_, 1.0);
    q += std::clamp<int64_t>(
        std::llround(u * u * static_cast<double>(kTermScale)), 0, kTermScale);
    n += a.n;
  }
  absl::StatusOr<int64_t> noisy_q = q_noise_.AddNoise(q, rng);
  if (!noisy_q.ok()) return noisy_q.status();
  // Upper confidence value of Q, in y^2 units.
  const double q_up =
      std::max<double>(static_cast<double>(*noisy_q + q_noise_.HalfWidth()),
                       0.0) *
      account_bound_ * account_bound_ / static_cast<double>(kTermScale);
  if (!is_ratio) return std::sqrt(q_up);
  absl::StatusOr<int64_t> noisy_n = n_noise_->AddNoise(n, rng);
  if (!noisy_n.ok()) return noisy_n.status();
  const double n_low = std::max<double>(
      static_cast<double>(*noisy_n - n_noise_->HalfWidth()), 1.0);
  const double small_sample = static_cast<double>(k_) / (k_ - 1);
  return std::sqrt(small_sample * q_up) / n_low;
}

}  // namespace cohortd::privacy
