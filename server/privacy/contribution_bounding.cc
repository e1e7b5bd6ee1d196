#include "server/privacy/contribution_bounding.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace cohortd::privacy {
namespace {

inline uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline void SipRound(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
  v0 += v1;
  v1 = Rotl(v1, 13);
  v1 ^= v0;
  v0 = Rotl(v0, 32);
  v2 += v3;
  v3 = Rotl(v3, 16);
  v3 ^= v2;
  v0 += v3;
  v3 = Rotl(v3, 21);
  v3 ^= v0;
  v2 += v1;
  v1 = Rotl(v1, 17);
  v1 ^= v2;
  v2 = Rotl(v2, 32);
}

uint64_t LoadLe64(const char* p) {
  uint64_t x = 0;
  for (int i = 7; i >= 0; --i) x = (x << 8) | static_cast<uint8_t>(p[i]);
  return x;
}

}  // namespace

uint64_t SipHash24(uint64_t k0, uint64_t k1, uint64_t a, uint64_t b) {
  uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
  uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
  uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
  uint64_t v3 = k1 ^ 0x7465646279746573ULL;
  for (uint64_t m : {a, b, static_cast<uint64_t>(16) << 56}) {
    v3 ^= m;
    SipRound(v0, v1, v2, v3);
    SipRound(v0, v1, v2, v3);
    v0 ^= m;
  }
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) SipRound(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

absl::Status ValidateBounds(const ContributionBounds& bounds) {
  constexpr int kMax = 1 << 20;
  if (bounds.max_cohorts_per_account < 1 ||
      bounds.max_cohorts_per_account > kMax ||
      bounds.max_sessions_per_cohort < 1 ||
      bounds.max_sessions_per_cohort > kMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "contribution bounds must be in [1, 2^20]: L0=%d Linf=%d",
        bounds.max_cohorts_per_account, bounds.max_sessions_per_cohort));
  }
  return absl::OkStatus();
}

absl::StatusOr<MeasureDomain> MeasureDomain::Create(double lower, double upper,
                                                    double granularity) {
  if (!(granularity > 0) || !(lower < upper) ||
      !(std::abs(lower / granularity) < 0x1p40) ||
      !(std::abs(upper / granularity) < 0x1p40)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "measure domain [%g, %g] step %g: need lower < upper, step > 0, "
        "|bound / step| < 2^40",
        lower, upper, granularity));
  }
  MeasureDomain d;
  d.granularity = granularity;
  d.lower_fp = static_cast<int64_t>(std::ceil(lower / granularity - 1e-9));
  d.upper_fp = static_cast<int64_t>(std::floor(upper / granularity + 1e-9));
  if (d.upper_fp <= d.lower_fp) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "measure domain [%g, %g] has fewer than 2 multiples of %g", lower,
        upper, granularity));
  }
  return d;
}

int64_t MeasureDomain::ToFixedPoint(double x) const {
  if (std::isnan(x)) return lower_fp;
  const double scaled = std::round(x / granularity);
  if (scaled <= static_cast<double>(lower_fp)) return lower_fp;
  if (scaled >= static_cast<double>(upper_fp)) return upper_fp;
  return static_cast<int64_t>(scaled);
}

int64_t MeasureDomain::MaxAbs() const {
  return std::max(std::abs(lower_fp), std::abs(upper_fp));
}

double AccountCountL2Squared(int max_cohorts_per_account) {
  return max_cohorts_per_account;
}

double SessionCountL2Squared(const ContributionBounds& b) {
  const double linf = b.max_sessions_per_cohort;
  return b.max_cohorts_per_account * linf * linf;
}

double SumL2Squared(const ContributionBounds& b, const MeasureDomain& d) {
  const double per_cohort =
      static_cast<double>(b.max_sessions_per_cohort) * d.MaxAbs();
  return b.max_cohorts_per_account * per_cohort * per_cohort;
}

double CenteredSumL2Squared(const ContributionBounds& b,
                            const MeasureDomain& d) {
  const double per_cohort = static_cast<double>(b.max_sessions_per_cohort) *
                            static_cast<double>(d.upper_fp - d.lower_fp);
  return b.max_cohorts_per_account * per_cohort * per_cohort;
}

double RatePairL2Squared(const ContributionBounds& b) {
  return SessionCountL2Squared(b);
}

double HistogramL2Squared(const ContributionBounds& b, int levels) {
  return levels * SessionCountL2Squared(b);
}

absl::StatusOr<ContributionBounder> ContributionBounder::Create(
    const ContributionBounds& bounds, absl::string_view key) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  if (key.size() != kKeyBytes) {
    return absl::InvalidArgumentError("bounder key must be 16 bytes");
  }
  return ContributionBounder(bounds, LoadLe64(key.data()),
                             LoadLe64(key.data() + 8));
}

void ContributionBounder::SelectLowest(uint64_t salt,
                                       absl::Span<const uint64_t> fingerprints,
                                       int limit,
                                       std::vector<uint32_t>* selected) const {
  selected->clear();
  const size_t n = fingerprints.size();
  if (n <= static_cast<size_t>(limit)) {
    // The common case (few sessions per account) needs no hashing.
    for (uint32_t i = 0; i < n; ++i) selected->push_back(i);
    return;
  }
  // Keep the `limit` smallest priorities with a bounded max-heap of
  // (priority, position) pairs; limit is small, so this is O(n log limit)
  // and uses a fixed stack buffer when limit <= 64.
  using Entry = std::pair<uint64_t, uint32_t>;
  Entry stack_heap[64];
  std::vector<Entry> heap_storage;
  Entry* heap = stack_heap;
  if (limit > 64) {
    heap_storage.resize(limit);
    heap = heap_storage.data();
  }
  int size = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const Entry e{SipHash24(k0_, k1_, fingerprints[i], salt), i};
    if (size < limit) {
      heap[size++] = e;
      std::push_heap(heap, heap + size);
    } else if (e < heap[0]) {
      std::pop_heap(heap, heap + size);
      heap[size - 1] = e;
      std::push_heap(heap, heap + size);
    }
  }
  for (int i = 0; i < size; ++i) selected->push_back(heap[i].second);
  std::sort(selected->begin(), selected->end());
}

void ContributionBounder::SelectCohorts(
    uint64_t account_fingerprint,
    absl::Span<const uint64_t> cohort_fingerprints,
    std::vector<uint32_t>* selected) const {
  SelectLowest(account_fingerprint, cohort_fingerprints,
               bounds_.max_cohorts_per_account, selected);
}

void ContributionBounder::SelectSessions(
    uint64_t cohort_fingerprint,
    absl::Span<const uint64_t> session_fingerprints,
    std::vector<uint32_t>* selected) const {
  SelectLowest(cohort_fingerprint, session_fingerprints,
               bounds_.max_sessions_per_cohort, selected);
}

}  // namespace cohortd::privacy
