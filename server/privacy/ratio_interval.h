// Confidence intervals for ratios of two independently noised integers
// (rates and means), by test inversion (Fieller 1954, "Some problems in
// interval estimation", JRSS B 16(2)) with rigorous tail bounds for the
// discrete Gaussian and the discrete Laplace.
//
// Setting. Two integer statistics P and Q are released as P~ = P + X and
// Q~ = Q + Y with independent noises X, Y of known laws. The parameter
// theta lies in a public interval [theta_low, theta_high] and is defined
// by u(theta) P - v(theta) Q = 0 with u, v affine in theta:
//   rate  theta = a / (a + b): P = a (matching), Q = b (non-matching),
//         u = 1 - theta, v = theta, theta in [0, 1];
//   mean  theta = S / n = 2 (mean - mid) in fixed point: P = S (centred
//         sum), Q = n (count), u = 1, v = theta, theta in [-W, W],
//         W = hi - lo.
// For every candidate theta the pivot T(theta) = u P~ - v Q~ equals
// u X - v Y at the true theta, whose law is known. The interval is the
// hull of {theta : |T(theta)| <= q(theta)}, q(theta) a bound on the
// (1 - alpha) quantile of |u X - v Y|: it covers the true theta with
// probability >= 1 - alpha for every (P, Q). Compared with the corners of
// a box (each noise within its own 1 - alpha/2 half-width), only one
// linear combination of the two noises has to be covered, not both noises
// separately: at theta = 1/2 of a rate the threshold is ~1.39 sigma
// instead of ~2.24 sigma (95%).
//
// Quantile bounds q(a, b) for |a X + b Y|, a, b >= 0 (the least of):
//  * exact, when one coefficient is 0: a * HalfWidth_X(alpha);
//  * the box: a h_X + b h_Y with h at level sqrt(1 - alpha) each (X, Y
//    independent, so both are within with probability 1 - alpha);
//  * the continuous bound, for two noises of the same family (Gaussians
//    with sigma >= 1): with C the
//    continuous counterpart (N(0, sigma^2), resp. Laplace of scale t),
//    X <=_st C + 1 and X >=_st C - 1 (lemma below), so for independent
//    noises a X + b Y <=_st a C1 + b C2 + a + b, and
//        P[|a X + b Y| > z] <= P[|a C1 + b C2| > z - a - b],
//    where a C1 + b C2 is N(0, a^2 s_X^2 + b^2 s_Y^2), resp. has the
//    two-sided tail (s1^2 e^{-z/s1} - s2^2 e^{-z/s2}) / (s1^2 - s2^2),
//    s1 = a t_X, s2 = b t_Y (e^{-z/s} (2 + z/s) / 2 when s1 = s2, which
//    bounds the tail for s1, s2 <= s since the tail grows with each scale).
//  Lemma (X symmetric on the integers, C symmetric continuous): if for
//  every integer m >= 1, P[C >= m] <= P[X >= m] <= P[C >= m - 1], then
//  X <=_st C + 1. For x >= 0, P[X > x] = P[X >= floor(x) + 1] <=
//  P[C >= floor(x)] <= P[C > x - 1]; for x = -y < 0, P[X > x] =
//  1 - P[X >= ceil(y)] <= 1 - P[C >= ceil(y)] <= 1 - P[C >= y + 1] =
//  P[C + 1 > x]. By symmetry X >=_st C - 1. The hypothesis holds for the
//  discrete Laplace (P[X >= m] = e^{-m/t} / (1 + e^{-1/t}), P[C >= m] =
//  e^{-m/t} / 2, and 2 <= 1 + e^{1/t}), and for the discrete Gaussian with
//  sigma >= 1: the upper side is DiscreteGaussianUpperTail's bound; the
//  lower side because sum_{z >= m} e^{-z^2/2s^2} exceeds its integral from
//  m by at least the first cell's excess, far more than the normaliser's
//  relative excess over sqrt(2 pi) s (2 sum_k e^{-2 pi^2 s^2 k^2} <= 6e-9
//  for s >= 1; checked numerically in ratio_interval_test).
//
// The hull is computed over a fixed grid of cells in theta: cell i gets
// the threshold q_i = q(max |u|, max |v|) over the cell (q grows with
// each coefficient), which is >= q(theta) for every theta in it, and the
// part of the cell with |T(theta)| <= q_i is solved exactly (T is affine).
// The result contains every accepted theta; it is widened by a relative
// 1e-12 of the domain against rounding. Thresholds depend only on the
// public parameters: computed once per parameter set and memoised.
//
// Thread-safety: NoiseLaw and RatioInterval are immutable values; the
// memo is guarded by a mutex.
#ifndef COHORTD_SERVER_PRIVACY_RATIO_INTERVAL_H_
#define COHORTD_SERVER_PRIVACY_RATIO_INTERVAL_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace cohortd::privacy {

// The law of one symmetric integer noise, by its parameters.
class NoiseLaw {
 public:
  enum class Kind { kDiscreteGaussian, kDiscreteLaplace };

  // N_Z(0, sigma2) (samplers.h DiscreteGaussian with this sigma^2).
  // Errors: InvalidArgument unless 0 < sigma2 < 2^62. (Below sigma 1 the
  // continuous bound is not used: the lemma above needs sigma >= 1.)
  static absl::StatusOr<NoiseLaw> DiscreteGaussian(double sigma2);
  // Discrete Laplace with P[X = x] proportional to e^{-|x|/scale}
  // (samplers.h DiscreteLaplace, scale = t/s). Errors: InvalidArgument
  // unless 0 < scale < 2^62.
  static absl::StatusOr<NoiseLaw> DiscreteLaplace(double scale);

  Kind kind() const { return kind_; }
  // sigma^2 (Gaussian) or the scale t (Laplace).
  double parameter() const { return parameter_; }

  // An upper bound on P[|X| >= m], never below the truth: for the
  // Laplace the exact 2 e^{-m/t} / (1 + e^{-1/t}) (m >= 1), for the
  // Gaussian 2 DiscreteGaussianUpperTail(sigma2, m). 1 for m <= 0.
  double TwoSidedTail(int64_t m) const;
  // The smallest integer h >= 0 with TwoSidedTail(h + 1) <= alpha, so
  // P[|X| > h] <= alpha. Requires 0 < alpha < 1.
  int64_t HalfWidth(double alpha) const;
  // An upper bound on Var(X): sigma^2 for the Gaussian (CKS20 Cor. 9),
  // 2 e^{-1/t} / (1 - e^{-1/t})^2 (exact) for the Laplace.
  double Variance() const;

  // An upper bound on P[|C| > z] for the continuous counterpart C.
  double ContinuousTwoSidedTail(double z) const;

 private:
  NoiseLaw(Kind kind, double parameter) : kind_(kind), parameter_(parameter) {}
  Kind kind_;
  double parameter_;
};

// A bound q on the (1 - alpha) quantile of |a X + b Y| for independent
// X ~ x, Y ~ y and a, b >= 0: P[|a X + b Y| > q] <= alpha (the least of
// the bounds in the file comment). Requires 0 < alpha < 1. Non-decreasing
// in a and in b.
double CombinationHalfWidth(double a, const NoiseLaw& x, double b,
                            const NoiseLaw& y, double alpha);

struct ParameterInterval {
  double low = 0;
  double high = 0;
};

class RatioInterval {
 public:
  // theta in [theta_low, theta_high]; u(theta) = u0 + u1 theta and
  // v(theta) = v0 + v1 theta.
  struct Pivot {
    double theta_low = 0;
    double theta_high = 1;
    double u0 = 1, u1 = -1;
    double v0 = 0, v1 = 1;
  };

  // `p_noise` is the law of P~'s noise, `q_noise` Q~'s. Errors:
  // InvalidArgument unless theta_low < theta_high (finite) and confidence
  // is in (0, 1).
  static absl::StatusOr<RatioInterval> Create(const Pivot& pivot,
                                              const NoiseLaw& p_noise,
                                              const NoiseLaw& q_noise,
                                              double confidence);
  // rate = a / (a + b) in [0, 1] from noisy a (matching) and b
  // (non-matching).
  static absl::StatusOr<RatioInterval> ForRate(const NoiseLaw& matching,
                                               const NoiseLaw& non_matching,
                                               double confidence);
  // theta = S / n in [-width, width] from a noisy centred sum S and a
  // noisy count n (a mean of values in [lo, hi] is lo + (theta + width)/2
  // with width = hi - lo). Errors: InvalidArgument unless width > 0.
  static absl::StatusOr<RatioInterval> ForMean(const NoiseLaw& centred_sum,
                                               const NoiseLaw& count,
                                               double width, double confidence);

  // The interval from the noisy pair: it contains every theta not
  // rejected (so the true theta with probability >= confidence) and
  // `estimate` (clamped to the domain), which post-processing may report
  // as the point value. When every theta is rejected (probability <=
  // 1 - confidence) it is the point `estimate`.
  ParameterInterval Compute(double p_noisy, double q_noisy,
                            double estimate) const;

  // The threshold of cell i (for tests and documentation).
  int cells() const { return static_cast<int>(thresholds_->size()); }
  double threshold(int i) const { return (*thresholds_)[i]; }

 private:
  RatioInterval(Pivot pivot, std::shared_ptr<const std::vector<double>> t)
      : pivot_(pivot),
        thresholds_(std::move(t)),
        max_threshold_(
            *std::max_element(thresholds_->begin(), thresholds_->end())) {}

  Pivot pivot_;
  std::shared_ptr<const std::vector<double>> thresholds_;  // one per cell
  double max_threshold_;
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_RATIO_INTERVAL_H_
