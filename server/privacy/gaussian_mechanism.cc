#include "server/privacy/gaussian_mechanism.h"

#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_format.h"
#include "server/privacy/accountant.h"

namespace cohortd::privacy {
namespace {

constexpr double kExactSigmaLimit = 256;

// sum_{z >= from} exp(-z^2 / (2 sigma2)) for from >= 0, in long double,
// stopping once the terms are below 1e-40 of the running sum.
long double GaussianSumFrom(long double sigma2, int64_t from) {
  long double sum = 0;
  for (int64_t z = from;; ++z) {
    const long double term =
        std::exp(-static_cast<long double>(z) * z / (2 * sigma2));
    sum += term;
    if (term <= sum * 1e-40L || term == 0) break;
  }
  return sum;
}

}  // namespace

double DiscreteGaussianUpperTail(double sigma2, int64_t m) {
  if (m <= 0) return 1.0;  // Callers only need m >= 1; stay conservative.
  if (std::sqrt(sigma2) <= kExactSigmaLimit) {
    const long double normaliser = 1 + 2 * GaussianSumFrom(sigma2, 1);
    const long double tail = GaussianSumFrom(sigma2, m) / normaliser;
    return static_cast<double>(tail * (1 + 1e-15L));
  }
  const double x = static_cast<double>(m - 1) / std::sqrt(2 * sigma2);
  return 0.5 * std::erfc(x) * (1 + 1e-15);
}

absl::StatusOr<GaussianMechanism> GaussianMechanism::Create(double l2_squared,
                                                            double rho,
                                                            double confidence) {
  // Create is a pure function of its arguments, and finding the interval's
  // exact quantile sums the pmf (milliseconds for a large sigma), while a
  // server sees the same few parameter sets query after query: memoise.
  using Key = std::tuple<double, double, double>;
  static absl::Mutex mu(absl::kConstInit);
  static auto* cache ABSL_GUARDED_BY(mu) =
      new std::map<Key, GaussianMechanism>();
  const Key key{l2_squared, rho, confidence};
  {
    absl::MutexLock lock(&mu);
    auto it = cache->find(key);
    if (it != cache->end()) return it->second;
  }
  absl::StatusOr<GaussianMechanism> created =
      CreateUncached(l2_squared, rho, confidence);
  if (created.ok()) {
    absl::MutexLock lock(&mu);
    // Bounded: parameter sets come from configs and requests, and a client
    // varying epsilon must not grow this without limit.
    if (cache->size() >= 4096) cache->clear();
    cache->emplace(key, *created);
  }
  return created;
}

absl::StatusOr<GaussianMechanism> GaussianMechanism::CreateUncached(
    double l2_squared, double rho, double confidence) {
  if (!(l2_squared > 0) || !(rho > 0) || !(confidence > 0) ||
      !(confidence < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GaussianMechanism: need l2^2 > 0, rho > 0, confidence in (0,1); "
        "got %g, %g, %g",
        l2_squared, rho, confidence));
  }
  // sigma^2 = Delta_2^2 / (2 rho) (CKS20 Thm 14), rounded up by the
  // sampler's rational representation.
  absl::StatusOr<DiscreteGaussian> sampler =
      DiscreteGaussian::CreateAtLeast(l2_squared / (2 * rho));
  if (!sampler.ok()) return sampler.status();
  const double sigma2 = sampler->sigma2();
  // P[|Z| > c] = 2 P[Z >= c + 1]; find the smallest c making it <= alpha by
  // doubling then bisection (the tail is monotone in c).
  const double alpha = 1 - confidence;
  int64_t high = 1;
  while (2 * DiscreteGaussianUpperTail(sigma2, high + 1) > alpha) high *= 2;
  int64_t low = 0;
  while (low < high) {
    const int64_t mid = low + (high - low) / 2;
    if (2 * DiscreteGaussianUpperTail(sigma2, mid + 1) <= alpha) {
      high = mid;
    } else {
      low = mid + 1;
    }
  }
  const double coverage = 1 - 2 * DiscreteGaussianUpperTail(sigma2, low + 1);
  return GaussianMechanism(*sampler, GaussianRho(l2_squared, sigma2), low,
                           coverage);
}

absl::StatusOr<int64_t> GaussianMechanism::AddNoise(int64_t value,
                                                    RandomWords& rng) const {
  absl::StatusOr<int64_t> noise = sampler_.Sample(rng);
  if (!noise.ok()) return noise.status();
  int64_t out;
  if (__builtin_add_overflow(value, *noise, &out)) {
    return absl::OutOfRangeError("GaussianMechanism: int64 overflow");
  }
  return out;
}

absl::StatusOr<__int128> GaussianMechanism::AddNoiseWide(
    __int128 value, RandomWords& rng) const {
  absl::StatusOr<int64_t> noise = sampler_.Sample(rng);
  if (!noise.ok()) return noise.status();
  return value + *noise;
}

}  // namespace cohortd::privacy
