#include "server/privacy/quantile_tree.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace cohortd::privacy {
namespace {

int64_t Pow8(int e) { return int64_t{1} << (3 * e); }

// No node count reaches it: counts are <= 2^63 / 2 and noise < 2^62.
constexpr int64_t kNotDrawn = INT64_MIN;

}  // namespace

// The tree of one release. Levels 1..D; node i of level l covers leaves
// [i s, (i + 1) s) with s = 8^(D - l). Noisy counts are drawn on first use
// and memoised, so every read of a node sees the same value.
class QuantileTree::Noisy {
 public:
  Noisy(const QuantileTree& tree, std::vector<int64_t> sorted, RandomWords& rng)
      : tree_(tree), sorted_(std::move(sorted)), rng_(rng) {
    int64_t total = 0;
    for (int l = 1; l <= tree.depth_; ++l) {
      offset_.push_back(total);
      total += Pow8(l);
    }
    value_.assign(total, kNotDrawn);
  }

  // Noisy count of node `i` at level `l`, or false on randomness failure.
  bool Node(int l, int64_t i, int64_t* out) {
    int64_t& value = value_[offset_[l - 1] + i];
    if (value == kNotDrawn) {
      const int64_t span = Pow8(tree_.depth_ - l) * tree_.leaf_width_;
      const int64_t lo = tree_.domain_.lower_fp + i * span;
      const int64_t truth =
          std::lower_bound(sorted_.begin(), sorted_.end(), lo + span) -
          std::lower_bound(sorted_.begin(), sorted_.end(), lo);
      absl::StatusOr<int64_t> z = tree_.noise_.Sample(rng_);
      if (!z.ok()) return false;
      value = truth + *z;
    }
    *out = value;
    return true;
  }

  // G~ = F~(p) - q N~ for the prefix of the first p leaves, and its
  // variance proxy in units of sigma^2. The q-free parts are memoised per p:
  // all quantiles' bisections start at the same midpoints.
  bool Prefix(int64_t p, double q, double* g, double* v) {
    auto it = prefixes_.find(p);
    if (it == prefixes_.end()) {
      PrefixSum sum;
      if (!ComputePrefix(p, &sum)) return false;
      it = prefixes_.emplace(p, sum).first;
    }
    const PrefixSum& sum = it->second;
    // N~ is the sum of the 8 top-level nodes; those inside the prefix get
    // coefficient 1 - q, the others -q.
    *g = sum.noisy_count - q * total_;
    *v = sum.inner_nodes + sum.top_nodes * (1 - q) * (1 - q) +
         (kBranching - sum.top_nodes) * q * q;
    return true;
  }

 private:
  struct PrefixSum {
    double noisy_count = 0;   // F~(p): sum of the nodes covering the prefix
    int64_t inner_nodes = 0;  // how many of them are below the top level
    int64_t top_nodes = 0;    // how many are top-level nodes
  };

  bool ComputePrefix(int64_t p, PrefixSum* sum) {
    const int depth = tree_.depth_;
    if (!total_drawn_) {
      for (int64_t i = 0; i < kBranching; ++i) {
        int64_t c;
        if (!Node(1, i, &c)) return false;
        total_ += c;
      }
      total_drawn_ = true;
    }
    for (int l = 1; l <= depth; ++l) {
      const int64_t s = Pow8(depth - l);
      const int64_t hi = p / s;
      const int64_t lo = l == 1 ? 0 : (p / (s * kBranching)) * kBranching;
      for (int64_t i = lo; i < hi; ++i) {
        int64_t c;
        if (!Node(l, i, &c)) return false;
        sum->noisy_count += c;
        ++(l == 1 ? sum->top_nodes : sum->inner_nodes);
      }
    }
    return true;
  }

  const QuantileTree& tree_;
  std::vector<int64_t> sorted_;
  RandomWords& rng_;
  std::vector<int64_t> offset_;
  std::vector<int64_t> value_;  // kNotDrawn until first read
  absl::flat_hash_map<int64_t, PrefixSum> prefixes_;
  double total_ = 0;  // N~
  bool total_drawn_ = false;
};

absl::StatusOr<QuantileTree> QuantileTree::Create(
    const ContributionBounds& bounds, const MeasureDomain& domain,
    std::vector<double> quantiles, double rho, double confidence) {
  absl::Status status = ValidateBounds(bounds);
  if (!status.ok()) return status;
  if (quantiles.empty() || !(confidence > 0) || !(confidence < 1) ||
      !(rho > 0)) {
    return absl::InvalidArgumentError(
        "QuantileTree: need quantiles, rho > 0 and confidence in (0, 1)");
  }
  for (double q : quantiles) {
    if (!(q >= 0 && q <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("QuantileTree: quantile %g not in [0, 1]", q));
    }
  }
  const int64_t grid = domain.upper_fp - domain.lower_fp + 1;
  int depth = 1;
  while (depth < kMaxDepth && Pow8(depth) < grid) ++depth;
  const int64_t leaf_width = (grid + Pow8(depth) - 1) / Pow8(depth);
  absl::StatusOr<DiscreteGaussian> noise = DiscreteGaussian::CreateAtLeast(
      HistogramL2Squared(bounds, depth) / (2 * rho));
  if (!noise.ok()) return noise.status();
  // Simultaneous over the Pow8(depth) prefixes a bisection may visit
  // (union bound; see the header).
  const double leaves = static_cast<double>(Pow8(depth));
  return QuantileTree(domain, std::move(quantiles), *noise, depth, leaf_width,
                      2 * std::log(2 * leaves / (1 - confidence)));
}

absl::StatusOr<std::vector<QuantileEstimate>> QuantileTree::Release(
    absl::Span<const int64_t> values_fp, RandomWords& rng) const {
  std::vector<int64_t> sorted(values_fp.begin(), values_fp.end());
  for (int64_t& v : sorted) {
    v = std::clamp(v, domain_.lower_fp, domain_.upper_fp);
  }
  if (!std::is_sorted(sorted.begin(), sorted.end())) {
    std::sort(sorted.begin(), sorted.end());
  }
  Noisy tree(*this, std::move(sorted), rng);
  const int64_t leaves = Pow8(depth_);
  const double sigma = std::sqrt(noise_.sigma2());
  auto leaf_value = [&](double leaf_position) {
    // Leaf position in [0, leaves] -> fixed point value, clamped.
    const double fp = domain_.lower_fp + leaf_position * leaf_width_;
    return domain_.ToValue(std::clamp(fp, static_cast<double>(domain_.lower_fp),
                                      static_cast<double>(domain_.upper_fp)));
  };

  std::vector<QuantileEstimate> out;
  for (double q : quantiles_) {
    // First leaf j (bisection over [0, leaves)) whose prefix through j
    // satisfies G~ >= offset(v) = factor * sigma sqrt(v log_term).
    auto first_crossing = [&](double factor, int64_t* leaf) -> bool {
      int64_t lo = 0, hi = leaves;
      while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        double g, v;
        if (!tree.Prefix(mid + 1, q, &g, &v)) return false;
        if (g >= factor * sigma * std::sqrt(v * log_term_)) {
          hi = mid;
        } else {
          lo = mid + 1;
        }
      }
      *leaf = lo;
      return true;
    };
    int64_t value_leaf, upper_leaf, lower_leaf;
    // The same bisection midpoints for all three keep most nodes shared.
    if (!first_crossing(0, &value_leaf) || !first_crossing(1, &upper_leaf) ||
        !first_crossing(-1, &lower_leaf)) {
      return rng.status();
    }
    // Interpolate inside the crossing leaf between G~ before and after it.
    double position = static_cast<double>(value_leaf);
    if (value_leaf < leaves) {
      double g_before = 0, g_after, v;
      if (value_leaf > 0 && !tree.Prefix(value_leaf, q, &g_before, &v)) {
        return rng.status();
      }
      if (!tree.Prefix(value_leaf + 1, q, &g_after, &v)) return rng.status();
      if (value_leaf == 0) g_before = std::min(0.0, -q * g_after);
      if (g_after > g_before) {
        position += std::clamp(-g_before / (g_after - g_before), 0.0, 1.0);
      }
    }
    QuantileEstimate e;
    e.q = q;
    e.estimate.value = leaf_value(position);
    e.estimate.ci_low = std::min(e.estimate.value, leaf_value(lower_leaf));
    e.estimate.ci_high = std::max(e.estimate.value, leaf_value(upper_leaf + 1));
    out.push_back(e);
  }
  return out;
}

}  // namespace cohortd::privacy
