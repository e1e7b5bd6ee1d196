#include "server/privacy/quantile_tree.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace cohortd::privacy {
namespace {

// How the release reads the prefix of the first p leaves (p < leaves) for
// quantile q: bit l of `minus` set = level l uses "parent minus right
// siblings" instead of "left siblings"; v = the variance proxy of G~(p)'s
// noise in units of sigma^2 (the sum of the squared node coefficients).
struct Decomposition {
  double v = 0;
  uint32_t minus = 0;
};

// The digits of p: d[l] = the position (0 .. b-1) of the node containing
// leaf p among its siblings at level l = 1 .. D.
void Digits(const QuantileLeafGrid& grid, int64_t p, int64_t* d) {
  for (int l = grid.depth; l >= 1; --l) {
    d[l] = p % grid.branching;
    p /= grid.branching;
  }
}

// The minimum-variance choice, per level, between the two ways to count
// the mass between the start of the level-(l-1) node containing leaf p
// and the start of the level-l node containing it (Qardaji, Yang & Li
// 2013, Sec. 4: a b-ary prefix needs at most ~b/2 nodes per level this
// way instead of b - 1):
//   left  (m_l = 0): the d_l left siblings, each +1;
//   minus (m_l = 1): the parent (level l-1) +1, and the b - d_l children
//                    from position d_l on, each -1.
// The parent's +1 cancels the -1 it gets when level l-1 also uses the
// minus form, so the coefficients of level l's nodes are
//   m_l = 0: d_l nodes +1, and node d_l itself m_{l+1};
//   m_l = 1: b - 1 - d_l nodes -1, and node d_l itself m_{l+1} - 1,
// i.e. a cost (sum of squares) of d_l + m_{l+1} or
// b - 1 - d_l + 1 - m_{l+1}. Level 1 has no parent: G~ = F~ - q N~ with
// N~ the sum of the b top nodes gives coefficients 1 - q (left of d_1),
// m_2 - q (node d_1) and -q (right of it). A two-state dynamic program over
// the levels finds the minimum. It depends only on (p, q): public.
Decomposition Decompose(const QuantileLeafGrid& grid, int64_t p, double q) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  const int depth = grid.depth;
  const int64_t b = grid.branching;
  int64_t d[17];
  Digits(grid, p, d);
  // h[m] = the least cost of levels l .. D given m_l = m; next[l][m] the
  // m_{l+1} achieving it.
  const int forms = grid.min_variance_prefixes ? 2 : 1;
  double h[2] = {0, kInf};  // level D + 1: m = 0 only
  uint8_t next[17][2] = {};
  for (int l = depth; l >= 2; --l) {
    double nh[2] = {kInf, kInf};
    for (int m = 0; m < forms; ++m) {
      for (int m1 = 0; m1 < forms; ++m1) {
        const double cost = m == 0 ? static_cast<double>(d[l] + m1)
                                   : static_cast<double>(b - 1 - d[l] + 1 - m1);
        if (cost + h[m1] < nh[m]) {
          nh[m] = cost + h[m1];
          next[l][m] = static_cast<uint8_t>(m1);
        }
      }
    }
    h[0] = nh[0];
    h[1] = nh[1];
  }
  Decomposition best;
  best.v = kInf;
  for (int m2 = 0; m2 < (depth >= 2 ? forms : 1); ++m2) {
    const double top = d[1] * (1 - q) * (1 - q) +
                       static_cast<double>(b - 1 - d[1]) * q * q +
                       (m2 - q) * (m2 - q);
    if (top + h[m2] < best.v) {
      best.v = top + h[m2];
      best.minus = 0;
      int m = m2;
      for (int l = 2; l <= depth; ++l) {
        if (m == 1) best.minus |= uint32_t{1} << l;
        m = next[l][m];
      }
    }
  }
  return best;
}

}  // namespace

// The tree of one release. Levels 1..D; node i of level l covers leaves
// [i s, (i + 1) s) with s = b^(D - l). Its true count comes from the
// cumulative leaf counts in O(1); its noisy count is drawn on first use
// and memoised, so every read of a node sees the same value.
class QuantileTree::Noisy {
 public:
  Noisy(const QuantileTree& tree, absl::Span<const int64_t> leaf_counts,
        RandomWords& rng)
      : tree_(tree), grid_(tree.grid_), rng_(rng) {
    cumulative_.resize(leaf_counts.size() + 1);
    cumulative_[0] = 0;
    for (size_t j = 0; j < leaf_counts.size(); ++j) {
      cumulative_[j + 1] = cumulative_[j] + leaf_counts[j];
    }
    int64_t total = 0, width = 1;
    span_.assign(grid_.depth + 1, 0);
    offset_.assign(grid_.depth + 1, 0);
    for (int l = grid_.depth; l >= 1; --l) {
      span_[l] = width;
      width *= grid_.branching;
    }
    for (int64_t l = 1, n = grid_.branching; l <= grid_.depth;
         ++l, n *= grid_.branching) {
      offset_[l] = total;
      total += n;
    }
    drawn_.reserve(256);
  }

  // Noisy count of node `i` at level `l`, or false on randomness failure.
  bool Node(int l, int64_t i, int64_t* out) {
    auto [it, inserted] = drawn_.try_emplace(offset_[l] + i, 0);
    if (inserted) {
      const int64_t s = span_[l];
      const int64_t truth = cumulative_[(i + 1) * s] - cumulative_[i * s];
      absl::StatusOr<int64_t> z = tree_.noise_.Sample(rng_);
      if (!z.ok()) {
        drawn_.erase(it);
        return false;
      }
      it->second = truth + *z;
    }
    *out = it->second;
    return true;
  }

  // N~: the sum of the top-level nodes.
  bool Total(double* total) {
    if (!total_drawn_) {
      for (int64_t i = 0; i < grid_.branching; ++i) {
        int64_t c;
        if (!Node(1, i, &c)) return false;
        total_ += static_cast<double>(c);
      }
      total_drawn_ = true;
    }
    *total = total_;
    return true;
  }

  // G~(p) = F~(p) - q N~ for the prefix of the first p leaves
  // (0 <= p <= leaves), and its variance proxy in units of sigma^2.
  bool Prefix(int64_t p, double q, double* g, double* v) {
    double total;
    if (!Total(&total)) return false;
    if (p == 0) {
      *g = -q * total;
      *v = grid_.branching * q * q;
      return true;
    }
    if (p == grid_.leaves) {
      *g = (1 - q) * total;
      *v = grid_.branching * (1 - q) * (1 - q);
      return true;
    }
    const Decomposition dec = Decompose(grid_, p, q);
    int64_t d[17];
    Digits(grid_, p, d);
    double f = 0;
    int64_t parent = 0;  // the level-(l-1) node containing leaf p
    for (int l = 1; l <= grid_.depth; ++l) {
      const int64_t first = parent * grid_.branching;
      int64_t c;
      if (dec.minus & (uint32_t{1} << l)) {
        if (!Node(l - 1, parent, &c)) return false;
        f += static_cast<double>(c);
        for (int64_t i = d[l]; i < grid_.branching; ++i) {
          if (!Node(l, first + i, &c)) return false;
          f -= static_cast<double>(c);
        }
      } else {
        for (int64_t i = 0; i < d[l]; ++i) {
          if (!Node(l, first + i, &c)) return false;
          f += static_cast<double>(c);
        }
      }
      parent = first + d[l];
    }
    *g = f - q * total;
    *v = dec.v;
    return true;
  }

 private:
  const QuantileTree& tree_;
  const QuantileLeafGrid& grid_;
  RandomWords& rng_;
  std::vector<int64_t> cumulative_;  // cumulative_[j]: sessions in leaves < j
  std::vector<int64_t> span_;        // leaves per node, by level
  std::vector<int64_t> offset_;      // first node id of each level
  absl::flat_hash_map<int64_t, int64_t> drawn_;  // node id -> noisy count
  double total_ = 0;                             // N~
  bool total_drawn_ = false;
};

absl::StatusOr<QuantileLeafGrid> QuantileTree::Grid(
    const MeasureDomain& domain, const QuantileTreeShape& shape) {
  if (shape.branching < 2 || shape.branching > 256 || shape.max_depth < 1 ||
      shape.max_depth > 16) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "QuantileTree: branching %d not in [2, 256] or max_depth %d not in "
        "[1, 16]",
        shape.branching, shape.max_depth));
  }
  QuantileLeafGrid grid;
  grid.branching = shape.branching;
  grid.min_variance_prefixes = shape.min_variance_prefixes;
  grid.lower_fp = domain.lower_fp;
  grid.upper_fp = domain.upper_fp;
  const int64_t points = domain.upper_fp - domain.lower_fp + 1;
  grid.depth = 1;
  grid.leaves = shape.branching;
  while (grid.depth < shape.max_depth && grid.leaves < points) {
    ++grid.depth;
    grid.leaves *= shape.branching;
    if (grid.leaves > (int64_t{1} << 24)) {
      return absl::InvalidArgumentError("QuantileTree: more than 2^24 leaves");
    }
  }
  grid.leaf_width = (points + grid.leaves - 1) / grid.leaves;
  grid.inverse_width = 1.0 / static_cast<double>(grid.leaf_width);
  return grid;
}

absl::StatusOr<QuantileTree> QuantileTree::Create(
    const ContributionBounds& bounds, const MeasureDomain& domain,
    std::vector<double> quantiles, double rho, double confidence,
    const QuantileTreeShape& shape) {
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
  absl::StatusOr<QuantileLeafGrid> grid = Grid(domain, shape);
  if (!grid.ok()) return grid.status();
  absl::StatusOr<DiscreteGaussian> noise = DiscreteGaussian::CreateAtLeast(
      HistogramL2Squared(bounds, grid->depth) / (2 * rho));
  if (!noise.ok()) return noise.status();
  // Simultaneous over the L prefixes a bisection may visit (union bound;
  // see the header).
  const double leaves = static_cast<double>(grid->leaves);
  return QuantileTree(domain, std::move(quantiles), *noise, *grid,
                      2 * std::log(2 * leaves / (1 - confidence)));
}

double QuantileTree::PrefixVariance(int64_t p, double q) const {
  if (p >= grid_.leaves) return grid_.branching * (1 - q) * (1 - q);
  return Decompose(grid_, p, q).v;
}

absl::StatusOr<std::vector<QuantileEstimate>> QuantileTree::Release(
    absl::Span<const int64_t> values_fp, RandomWords& rng) const {
  std::vector<int64_t> counts(grid_.leaves, 0);
  for (int64_t v : values_fp) ++counts[grid_.LeafOf(v)];
  return ReleaseLeafCounts(counts, rng);
}

absl::StatusOr<std::vector<QuantileEstimate>> QuantileTree::ReleaseLeafCounts(
    absl::Span<const int64_t> leaf_counts, RandomWords& rng) const {
  if (static_cast<int64_t>(leaf_counts.size()) != grid_.leaves) {
    return absl::InvalidArgumentError(
        absl::StrFormat("QuantileTree: %d leaf counts for %d leaves",
                        leaf_counts.size(), grid_.leaves));
  }
  // Counts are sessions (< 2^32 each in practice); bound their sum so the
  // cumulative counts and node sums cannot overflow.
  int64_t sum = 0;
  for (int64_t c : leaf_counts) {
    if (c < 0 || c > (int64_t{1} << 40) - sum) {
      return absl::InvalidArgumentError(
          "QuantileTree: leaf count negative or above 2^40 in total");
    }
    sum += c;
  }
  Noisy tree(*this, leaf_counts, rng);
  const int64_t leaves = grid_.leaves;
  const double sigma = std::sqrt(noise_.sigma2());
  auto leaf_value = [&](double leaf_position) {
    // Leaf position in [0, leaves] -> fixed point value, clamped.
    const double fp = domain_.lower_fp + leaf_position * grid_.leaf_width;
    return domain_.ToValue(std::clamp(fp, static_cast<double>(domain_.lower_fp),
                                      static_cast<double>(domain_.upper_fp)));
  };

  std::vector<QuantileEstimate> out;
  out.reserve(quantiles_.size());
  for (double q : quantiles_) {
    // First leaf j (bisection over [0, leaves)) whose prefix through j
    // satisfies G~ >= factor * sigma sqrt(v log_term).
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
      double g_before, g_after, v;
      if (!tree.Prefix(value_leaf, q, &g_before, &v) ||
          !tree.Prefix(value_leaf + 1, q, &g_after, &v)) {
        return rng.status();
      }
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
