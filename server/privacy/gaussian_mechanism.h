// The discrete Gaussian mechanism on one integer, with its exact noise
// quantiles for confidence intervals and thresholds.
//
// Adding N_Z(0, sigma^2) to an integer statistic whose per-account L2
// sensitivity (over all cohorts of a query) is Delta_2 is
// rho = Delta_2^2 / (2 sigma^2)-zCDP (CKS20 Theorem 14). Create() solves
// for sigma^2 given rho and rounds sigma^2 up, so the rho actually spent is
// at most the rho granted.
//
// Thread-safety: immutable after Create(); share freely, pass each thread's
// own RandomWords.
#ifndef COHORTD_SERVER_PRIVACY_GAUSSIAN_MECHANISM_H_
#define COHORTD_SERVER_PRIVACY_GAUSSIAN_MECHANISM_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "server/crypto/csprng.h"
#include "server/privacy/samplers.h"

namespace cohortd::privacy {

// P[Z >= m] for Z ~ N_Z(0, sigma2), computed so that the result is never
// below the truth by more than 1e-15 relative: exactly (long double sums)
// for sigma <= 256, otherwise by the bound P[Z >= m] <= P[N(0, sigma2) >=
// m - 1] for m >= 1, which holds because exp(-z^2/2s^2) <= the integral of
// the same density over [z-1, z] for z >= 1 and the normaliser
// sum_z exp(-z^2/2s^2) >= sqrt(2 pi) s (Poisson summation).
double DiscreteGaussianUpperTail(double sigma2, int64_t m);

class GaussianMechanism {
 public:
  // Noise for a statistic with L2 sensitivity^2 `l2_squared` under a grant
  // of `rho`, and a confidence level in (0, 1) for HalfWidth().
  // Errors: InvalidArgument on non-positive or out-of-range parameters
  // (including a sigma too large for the sampler, i.e. rho too small).
  // Results are memoised per argument triple (thread-safe).
  static absl::StatusOr<GaussianMechanism> Create(double l2_squared, double rho,
                                                  double confidence);

  // value + Z. Errors: randomness failure; OutOfRange if the sum would
  // overflow int64 (then nothing is released).
  absl::StatusOr<int64_t> AddNoise(int64_t value, RandomWords& rng) const;
  // value + Z in 128 bits, for sums: no overflow for |value| < 2^126, far
  // above any sum of at most 2^32 sessions of fixed-point values below
  // 2^40 in magnitude, so no error here depends on the data. Errors:
  // randomness failure.
  absl::StatusOr<__int128> AddNoiseWide(__int128 value, RandomWords& rng) const;

  // The smallest c >= 0 with P[|Z| <= c] >= confidence: [x - c, x + c]
  // covers the true value with probability >= confidence.
  int64_t HalfWidth() const { return half_width_; }
  // P[|Z| <= HalfWidth()] (>= confidence; not exact for sigma > 256).
  double Coverage() const { return coverage_; }

  double sigma2() const { return sampler_.sigma2(); }
  // Delta_2^2 / (2 sigma^2) for the sigma^2 actually used, rounded up.
  double rho() const { return rho_; }

 private:
  static absl::StatusOr<GaussianMechanism> CreateUncached(double l2_squared,
                                                          double rho,
                                                          double confidence);
  GaussianMechanism(DiscreteGaussian sampler, double rho, int64_t half_width,
                    double coverage)
      : sampler_(sampler),
        rho_(rho),
        half_width_(half_width),
        coverage_(coverage) {}

  DiscreteGaussian sampler_;
  double rho_;
  int64_t half_width_;
  double coverage_;
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_GAUSSIAN_MECHANISM_H_
