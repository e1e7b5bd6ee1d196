#include "server/privacy/partition_selection.h"

#include <cmath>
#include <limits>

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

absl::StatusOr<PartitionSelector> PartitionSelector::CreateOptimal(
    int k, int max_cohorts_per_account, double epsilon, double delta) {
  const double delta1 = delta / std::max(max_cohorts_per_account, 1);
  if (k < 1 || max_cohorts_per_account < 1 || !(epsilon > 0) ||
      !std::isfinite(epsilon) || !(delta < 1) || !(delta1 >= 1e-15)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("PartitionSelector: need k >= 1, L0 >= 1, epsilon > 0, "
                        "1e-15 <= delta / L0, delta < 1; got %d, %d, %g, %g",
                        k, max_cohorts_per_account, epsilon, delta));
  }
  // A placeholder Gaussian: the optimal kind draws none.
  absl::StatusOr<GaussianMechanism> placeholder =
      GaussianMechanism::Create(1, 1, 0.5);
  if (!placeholder.ok()) return placeholder.status();
  auto keep = std::make_shared<Keep>();
  keep->epsilon = epsilon;
  keep->max_cohorts = max_cohorts_per_account;
  const long double e1 =
      static_cast<long double>(epsilon) / max_cohorts_per_account;
  const long double d1 = static_cast<long double>(delta1) * (1 - 1e-6L);
  const long double grow = std::exp(e1), shrink = std::exp(-e1);
  long double pi = 0;
  constexpr long double kTwo64 = 18446744073709551616.0L;
  // pi(0) = 0 is words[0]; stop once pi reaches 1 (always kept beyond).
  keep->words.push_back(0);
  while (true) {
    pi = std::min({grow * pi + d1, 1 - shrink * (1 - pi - d1), 1.0L});
    if (pi >= 1) break;
    keep->words.push_back(static_cast<uint64_t>(std::floor(pi * kTwo64)));
    if (keep->words.size() > (1u << 24)) {
      return absl::InvalidArgumentError(
          "PartitionSelector: epsilon too small for the optimal selection");
    }
  }
  PartitionSelector selector(k, *placeholder, 0, delta);
  selector.keep_ = std::move(keep);
  return selector;
}

double PartitionSelector::KeepProbability(int64_t n) const {
  if (n < k_) return 0;
  if (keep_ == nullptr) {
    // P[n' + Z >= tau] = P[Z >= m], m = tau - n'; by symmetry
    // 1 - P[Z >= 1 - m] when m <= 0.
    const int64_t m = threshold_ - (n - (k_ - 1));
    return m >= 1 ? DiscreteGaussianUpperTail(sigma2(), m)
                  : 1 - DiscreteGaussianUpperTail(sigma2(), 1 - m);
  }
  const uint64_t shifted = static_cast<uint64_t>(n - (k_ - 1));
  if (shifted >= keep_->words.size()) return 1;
  return std::ldexp(static_cast<double>(keep_->words[shifted]), -64);
}

PrivacyCharge PartitionSelector::Charge() const {
  if (keep_ == nullptr) return PrivacyCharge::FromZcdp(rho(), delta_);
  const int l0 = keep_->max_cohorts;
  const double delta1 = delta_ / l0;
  const double eps1 = RoundSpend(keep_->epsilon / l0 - std::log1p(-delta1));
  PrivacyCharge charge;
  const RdpCurve one = PureDpCurve(eps1);
  for (int i = 0; i < kRdpOrderCount; ++i)
    charge.rdp[i] = RoundSpend(l0 * one[i]);
  charge.delta = delta_;
  charge.dp_epsilon = keep_->epsilon;
  charge.dp_delta = delta_;
  return charge;
}

absl::StatusOr<PartitionSelector::Decision> PartitionSelector::Decide(
    int64_t distinct_accounts, RandomWords& rng) const {
  Decision decision;
  if (keep_ != nullptr) {
    // One word per cohort, also below k (drawn and discarded).
    uint64_t u;
    if (!rng.Next(&u)) return rng.status();
    if (distinct_accounts < k_) return decision;
    const uint64_t shifted =
        static_cast<uint64_t>(distinct_accounts - (k_ - 1));
    decision.released =
        shifted >= keep_->words.size() || u < keep_->words[shifted];
    return decision;
  }
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
  if (keep_ != nullptr) {
    int64_t n = k_;
    while (KeepProbability(n) < probability) ++n;
    return n;
  }
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
