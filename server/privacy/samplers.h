// Exact samplers for discrete noise, after Canonne, Kamath & Steinke,
// "The Discrete Gaussian for Differential Privacy", NeurIPS 2020 (CKS20),
// Algorithms 1-3.
//
// Only integer arithmetic decides a sample: parameters are rationals, the
// randomness is uniform 64-bit words turned into uniform integers by
// rejection (exact), so none of the floating-point weaknesses of textbook
// Laplace noise (Mironov, CCS 2012) apply. A sampler either returns an
// exact sample or an error (randomness failed, or an event of probability
// below 2^-40 needed arithmetic beyond the fixed widths used here); it never
// returns an approximate sample.
//
// Thread-safety: samplers are immutable after Create() and may be shared;
// each call needs the calling thread's own RandomWords.
#ifndef COHORTD_SERVER_PRIVACY_SAMPLERS_H_
#define COHORTD_SERVER_PRIVACY_SAMPLERS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "server/crypto/csprng.h"

namespace cohortd::privacy {

// Returns true with probability exp(-num/den) (CKS20 Algorithm 1).
// Requires den >= 1 and num, den < 2^32 (InvalidArgument otherwise).
// Errors: those of `rng`.
absl::StatusOr<bool> SampleBernoulliExp(RandomWords& rng, uint64_t num,
                                        uint64_t den);

// Discrete Laplace on the integers with scale b = t/s:
// P[X = x] = (e^{1/b} - 1) / (e^{1/b} + 1) * e^{-|x|/b} (CKS20 Algorithm 2).
// Adding it to an integer with L1 sensitivity D gives (D/b)-DP.
class DiscreteLaplace {
 public:
  // Requires 1 <= t, s < 2^32 (InvalidArgument otherwise).
  static absl::StatusOr<DiscreteLaplace> Create(uint64_t t, uint64_t s);

  // One sample. Errors: those of `rng`; Internal with probability < 2^-40.
  absl::StatusOr<int64_t> Sample(RandomWords& rng) const;

  uint64_t t() const { return t_; }
  uint64_t s() const { return s_; }

 private:
  DiscreteLaplace(uint64_t t, uint64_t s) : t_(t), s_(s) {}
  uint64_t t_;
  uint64_t s_;
};

// Discrete Gaussian N_Z(0, sigma^2): P[X = x] proportional to
// exp(-x^2 / (2 sigma^2)) (CKS20 Algorithm 3). sigma^2 is the exact
// rational num/den. Its variance is at most sigma^2 and it is
// sigma-sub-Gaussian (CKS20 Cor. 9 and Prop. 19's proof); adding it to a
// vector with L2 sensitivity D gives D^2 / (2 sigma^2)-zCDP (CKS20 Thm 14).
class DiscreteGaussian {
 public:
  // Requires num >= 1, 1 <= den <= 2^24 and sigma < 2^31 (InvalidArgument
  // otherwise).
  static absl::StatusOr<DiscreteGaussian> Create(uint64_t num, uint64_t den);

  // The discrete Gaussian whose sigma^2 is the smallest rational with
  // denominator 2^16 (or 1 for sigma^2 >= 2^40) that is >= `sigma2`:
  // rounding up only adds noise, so privacy computed for `sigma2` holds.
  // Requires 0 < sigma2 and sigma < 2^31.
  static absl::StatusOr<DiscreteGaussian> CreateAtLeast(double sigma2);

  absl::StatusOr<int64_t> Sample(RandomWords& rng) const;

  uint64_t sigma2_num() const { return num_; }
  uint64_t sigma2_den() const { return den_; }
  double sigma2() const { return static_cast<double>(num_) / den_; }

 private:
  DiscreteGaussian(uint64_t num, uint64_t den, uint64_t t)
      : num_(num), den_(den), t_(t) {}
  uint64_t num_;
  uint64_t den_;
  uint64_t t_;  // floor(sigma) + 1, the Laplace scale of CKS20 Alg. 3.
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_SAMPLERS_H_
