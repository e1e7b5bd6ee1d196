#include "server/privacy/noise_mechanism.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace cohortd::privacy {

double DiscreteLaplaceUpperTail(double b, int64_t m) {
  if (m <= 0) return 1.0;
  const long double log_r = -1.0L / b;
  const long double tail = std::exp(m * log_r) / (1 + std::exp(log_r));
  return static_cast<double>(tail * (1 + 1e-15L));
}

int64_t DiscreteLaplaceHalfWidth(double b, double confidence) {
  // P[|Z| > c] = 2 P[Z >= c + 1] = 2 r^{c+1} / (1 + r): start from the
  // closed-form solution and step to the exact smallest c.
  const double alpha = 1 - confidence;
  const long double r = std::exp(-1.0L / b);
  long double guess = std::log(alpha * (1 + r) / 2) / std::log(r) - 1;
  int64_t c = std::max<int64_t>(0, static_cast<int64_t>(std::floor(guess)) - 2);
  while (2 * DiscreteLaplaceUpperTail(b, c + 1) > alpha) ++c;
  while (c > 0 && 2 * DiscreteLaplaceUpperTail(b, c) <= alpha) --c;
  return c;
}

absl::StatusOr<LaplaceMechanism> LaplaceMechanism::Create(int64_t l1,
                                                          double epsilon,
                                                          double confidence) {
  if (l1 < 1 || !(epsilon > 0) || !std::isfinite(epsilon) ||
      !(confidence > 0) || !(confidence < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "LaplaceMechanism: need l1 >= 1, epsilon > 0, confidence in (0,1); "
        "got %d, %g, %g",
        l1, epsilon, confidence));
  }
  const long double b = static_cast<long double>(l1) / epsilon;
  if (!(b < 2147483648.0L)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "LaplaceMechanism: scale %g too large (epsilon too small)",
        static_cast<double>(b)));
  }
  // b = t / s rounded up, s the largest power of two <= 2^16 with
  // t < 2^32.
  uint64_t s = 1 << 16;
  while (s > 1 && b * s >= 4294967295.0L) s /= 2;
  const uint64_t t = static_cast<uint64_t>(std::ceil(b * s * (1 + 1e-15L)));
  absl::StatusOr<DiscreteLaplace> sampler = DiscreteLaplace::Create(t, s);
  if (!sampler.ok()) return sampler.status();
  const double scale = static_cast<double>(t) / static_cast<double>(s);
  return LaplaceMechanism(*sampler, l1, scale,
                          DiscreteLaplaceHalfWidth(scale, confidence));
}

absl::StatusOr<int64_t> LaplaceMechanism::AddNoise(int64_t value,
                                                   RandomWords& rng) const {
  absl::StatusOr<int64_t> noise = sampler_.Sample(rng);
  if (!noise.ok()) return noise.status();
  int64_t out;
  if (__builtin_add_overflow(value, *noise, &out)) {
    return absl::OutOfRangeError("LaplaceMechanism: int64 overflow");
  }
  return out;
}

absl::StatusOr<__int128> LaplaceMechanism::AddNoiseWide(
    __int128 value, RandomWords& rng) const {
  absl::StatusOr<int64_t> noise = sampler_.Sample(rng);
  if (!noise.ok()) return noise.status();
  return value + *noise;
}

double LaplaceMechanism::Coverage() const {
  return 1 - 2 * DiscreteLaplaceUpperTail(scale_, half_width_ + 1);
}

double LaplaceMechanism::epsilon() const {
  return RoundSpend(static_cast<double>(l1_) / scale_);
}

absl::StatusOr<int64_t> NoiseMechanism::AddNoise(int64_t value,
                                                 RandomWords& rng) const {
  return std::visit([&](const auto& m) { return m.AddNoise(value, rng); },
                    noise_);
}

absl::StatusOr<__int128> NoiseMechanism::AddNoiseWide(__int128 value,
                                                      RandomWords& rng) const {
  return std::visit([&](const auto& m) { return m.AddNoiseWide(value, rng); },
                    noise_);
}

int64_t NoiseMechanism::HalfWidth() const {
  return std::visit([](const auto& m) { return m.HalfWidth(); }, noise_);
}

double NoiseMechanism::Coverage() const {
  return std::visit([](const auto& m) { return m.Coverage(); }, noise_);
}

double NoiseMechanism::sigma2() const {
  if (const auto* g = std::get_if<GaussianMechanism>(&noise_)) {
    return g->sigma2();
  }
  const double r = std::exp(-1.0 / std::get<LaplaceMechanism>(noise_).scale());
  return 2 * r / ((1 - r) * (1 - r));
}

RdpCurve NoiseMechanism::Curve() const {
  if (const auto* g = std::get_if<GaussianMechanism>(&noise_)) {
    return ZcdpCurve(g->rho());
  }
  return std::get<LaplaceMechanism>(noise_).Curve();
}

double NoiseMechanism::rho() const {
  if (const auto* g = std::get_if<GaussianMechanism>(&noise_)) {
    return g->rho();
  }
  return PureDpRho(std::get<LaplaceMechanism>(noise_).epsilon());
}

absl::StatusOr<NoiseLaw> NoiseMechanism::Law() const {
  if (const auto* g = std::get_if<GaussianMechanism>(&noise_)) {
    return NoiseLaw::DiscreteGaussian(g->sigma2());
  }
  return NoiseLaw::DiscreteLaplace(std::get<LaplaceMechanism>(noise_).scale());
}

}  // namespace cohortd::privacy
