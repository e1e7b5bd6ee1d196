// The discrete Laplace mechanism, and `NoiseMechanism`: one integer's noise
// from either the discrete Laplace or the discrete Gaussian family, with
// its exact interval, so a metric can hold whichever the query's plan
// chose (query_release.h).
//
// Discrete Laplace (samplers.h DiscreteLaplace, CKS20 Alg. 2): adding
// Lap_Z(b), P[Z = z] = (1 - r) / (1 + r) r^|z|, r = e^{-1/b}, to an integer
// statistic whose per-account L1 sensitivity (over all cohorts of a query)
// is D is (D / b)-DP; its RDP curve is accountant.h DiscreteLaplaceCurve.
// Create() rounds b up to a rational t/s, so the epsilon actually spent is
// at most the epsilon granted.
//
// Thread-safety: immutable after Create(); share freely, pass each thread's
// own RandomWords.
#ifndef COHORTD_SERVER_PRIVACY_NOISE_MECHANISM_H_
#define COHORTD_SERVER_PRIVACY_NOISE_MECHANISM_H_

#include <cstdint>
#include <variant>

#include "absl/status/statusor.h"
#include "server/crypto/csprng.h"
#include "server/privacy/accountant.h"
#include "server/privacy/gaussian_mechanism.h"
#include "server/privacy/ratio_interval.h"
#include "server/privacy/samplers.h"

namespace cohortd::privacy {

// P[Z >= m] for Z ~ Lap_Z(b), m >= 1: r^m / (1 + r), rounded up; 1 for
// m <= 0.
double DiscreteLaplaceUpperTail(double b, int64_t m);

// The smallest c >= 0 with P[|Z| <= c] >= confidence for Z ~ Lap_Z(b).
int64_t DiscreteLaplaceHalfWidth(double b, double confidence);

class LaplaceMechanism {
 public:
  // Noise for a statistic with L1 sensitivity `l1` >= 1 under a grant of
  // `epsilon` > 0: scale b >= l1 / epsilon. Errors: InvalidArgument on
  // bad parameters or a scale beyond the sampler's range (b >= 2^31).
  static absl::StatusOr<LaplaceMechanism> Create(int64_t l1, double epsilon,
                                                 double confidence);

  // value + Z. Errors: randomness failure; OutOfRange on int64 overflow.
  absl::StatusOr<int64_t> AddNoise(int64_t value, RandomWords& rng) const;
  // value + Z in 128 bits (no data-dependent overflow error).
  absl::StatusOr<__int128> AddNoiseWide(__int128 value, RandomWords& rng) const;

  int64_t HalfWidth() const { return half_width_; }
  // P[|Z| <= HalfWidth()] (>= confidence).
  double Coverage() const;
  double scale() const { return scale_; }
  int64_t l1() const { return l1_; }
  // l1 / b for the b actually used, rounded up (<= the grant).
  double epsilon() const;
  // The exact RDP curve of this noise on a shift of l1.
  RdpCurve Curve() const { return DiscreteLaplaceCurve(scale_, l1_); }

 private:
  LaplaceMechanism(DiscreteLaplace sampler, int64_t l1, double scale,
                   int64_t half_width)
      : sampler_(sampler), l1_(l1), scale_(scale), half_width_(half_width) {}
  DiscreteLaplace sampler_;
  int64_t l1_;
  double scale_;
  int64_t half_width_;
};

// Either family, behind one interface for the metrics.
class NoiseMechanism {
 public:
  NoiseMechanism(GaussianMechanism gaussian)  // NOLINT: implicit by design
      : noise_(gaussian) {}
  NoiseMechanism(LaplaceMechanism laplace)  // NOLINT: implicit by design
      : noise_(laplace) {}

  absl::StatusOr<int64_t> AddNoise(int64_t value, RandomWords& rng) const;
  absl::StatusOr<__int128> AddNoiseWide(__int128 value, RandomWords& rng) const;
  int64_t HalfWidth() const;
  double Coverage() const;
  bool is_laplace() const {
    return std::holds_alternative<LaplaceMechanism>(noise_);
  }
  // sigma^2 for the Gaussian; the variance 2 r / (1 - r)^2 for the Laplace.
  double sigma2() const;
  // The mechanism's own RDP curve.
  RdpCurve Curve() const;
  // The zCDP view: the Gaussian's rho, or epsilon^2 / 2 for the Laplace
  // (a pure epsilon-DP mechanism is epsilon^2 / 2-zCDP, BS16 Prop. 1.4).
  double rho() const;
  // The law of the noise, for ratio_interval.h.
  absl::StatusOr<NoiseLaw> Law() const;

 private:
  std::variant<GaussianMechanism, LaplaceMechanism> noise_;
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_NOISE_MECHANISM_H_
