// Account-level contribution bounding and the sensitivities that follow
// from it — the one place where both are defined.
//
// For one query each account contributes to at most L0 cohorts
// (max_cohorts_per_account) and at most Linf sessions per cohort
// (max_sessions_per_cohort); measures are clamped to public bounds and
// converted to fixed point. Which cohorts and sessions are kept is decided
// by a keyed hash (SipHash-2-4; Aumasson & Bernstein 2012) of stable
// fingerprints, so the same query on the same data keeps the same rows,
// and an account's selection depends only on its own rows and the key: a
// neighbouring dataset (one account added or removed) changes no other
// account's selection, which the sensitivities below rely on.
//
// Thread-safety: ContributionBounder is immutable after Create(); the
// scratch vectors passed in are the caller's (one per thread).
#ifndef COHORTD_SERVER_PRIVACY_CONTRIBUTION_BOUNDING_H_
#define COHORTD_SERVER_PRIVACY_CONTRIBUTION_BOUNDING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace cohortd::privacy {

struct ContributionBounds {
  int max_cohorts_per_account = 4;  // L0, >= 1
  int max_sessions_per_cohort = 8;  // Linf, >= 1
};

// OK iff both bounds are in [1, 2^20]; InvalidArgument otherwise.
absl::Status ValidateBounds(const ContributionBounds& bounds);

// A measure's public domain in fixed point: a value x is clamped to
// [lower, upper] and represented by the integer round(x / granularity),
// itself kept within [lower_fp, upper_fp].
struct MeasureDomain {
  int64_t lower_fp = 0;
  int64_t upper_fp = 0;
  double granularity = 1;

  // lower < upper, granularity > 0 and |bounds / granularity| < 2^40.
  // lower_fp = ceil(lower / g), upper_fp = floor(upper / g) (up to 1e-9
  // slack for decimal granularities such as 0.01). Errors:
  // InvalidArgument, also when fewer than 2 grid points remain.
  static absl::StatusOr<MeasureDomain> Create(double lower, double upper,
                                              double granularity);

  // Clamped fixed-point value of x; NaN maps to lower_fp.
  int64_t ToFixedPoint(double x) const;
  double ToValue(double fixed_point) const { return fixed_point * granularity; }
  // max(|lower_fp|, |upper_fp|): the largest contribution of one session
  // to a sum.
  int64_t MaxAbs() const;
};

// Per-account L2 sensitivity, squared, over all cohorts of one query, for
// each per-cohort statistic. An account touches <= L0 cohorts; within one
// cohort it changes the statistic (vector) by at most D in L2, so the
// whole release moves by at most sqrt(L0) * D.
//   distinct accounts            D = 1
//   session count                D = Linf
//   sum of fixed-point values    D = Linf * MaxAbs()
//   centred sum sum(2v - lo - hi) (for means)  D = Linf * (hi - lo)
//   (matching, non-matching) session counts (for rates): D = Linf, since
//       a^2 + b^2 <= (a + b)^2 <= Linf^2
//   histogram with `levels` levels (quantile tree): D = sqrt(levels) Linf,
//       each level being a count vector changing by <= Linf in L2.
double AccountCountL2Squared(int max_cohorts_per_account);
double SessionCountL2Squared(const ContributionBounds& bounds);
double SumL2Squared(const ContributionBounds& bounds,
                    const MeasureDomain& domain);
double CenteredSumL2Squared(const ContributionBounds& bounds,
                            const MeasureDomain& domain);
double RatePairL2Squared(const ContributionBounds& bounds);
double HistogramL2Squared(const ContributionBounds& bounds, int levels);

// Keeps at most L0 cohorts per account and Linf sessions per cohort.
class ContributionBounder {
 public:
  static constexpr size_t kKeyBytes = 16;

  // `key` must be exactly 16 secret bytes (e.g. HMAC of the canonical
  // request under the server secret, truncated). Errors: InvalidArgument.
  static absl::StatusOr<ContributionBounder> Create(
      const ContributionBounds& bounds, absl::string_view key);

  // Chooses the cohorts an account contributes to. `cohort_fingerprints`
  // are stable 64-bit fingerprints of the account's distinct cohorts (e.g.
  // a hash of the cohort key). Writes to `selected` the positions (into
  // `cohort_fingerprints`, ascending) of the kept ones: all when there are
  // at most L0, otherwise the L0 with the smallest
  // SipHash(key, cohort_fingerprint, account_fingerprint). `selected`'s
  // capacity is reused, so a caller keeping one vector per thread
  // allocates nothing per account.
  void SelectCohorts(uint64_t account_fingerprint,
                     absl::Span<const uint64_t> cohort_fingerprints,
                     std::vector<uint32_t>* selected) const;

  // Same for an account's sessions in one kept cohort, with limit Linf and
  // priority SipHash(key, session_fingerprint, cohort_fingerprint).
  void SelectSessions(uint64_t cohort_fingerprint,
                      absl::Span<const uint64_t> session_fingerprints,
                      std::vector<uint32_t>* selected) const;

  const ContributionBounds& bounds() const { return bounds_; }

 private:
  ContributionBounder(const ContributionBounds& bounds, uint64_t k0,
                      uint64_t k1)
      : bounds_(bounds), k0_(k0), k1_(k1) {}
  void SelectLowest(uint64_t salt, absl::Span<const uint64_t> fingerprints,
                    int limit, std::vector<uint32_t>* selected) const;

  ContributionBounds bounds_;
  uint64_t k0_;
  uint64_t k1_;
};

// SipHash-2-4 of the 16-byte message (a, b) as two little-endian words,
// under key (k0, k1). Exposed for tests against the reference vectors.
uint64_t SipHash24(uint64_t k0, uint64_t k1, uint64_t a, uint64_t b);

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_CONTRIBUTION_BOUNDING_H_
