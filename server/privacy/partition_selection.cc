#include "server/privacy/partition_selection.h"

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "server/privacy/contribution_bounding.h"

namespace cohortd::privacy {

absl::StatusOr<PartitionSelector> PartitionSelector::Create(
    int k, int max_cohorts_per_account, double rho, double delta,
    double confidence) {
  if (k < 1 || max_cohorts_per_account < 1 || !(delta > 0) || !(delta < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "PartitionSelector: need k >= 1, L0 >= 1, 0 < delta < 1; got %d, "
        "%d, %g",
        k, max_cohorts_per_account, delta));
  }
  absl::StatusOr<GaussianMechanism> noise = GaussianMechanism::Create(
      AccountCountL2Squared(max_cohorts_per_account), rho, confidence);
  if (!noise.ok()) return noise.status();
  // Smallest tau >= 1 with L0 * P[Z >= tau - 1] <= delta; the tail is
  // monotone, so double then bisect.
  const double sigma2 = noise->sigma2();
  auto achieved = [&](int64_t tau) {
    return max_cohorts_per_account * DiscreteGaussianUpperTail(sigma2, tau - 1);
  };
  int64_t high = 2;
  while (achieved(high) > delta) high *= 2;
  int64_t low = 1;
  while (low < high) {
    const int64_t mid = low + (high - low) / 2;
    if (achieved(mid) <= delta) {
      high = mid;
    } else {
      low = mid + 1;
    }
  }
  return PartitionSelector(k, *noise, low, achieved(low));
}

absl::StatusOr<PartitionSelector::Decision> PartitionSelector::Decide(
    int64_t distinct_accounts, RandomWords& rng) const {
  Decision decision;
  // k-anonymity pre-threshold on the true count. A cohort below it still
  // draws its noise (discarded), so that the work done per cohort, and
  // hence the query's duration, does not depend on which side of k it is.
  const bool below_k = distinct_accounts < k_;
  const int64_t shifted = below_k ? 0 : distinct_accounts - (k_ - 1);
  absl::StatusOr<int64_t> noisy = noise_.AddNoise(shifted, rng);
  if (!noisy.ok()) return noisy.status();
  if (below_k || *noisy < threshold_) return decision;
  decision.released = true;
  const int64_t estimate = *noisy + (k_ - 1);
  const int64_t c = noise_.HalfWidth();
  decision.accounts = {static_cast<double>(estimate),
                       static_cast<double>(std::max<int64_t>(estimate - c, k_)),
                       static_cast<double>(estimate + c)};
  return decision;
}

int64_t PartitionSelector::MinCohortSizeReleasedWith(double probability) const {
  // Released iff Z >= tau - n', with n' = n - (k - 1); find the smallest n'
  // with P[Z >= tau - n'] >= probability, i.e. P[Z >= n' - tau + 1]
  // <= 1 - probability by symmetry (Z and -Z have the same law).
  int64_t shifted = threshold_;
  while (DiscreteGaussianUpperTail(sigma2(), shifted - threshold_ + 1) >
         1 - probability) {
    ++shifted;
  }
  return shifted + (k_ - 1);
}

}  // namespace cohortd::privacy
