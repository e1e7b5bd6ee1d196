#include "server/privacy/adjusted_regression.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "server/privacy/sampling_interval.h"

namespace cohortd::privacy {
namespace {

constexpr int kMaxControls = 8;

// Solves a x = b in place (a: n x n row-major) by Gaussian elimination
// with partial pivoting; false when a pivot is (numerically) zero.
bool Solve(std::vector<double> a, std::vector<double>* b, int n) {
  std::vector<double>& x = *b;
  for (int col = 0; col < n; ++col) {
    int pivot = col;
    for (int r = col + 1; r < n; ++r) {
      if (std::abs(a[r * n + col]) > std::abs(a[pivot * n + col])) pivot = r;
    }
    if (!(std::abs(a[pivot * n + col]) > 1e-9)) return false;
    if (pivot != col) {
      for (int c = 0; c < n; ++c) std::swap(a[col * n + c], a[pivot * n + c]);
      std::swap(x[col], x[pivot]);
    }
    for (int r = col + 1; r < n; ++r) {
      const double f = a[r * n + col] / a[col * n + col];
      if (f == 0) continue;
      for (int c = col; c < n; ++c) a[r * n + c] -= f * a[col * n + c];
      x[r] -= f * x[col];
    }
  }
  for (int r = n - 1; r >= 0; --r) {
    double s = x[r];
    for (int c = r + 1; c < n; ++c) s -= a[r * n + c] * x[c];
    x[r] = s / a[r * n + r];
  }
  return true;
}

}  // namespace

absl::StatusOr<AdjustedRegression> AdjustedRegression::Create(
    const ContributionBounds& bounds, std::vector<int> control_levels,
    int64_t max_abs_y, double rho, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  if (control_levels.empty() ||
      control_levels.size() > static_cast<size_t>(kMaxControls)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("adjusted regression: 1 to %d controls, got %d",
                        kMaxControls, control_levels.size()));
  }
  for (int l : control_levels) {
    if (l < 1) {
      return absl::InvalidArgumentError(
          "adjusted regression: every control needs >= 1 level");
    }
  }
  if (max_abs_y < 1) {
    return absl::InvalidArgumentError("adjusted regression: H must be >= 1");
  }
  const double l0 = bounds.max_cohorts_per_account;
  const double linf = bounds.max_sessions_per_cohort;
  const double d = static_cast<double>(control_levels.size());
  const double h = static_cast<double>(max_abs_y);
  // Sensitivities of the file comment.
  const double xx_l2_squared =
      l0 * linf * linf * (1 + d) + l0 * l0 * linf * linf * d * (d + 1) / 2;
  const double xy_l2_squared =
      l0 * linf * linf * h * h + l0 * l0 * linf * linf * d * h * h;
  absl::StatusOr<GaussianMechanism> xx =
      GaussianMechanism::Create(xx_l2_squared, rho / 2, confidence);
  if (!xx.ok()) return xx.status();
  absl::StatusOr<GaussianMechanism> xy =
      GaussianMechanism::Create(xy_l2_squared, rho / 2, confidence);
  if (!xy.ok()) return xy.status();
  return AdjustedRegression(std::move(control_levels), max_abs_y, *xx, *xy,
                            TwoSidedNormalQuantile(confidence));
}

double AdjustedRegression::sigma_xx() const {
  return std::sqrt(xx_noise_.sigma2());
}
double AdjustedRegression::sigma_xy() const {
  return std::sqrt(xy_noise_.sigma2());
}

absl::StatusOr<std::vector<Estimate>> AdjustedRegression::Release(
    int cohorts, absl::Span<const int32_t> cohort,
    absl::Span<const int32_t> levels, absl::Span<const int64_t> y,
    RandomWords& rng) const {
  const int d = static_cast<int>(control_levels_.size());
  if (cohorts < 1 || cohort.size() != y.size() ||
      levels.size() != cohort.size() * static_cast<size_t>(d)) {
    return absl::InvalidArgumentError(
        "adjusted regression: one cohort, D levels and one y per row");
  }
  // Full one-hot columns: cohorts first, then each control's levels.
  std::vector<int> offset(d + 1, cohorts);
  for (int j = 0; j < d; ++j) offset[j + 1] = offset[j] + control_levels_[j];
  const int p = offset[d];
  // Exact statistics (upper triangle of X'X, X'y), integers.
  std::vector<int64_t> xx(static_cast<size_t>(p) * p, 0);
  std::vector<__int128> xy(p, 0);
  std::vector<int> cols(d + 1);
  for (size_t r = 0; r < cohort.size(); ++r) {
    if (cohort[r] < 0 || cohort[r] >= cohorts) {
      return absl::InvalidArgumentError("adjusted regression: bad cohort");
    }
    cols[0] = cohort[r];
    for (int j = 0; j < d; ++j) {
      const int32_t l = levels[r * d + j];
      if (l < 0 || l >= control_levels_[j]) {
        return absl::InvalidArgumentError("adjusted regression: bad level");
      }
      cols[j + 1] = offset[j] + l;
    }
    const int64_t v = std::clamp(y[r], -max_abs_y_, max_abs_y_);
    for (int a = 0; a <= d; ++a) {
      xy[cols[a]] += v;
      for (int b = 0; b <= d; ++b) {
        const int i = std::min(cols[a], cols[b]),
                  k = std::max(cols[a], cols[b]);
        if (a <= b) xx[static_cast<size_t>(i) * p + k] += 1;
      }
    }
  }
  // Noise on every unique entry (data-independent set: all i <= k).
  std::vector<double> nxx(static_cast<size_t>(p) * p, 0), nxy(p, 0);
  for (int i = 0; i < p; ++i) {
    for (int k = i; k < p; ++k) {
      absl::StatusOr<int64_t> v =
          xx_noise_.AddNoise(xx[static_cast<size_t>(i) * p + k], rng);
      if (!v.ok()) return v.status();
      nxx[static_cast<size_t>(i) * p + k] = static_cast<double>(*v);
      nxx[static_cast<size_t>(k) * p + i] = static_cast<double>(*v);
    }
    absl::StatusOr<__int128> v = xy_noise_.AddNoiseWide(xy[i], rng);
    if (!v.ok()) return v.status();
    nxy[i] = static_cast<double>(*v);
  }

  // Post-processing: reference and pooled levels, the overall mix.
  const double sxx = sigma_xx(), sxy = sigma_xy();
  std::vector<int> active;  // full columns kept in the reduced system
  for (int c = 0; c < cohorts; ++c) active.push_back(c);
  std::vector<double> weight(p, 0);
  for (int j = 0; j < d; ++j) {
    int ref = offset[j];
    double total = 0;
    for (int c = offset[j]; c < offset[j + 1]; ++c) {
      const double n = std::max(nxx[static_cast<size_t>(c) * p + c], 0.0);
      total += n;
      if (n > nxx[static_cast<size_t>(ref) * p + ref]) ref = c;
    }
    for (int c = offset[j]; c < offset[j + 1]; ++c) {
      const double n = std::max(nxx[static_cast<size_t>(c) * p + c], 0.0);
      weight[c] = total > 0 ? n / total : 0;
      if (c != ref && n >= kPoolSigmas * sxx) active.push_back(c);
    }
  }
  const int n = static_cast<int>(active.size());
  std::vector<double> a(static_cast<size_t>(n) * n), b(n);
  for (int i = 0; i < n; ++i) {
    b[i] = nxy[active[i]];
    for (int k = 0; k < n; ++k) {
      a[static_cast<size_t>(i) * n + k] =
          nxx[static_cast<size_t>(active[i]) * p + active[k]];
    }
  }
  std::vector<double> theta = b;
  if (!Solve(a, &theta, n)) return std::vector<Estimate>();

  std::vector<Estimate> out(cohorts);
  const double hmax = static_cast<double>(max_abs_y_);
  for (int c = 0; c < cohorts; ++c) {
    // g: the cohort's intercept plus the mix of every active level.
    std::vector<double> g(n, 0);
    g[c] = 1;
    for (int i = cohorts; i < n; ++i) g[i] = weight[active[i]];
    double value = 0;
    for (int i = 0; i < n; ++i) value += g[i] * theta[i];
    std::vector<double> u = g;  // A symmetric: u = A^-1 g
    if (!Solve(a, &u, n)) return std::vector<Estimate>();
    double var = 0;
    for (int i = 0; i < n; ++i) {
      var += sxy * sxy * u[i] * u[i];
      var += sxx * sxx * (u[i] * theta[i]) * (u[i] * theta[i]);
      for (int k = i + 1; k < n; ++k) {
        const double coef = u[i] * theta[k] + u[k] * theta[i];
        var += sxx * sxx * coef * coef;
      }
    }
    const double half = z_ * std::sqrt(var);
    out[c].value = std::clamp(value, -hmax, hmax);
    out[c].ci_low = std::clamp(value - half, -hmax, hmax);
    out[c].ci_high = std::clamp(value + half, -hmax, hmax);
  }
  return out;
}

}  // namespace cohortd::privacy
