// Cohort release: k-anonymity pre-threshold and DP partition selection as
// one mechanism.
//
// A cohort with n distinct accounts (after contribution bounding) is
// released iff
//     n >= k   AND   (n - (k - 1)) + Z >= tau,      Z ~ N_Z(0, sigma^2).
// This is Gaussian partition selection (Google differential-privacy,
// GaussianPartitionSelection; Desfontaines et al., "Differentially private
// partition selection", PoPETs 2022) applied to the shifted count
// n' = n - (k - 1), as in the library's `pre_threshold` option: a cohort
// below k is treated exactly like an absent partition (n' <= 0, never
// released), so adding one account moves a cohort from "absent" to n' = 1
// at most, the same step the un-thresholded mechanism is proven for.
//
// Privacy (neighbours: one account added or removed; it touches at most
// L0 cohorts, changing each n by at most 1):
//  * cohorts with n' >= 1 on both sides see a Gaussian mechanism on a
//    vector with L2 sensitivity sqrt(L0): rho = L0 / (2 sigma^2);
//  * a cohort with n' = 1 on one side only is released there with
//    probability P[Z >= tau - 1]; for the at most L0 such cohorts this is
//    the delta of delta-approximate zCDP (BS16 Def. 8.1):
//        delta = L0 * P[Z >= tau - 1].
// Create() takes (rho, delta), sets sigma^2 = L0 / (2 rho) and the
// smallest integer tau meeting the delta above.
//
// The noisy count n' + Z + (k - 1) estimates n and is released for free as
// the ACCOUNTS metric (post-processing).
//
// The same mechanism, with its own (rho, delta), is the contributor gate
// of a metric (query_release.h): n is then the number of accounts that
// contribute to the metric, and a failed gate suppresses the metric's
// estimate, not the cohort.
//
// Every decision draws one noise sample, also for n < k where it is
// discarded, so the time a query takes does not count its below-k cohorts.
//
// The optimal alternative (CreateOptimal): Desfontaines, Voss, Gipson &
// Mandayam, "Differentially private partition selection" (PoPETs 2022),
// the Google library's NearTruncatedGeometric/PreaggPartitionSelection.
// For one partition and (epsilon1, delta1)-DP, the largest keep
// probabilities with pi(0) = 0 are
//     pi(n) = min(e^eps1 pi(n-1) + delta1,
//                 1 - e^-eps1 (1 - pi(n-1) - delta1), 1),
// every DP constraint between n - 1 and n then holding by construction
// (and pi is non-decreasing, so the reverse ones too). We apply it to the
// shifted count n' = n - (k - 1) (pre-threshold, as above), per cohort
// with epsilon1 = epsilon / L0 and delta1 = delta / L0, so an account's <=
// L0 cohorts compose to (epsilon, delta)-DP (basic composition; the
// decisions are independent). A decision is one uniform 64-bit word U from
// the CSPRNG, kept iff U < floor(pi(n') 2^64) (pi computed in long double
// with delta1 reduced by 1e-6 relative, which dwarfs every rounding). Its
// approximate-RDP charge (Charge()): a binary (eps1, delta1)-DP pair is,
// conditioned on events of probability >= 1 - delta1, eps1 +
// ln(1 / (1 - delta1))-DP (docs/privacy.md), so the curve is L0 times the
// randomized-response curve at that epsilon, with approximate delta.
// It releases no noisy count: ACCOUNTS then needs its own noise.
//
// Thread-safety: immutable after Create().
#ifndef COHORTD_SERVER_PRIVACY_PARTITION_SELECTION_H_
#define COHORTD_SERVER_PRIVACY_PARTITION_SELECTION_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "server/crypto/csprng.h"
#include "server/privacy/accountant.h"
#include "server/privacy/aggregations.h"
#include "server/privacy/gaussian_mechanism.h"

namespace cohortd::privacy {

class PartitionSelector {
 public:
  // k >= 1; max_cohorts_per_account (L0) >= 1; rho > 0; 0 < delta < 1;
  // confidence in (0, 1) for the ACCOUNTS interval. Errors:
  // InvalidArgument.
  static absl::StatusOr<PartitionSelector> Create(int k,
                                                  int max_cohorts_per_account,
                                                  double rho, double delta,
                                                  double confidence);
  // The optimal (epsilon, delta) selection (file comment): epsilon > 0,
  // 0 < delta < 1 with delta / L0 >= 1e-15. Errors: InvalidArgument.
  static absl::StatusOr<PartitionSelector> CreateOptimal(
      int k, int max_cohorts_per_account, double epsilon, double delta);

  struct Decision {
    bool released = false;
    // Meaningful only when released and provides_accounts(): the noisy
    // distinct-account count and its interval. The interval covers the true
    // (bounded) count with probability >= confidence unconditionally;
    // conditioned on release it leans high for cohorts near the threshold.
    Estimate accounts;
  };

  // Decides one cohort from its true distinct-account count. Cohorts below
  // k are never released; they draw (and discard) one noise sample like
  // the others, so timing does not tell them apart. Errors: randomness
  // failure.
  absl::StatusOr<Decision> Decide(int64_t distinct_accounts,
                                  RandomWords& rng) const;

  // tau, on the shifted count n - (k - 1) (Gaussian kind only).
  int64_t threshold() const { return threshold_; }
  double sigma2() const { return noise_.sigma2(); }
  // The delta actually achieved: L0 * P[Z >= tau - 1] (<= the grant); for
  // the optimal kind the granted delta.
  double delta() const { return delta_; }
  double rho() const { return noise_.rho(); }
  // Half-width of the ACCOUNTS interval (Gaussian kind).
  int64_t HalfWidth() const { return noise_.HalfWidth(); }
  // Whether Decide() fills Decision::accounts (the Gaussian kind does).
  bool provides_accounts() const { return keep_ == nullptr; }
  bool is_optimal() const { return keep_ != nullptr; }
  // What this selection costs the ledger (no basic bound: dp_epsilon is
  // infinite for the Gaussian kind, (epsilon, delta) for the optimal one).
  PrivacyCharge Charge() const;
  // Optimal kind: P[released] for a cohort of n accounts.
  double KeepProbability(int64_t n) const;

  // The smallest n released with probability >= `probability` in (0, 1):
  // the "reliably released" cohort size to document for a configuration.
  int64_t MinCohortSizeReleasedWith(double probability) const;
  int k() const { return k_; }
  // The half-width of the ACCOUNTS interval (Decision::accounts), the
  // same for every cohort: its predicted half-width (aggregations.h).
  int64_t AccountsHalfWidth() const { return noise_.HalfWidth(); }

 private:
  PartitionSelector(int k, GaussianMechanism noise, int64_t threshold,
                    double delta)
      : k_(k), noise_(noise), threshold_(threshold), delta_(delta) {}

  // The optimal kind's keep thresholds: released iff U < words[n'] for
  // n' < words.size(), always beyond; and its parameters.
  struct Keep {
    std::vector<uint64_t> words;
    double epsilon = 0;
    int max_cohorts = 1;
  };

  int k_;
  GaussianMechanism noise_;  // Gaussian kind (a placeholder otherwise)
  int64_t threshold_;
  double delta_;
  std::shared_ptr<const Keep> keep_;  // set for the optimal kind
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_PARTITION_SELECTION_H_
