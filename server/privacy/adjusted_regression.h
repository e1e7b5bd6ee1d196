// Adjusted rates and means (API Metric.adjust_for): each cohort's value
// adjusted for control dimensions by a linear model with fixed effects,
// estimated from noisy sufficient statistics, and reported at the overall
// mix of the controls.
//
// Model (one row per kept session that carries the metric and a level of
// every control): y = alpha_cohort + sum_d beta_{d, level_d} + e, with y
// the centred value 2v - lo - hi in fixed point (MEAN) or 2 [match] - 1
// (RATE), so |y| <= H. The adjusted value of cohort c is
//   alpha_c + sum_d sum_l w_{d,l} beta_{d,l},
// w_{d,l} the share of all rows at level l of control d ("the overall mix").
//
// Privacy: noisy sufficient statistics (X'X, X'y) with the Gaussian
// mechanism, as in Sheffet, "Differentially private ordinary least
// squares", ICML 2017, and Wang, "Revisiting differentially private
// linear regression" (AdaSSP), NeurIPS 2018. X is the full one-hot design
// (cohort + one column per level of each of D controls), so X'X's unique
// entries are two-way cell counts and every row has p = 1 + D ones. One
// account keeps at most Linf rows in each of at most L0 cohorts, so
//   Delta_2^2(X'X, unique entries) = L0 Linf^2 (1 + D)        [cohort-x-.]
//                                  + L0^2 Linf^2 D (D + 1)/2
//                                  [control-x-control]
// (the cohort entries of different cohorts are disjoint; the
// control-by-control entries may all coincide, which maximises the L2
// norm for a fixed number of increments), and
//   Delta_2^2(X'y) = L0 Linf^2 H^2 + L0^2 Linf^2 D H^2.
// The metric's rho share is split in halves between the two. Which
// cohorts are rows is decided by partition selection and the contributor
// gate before (released cohorts only), so by adaptive composition the
// statistics' sensitivity is over a fixed set of cohorts.
//
// Solving (post-processing): per control, the level with the largest
// noisy count is the reference (beta = 0) and levels whose noisy count is
// below kPoolSigmas noise sigmas are pooled into it (too rare to estimate);
// the reduced normal equations are solved by Gaussian elimination with
// partial pivoting. Interval (noise only): delta method on the noise of
// the entries, theta = A^-1 b, g'theta with u = A^-1 g:
//   Var = sigma_b^2 |u|^2 + sigma_A^2 sum_{i<=j} (u_i theta_j + u_j theta_i
//         [i != j])^2,
// value +- z sqrt(Var); an approximation (first order, weights treated as
// fixed) checked by simulation in tests/stochastic/adjusted_regression_test.
//
// Thread-safety: immutable after Create(); pass each thread's RandomWords.
#ifndef COHORTD_SERVER_PRIVACY_ADJUSTED_REGRESSION_H_
#define COHORTD_SERVER_PRIVACY_ADJUSTED_REGRESSION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/crypto/csprng.h"
#include "server/privacy/aggregations.h"
#include "server/privacy/contribution_bounding.h"
#include "server/privacy/gaussian_mechanism.h"

namespace cohortd::privacy {

class AdjustedRegression {
 public:
  // Pooling threshold for rare control levels, in noise sigmas.
  static constexpr double kPoolSigmas = 5;

  // `control_levels`: the number of levels of each control (each >= 1,
  // at most 8 controls); `max_abs_y` = H (> 0) in y's integer unit; `rho`
  // the metric's share. Errors: InvalidArgument on bad parameters.
  static absl::StatusOr<AdjustedRegression> Create(
      const ContributionBounds& bounds, std::vector<int> control_levels,
      int64_t max_abs_y, double rho, double confidence);

  // Rows: `levels` holds, per row, its D control levels (row-major,
  // levels.size() == D * cohort.size()); `cohort` each row's cohort in
  // [0, cohorts); `y` its centred value, |y| <= H (clamped). Returns, per
  // cohort, the adjusted value and its noise interval in y's unit, or an
  // empty vector when the noisy system is not solvable (nothing may be
  // published then). Errors: InvalidArgument on inconsistent sizes or
  // out-of-range levels; randomness failure.
  absl::StatusOr<std::vector<Estimate>> Release(
      int cohorts, absl::Span<const int32_t> cohort,
      absl::Span<const int32_t> levels, absl::Span<const int64_t> y,
      RandomWords& rng) const;

  double sigma_xx() const;
  double sigma_xy() const;

 private:
  AdjustedRegression(std::vector<int> control_levels, int64_t max_abs_y,
                     GaussianMechanism xx_noise, GaussianMechanism xy_noise,
                     double z)
      : control_levels_(std::move(control_levels)),
        max_abs_y_(max_abs_y),
        xx_noise_(xx_noise),
        xy_noise_(xy_noise),
        z_(z) {}

  std::vector<int> control_levels_;
  int64_t max_abs_y_;
  GaussianMechanism xx_noise_;
  GaussianMechanism xy_noise_;
  double z_;
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_ADJUSTED_REGRESSION_H_
