#include "server/privacy/ratio_interval.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "server/privacy/gaussian_mechanism.h"

namespace cohortd::privacy {
namespace {

// Cells of the threshold grid: within a cell the threshold is taken at the
// cell's largest coefficients, which widens a rate's interval by < 0.5%.
constexpr int kCells = 256;
// Relative margin on computed tail probabilities (they are used as upper
// bounds; libm's exp and erfc are accurate to a few ulps).
constexpr double kTailMargin = 1 + 1e-9;
constexpr double kMaxParameter = 4.611686018427388e18;  // 2^62

// Smallest z >= 0 with tail(z) <= alpha, tail non-increasing, to a
// relative 1e-12 (rounded up: the returned z satisfies the bound).
template <typename Tail>
double SolveTail(const Tail& tail, double scale, double alpha) {
  double low = 0, high = std::max(scale, 1e-300);
  while (tail(high) > alpha) {
    low = high;
    high *= 2;
  }
  for (int i = 0; i < 200 && high - low > 1e-12 * high; ++i) {
    const double mid = low + (high - low) / 2;
    if (tail(mid) <= alpha) {
      high = mid;
    } else {
      low = mid;
    }
  }
  return high;
}

// P[|a C_x + b C_y| > z] (an upper bound) for a, b > 0 and x, y of the
// same kind; see the file comment for the formulas.
double ContinuousCombinationTail(double a, const NoiseLaw& x, double b,
                                 const NoiseLaw& y, double z) {
  if (z <= 0) return 1;
  if (x.kind() == NoiseLaw::Kind::kDiscreteGaussian) {
    const double s2 = a * a * x.parameter() + b * b * y.parameter();
    return std::min(1.0, std::erfc(z / std::sqrt(2 * s2)) * kTailMargin);
  }
  const double s1 = a * x.parameter(), s2 = b * y.parameter();
  const double smax = std::max(s1, s2), smin = std::min(s1, s2);
  double tail;
  if (smax - smin <= 1e-3 * smax) {
    // Both scales raised to smax: the tail only grows (each Laplace term
    // is stochastically increasing in its scale, and the sum of
    // independent symmetric unimodal terms too).
    tail = std::exp(-z / smax) * (2 + z / smax) / 2;
  } else {
    tail = (smax * smax * std::exp(-z / smax) -
            smin * smin * std::exp(-z / smin)) /
           (smax * smax - smin * smin);
  }
  return std::min(1.0, tail * kTailMargin);
}

// CombinationHalfWidth with the box's per-noise half-widths precomputed.
double CombinationHalfWidthWithBox(double a, const NoiseLaw& x, int64_t box_x,
                                   double b, const NoiseLaw& y, int64_t box_y,
                                   double alpha) {
  if (a == 0 && b == 0) return 0;
  if (b == 0) return a * static_cast<double>(x.HalfWidth(alpha));
  if (a == 0) return b * static_cast<double>(y.HalfWidth(alpha));
  const double box =
      a * static_cast<double>(box_x) + b * static_cast<double>(box_y);
  // The continuous bound needs one family, and sigma >= 1 for the
  // Gaussian (the lemma's lower side).
  if (x.kind() != y.kind()) return box;
  if (x.kind() == NoiseLaw::Kind::kDiscreteGaussian &&
      std::min(x.parameter(), y.parameter()) < 1) {
    return box;
  }
  const double scale = std::sqrt(a * a * x.Variance() + b * b * y.Variance());
  const double z = SolveTail(
      [&](double t) { return ContinuousCombinationTail(a, x, b, y, t); }, scale,
      alpha);
  // The lemma's shift: a X + b Y <=_st a C_x + b C_y + a + b.
  return std::min(box, z + a + b);
}

// The per-noise level of the box: both within w.p. (1 - a1)^2 = 1 - alpha.
double BoxAlpha(double alpha) { return 1 - std::sqrt(1 - alpha); }

}  // namespace

absl::StatusOr<NoiseLaw> NoiseLaw::DiscreteGaussian(double sigma2) {
  if (!(sigma2 > 0) || !(sigma2 < kMaxParameter)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "NoiseLaw: discrete Gaussian needs 0 < sigma^2 < 2^62, got %g",
        sigma2));
  }
  return NoiseLaw(Kind::kDiscreteGaussian, sigma2);
}

absl::StatusOr<NoiseLaw> NoiseLaw::DiscreteLaplace(double scale) {
  if (!(scale > 0) || !(scale < kMaxParameter)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "NoiseLaw: discrete Laplace needs 0 < scale < 2^62, got %g", scale));
  }
  return NoiseLaw(Kind::kDiscreteLaplace, scale);
}

double NoiseLaw::TwoSidedTail(int64_t m) const {
  if (m <= 0) return 1;
  if (kind_ == Kind::kDiscreteGaussian) {
    return std::min(1.0, 2 * DiscreteGaussianUpperTail(parameter_, m));
  }
  // P[X >= m] = e^{-m/t} / (1 + e^{-1/t}) for m >= 1: the pmf is
  // (1 - p) / (1 + p) p^{|x|}, p = e^{-1/t}, summed geometrically.
  const double t = parameter_;
  return std::min(1.0, 2 * std::exp(-static_cast<double>(m) / t) /
                           (1 + std::exp(-1 / t)) * kTailMargin);
}

int64_t NoiseLaw::HalfWidth(double alpha) const {
  int64_t high = 1;
  while (TwoSidedTail(high + 1) > alpha) high *= 2;
  int64_t low = 0;
  while (low < high) {
    const int64_t mid = low + (high - low) / 2;
    if (TwoSidedTail(mid + 1) <= alpha) {
      high = mid;
    } else {
      low = mid + 1;
    }
  }
  return low;
}

double NoiseLaw::Variance() const {
  if (kind_ == Kind::kDiscreteGaussian) return parameter_;
  const double p = std::exp(-1 / parameter_);
  return 2 * p / ((1 - p) * (1 - p));
}

double NoiseLaw::ContinuousTwoSidedTail(double z) const {
  if (z <= 0) return 1;
  if (kind_ == Kind::kDiscreteGaussian) {
    return std::min(1.0,
                    std::erfc(z / std::sqrt(2 * parameter_)) * kTailMargin);
  }
  return std::min(1.0, std::exp(-z / parameter_) * kTailMargin);
}

double CombinationHalfWidth(double a, const NoiseLaw& x, double b,
                            const NoiseLaw& y, double alpha) {
  const double box_alpha = BoxAlpha(alpha);
  return CombinationHalfWidthWithBox(a, x, x.HalfWidth(box_alpha), b, y,
                                     y.HalfWidth(box_alpha), alpha);
}

absl::StatusOr<RatioInterval> RatioInterval::Create(const Pivot& pivot,
                                                    const NoiseLaw& p_noise,
                                                    const NoiseLaw& q_noise,
                                                    double confidence) {
  if (!(pivot.theta_low < pivot.theta_high) ||
      !std::isfinite(pivot.theta_low) || !std::isfinite(pivot.theta_high) ||
      !std::isfinite(pivot.u0) || !std::isfinite(pivot.u1) ||
      !std::isfinite(pivot.v0) || !std::isfinite(pivot.v1)) {
    return absl::InvalidArgumentError(
        "RatioInterval: need a finite pivot and theta_low < theta_high");
  }
  if (!(confidence > 0) || !(confidence < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "RatioInterval: confidence must be in (0, 1), got %g", confidence));
  }
  // The thresholds are a pure function of the public parameters and cost
  // a few ms: memoise, as GaussianMechanism does.
  using Key = std::tuple<double, double, double, double, double, double, int,
                         double, int, double, double>;
  static absl::Mutex mu(absl::kConstInit);
  static auto* cache ABSL_GUARDED_BY(mu) =
      new std::map<Key, std::shared_ptr<const std::vector<double>>>();
  const Key key{pivot.theta_low,
                pivot.theta_high,
                pivot.u0,
                pivot.u1,
                pivot.v0,
                pivot.v1,
                static_cast<int>(p_noise.kind()),
                p_noise.parameter(),
                static_cast<int>(q_noise.kind()),
                q_noise.parameter(),
                confidence};
  {
    absl::MutexLock lock(&mu);
    auto it = cache->find(key);
    if (it != cache->end()) return RatioInterval(pivot, it->second);
  }
  const double alpha = 1 - confidence;
  const int64_t box_p = p_noise.HalfWidth(BoxAlpha(alpha));
  const int64_t box_q = q_noise.HalfWidth(BoxAlpha(alpha));
  auto thresholds = std::make_shared<std::vector<double>>(kCells);
  const double step = (pivot.theta_high - pivot.theta_low) / kCells;
  for (int i = 0; i < kCells; ++i) {
    const double t0 = pivot.theta_low + i * step;
    const double t1 = i + 1 == kCells ? pivot.theta_high : t0 + step;
    // |affine| is convex: its maximum over the cell is at an end.
    const double a = std::max(std::abs(pivot.u0 + pivot.u1 * t0),
                              std::abs(pivot.u0 + pivot.u1 * t1));
    const double b = std::max(std::abs(pivot.v0 + pivot.v1 * t0),
                              std::abs(pivot.v0 + pivot.v1 * t1));
    (*thresholds)[i] = CombinationHalfWidthWithBox(a, p_noise, box_p, b,
                                                   q_noise, box_q, alpha);
  }
  {
    absl::MutexLock lock(&mu);
    // Bounded: parameter sets come from configs and requests.
    if (cache->size() >= 1024) cache->clear();
    cache->emplace(key, thresholds);
  }
  return RatioInterval(pivot, std::move(thresholds));
}

absl::StatusOr<RatioInterval> RatioInterval::ForRate(
    const NoiseLaw& matching, const NoiseLaw& non_matching, double confidence) {
  // (1 - r) a - r b = 0 at r = a / (a + b).
  Pivot pivot;
  pivot.theta_low = 0;
  pivot.theta_high = 1;
  pivot.u0 = 1;
  pivot.u1 = -1;
  pivot.v0 = 0;
  pivot.v1 = 1;
  return Create(pivot, matching, non_matching, confidence);
}

absl::StatusOr<RatioInterval> RatioInterval::ForMean(
    const NoiseLaw& centred_sum, const NoiseLaw& count, double width,
    double confidence) {
  if (!(width > 0) || !std::isfinite(width)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "RatioInterval: mean width must be > 0, got %g", width));
  }
  // S - theta n = 0 at theta = S / n.
  Pivot pivot;
  pivot.theta_low = -width;
  pivot.theta_high = width;
  pivot.u0 = 1;
  pivot.u1 = 0;
  pivot.v0 = 0;
  pivot.v1 = 1;
  return Create(pivot, centred_sum, count, confidence);
}

ParameterInterval RatioInterval::Compute(double p_noisy, double q_noisy,
                                         double estimate) const {
  const double lo = pivot_.theta_low, hi = pivot_.theta_high;
  const double slack = 1e-12 * (hi - lo);
  estimate = std::clamp(estimate, lo, hi);
  // T(theta) = c0 + c1 theta.
  const double c0 = pivot_.u0 * p_noisy - pivot_.v0 * q_noisy;
  const double c1 = pivot_.u1 * p_noisy - pivot_.v1 * q_noisy;
  const std::vector<double>& q = *thresholds_;
  const double step = (hi - lo) / kCells;
  // The accepted part of cell i, if any.
  auto piece = [&](int i, double* from, double* to) {
    const double t0 = lo + i * step;
    const double t1 = i + 1 == kCells ? hi : t0 + step;
    if (c1 == 0) {
      if (std::abs(c0) > q[i]) return false;
      *from = t0;
      *to = t1;
      return true;
    }
    double e1 = (-q[i] - c0) / c1, e2 = (q[i] - c0) / c1;
    if (e1 > e2) std::swap(e1, e2);
    e1 -= slack + 1e-12 * std::abs(e1);
    e2 += slack + 1e-12 * std::abs(e2);
    *from = std::max(t0, e1);
    *to = std::min(t1, e2);
    return *from <= *to;
  };
  // Only cells meeting {|T| <= max_i q[i]} can accept: scan from there.
  int begin = 0, end = kCells - 1;
  if (c1 != 0) {
    const double qmax = max_threshold_;
    double j1 = (-qmax - c0) / c1, j2 = (qmax - c0) / c1;
    if (j1 > j2) std::swap(j1, j2);
    const double cell1 = std::floor((j1 - lo) / step) - 1;
    const double cell2 = std::floor((j2 - lo) / step) + 1;
    if (!(cell1 < kCells) || !(cell2 >= 0)) return {estimate, estimate};
    begin = static_cast<int>(std::max(cell1, 0.0));
    end = static_cast<int>(std::min(cell2, kCells - 1.0));
  }
  double low = 0, high = 0, from, to;
  int first = -1;
  for (int i = begin; i <= end; ++i) {
    if (piece(i, &from, &to)) {
      first = i;
      low = from;
      break;
    }
  }
  if (first < 0) return {estimate, estimate};
  for (int i = end; i >= first; --i) {
    if (piece(i, &from, &to)) {
      high = to;
      break;
    }
  }
  low = std::max(lo, std::min(low, estimate) - slack);
  high = std::min(hi, std::max(high, estimate) + slack);
  return {low, high};
}

}  // namespace cohortd::privacy
