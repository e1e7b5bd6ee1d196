// Quantiles of a measure per cohort, for box plots: a noisy hierarchical
// histogram ("quantile tree") over the measure's bounded fixed-point domain.
//
// Why this method: it is the one Google's differential-privacy library uses
// for its Quantiles aggregation (QuantileTree; after Qardaji, Yang & Li,
// "Understanding hierarchical methods for differentially private
// histograms", VLDB 2013, and Cormode et al.'s hierarchical quantiles).
// Its noise is added to integer counts, so it fits our exact discrete
// Gaussian; one release answers any number of quantiles at once (five for a
// box plot) for the cost of one metric; and it gives a noisy CDF, from
// which intervals follow.
//
// Tree: branching 8, depth D = the smallest with 8^D leaves reaching the
// domain's grid size, at most 4 (4096 leaves); each leaf covers w
// consecutive fixed-point values. Each session is counted once per level,
// so the per-account L2 sensitivity^2 is L0 * D * Linf^2
// (HistogramL2Squared) and every node gets N_Z(0, sigma^2) with
// sigma^2 = L0 D Linf^2 / (2 rho): the whole tree is rho-zCDP. Node noise
// is drawn lazily, only for nodes the answer reads; that has the law of
// noising every node and post-processing.
//
// Input: the cohort's sessions per leaf (ReleaseLeafCounts), not its
// values: node counts are differences of cumulative leaf counts, so a
// release costs O(leaves) plus the nodes read, whatever the cohort's size,
// and any backend that can count sessions per leaf (a GROUP BY on
// floor((value_fp - lower_fp) / leaf_width)) can feed it.
//
// Shape, chosen by measured interval width (bench/privacy/
// quantile_tree_bench --compare, docs/privacy.md): (8, <= 4) with the
// least-variance prefix reading is never wider than (8, <= 4) with left
// siblings only (the previous release) and 10-12% narrower on average,
// where Google's default (16, 4) is 40-60% wider here; coarser trees
// ((8, 3), (4, 5)) are 15-30% narrower at small budgets but up to 2x wider
// at larger ones (leaf resolution), so they were not taken.
//
// Estimate and interval for quantile q come from the noisy CDF: with F~(x)
// the noisy count of values <= x and N~ the noisy total (the 8 top
// nodes), G~(x) = F~(x) - q N~ is unbiased for G(x) = F(x) - q N, whose
// first zero crossing is the true quantile. F~ reads, per level, either
// the left siblings of the node containing x or its parent minus the
// right siblings (Qardaji, Yang & Li 2013 Sec. 4), whichever mix over the
// levels gives G~ the least variance (a data-independent choice per
// prefix and q: PrefixVariance); at most ~b/2 nodes per level instead of
// b - 1. The reading of each prefix is fixed by (p, q) before any noise,
// so the coverage argument below holds unchanged with its v(p).
// Using unclipped prefix sums avoids the upward bias that clipping noisy
// zero counts gives the top-down descent of Google's QuantileTree.
//   value: the first leaf edge where G~ >= 0 (bisection over leaves),
//          interpolated linearly inside that leaf;
//   interval: [first leaf edge where G~ >= -h(x), first where G~ >= h(x)]
//          (found by bisection) with
//              h(x) = sigma sqrt(2 v(x) ln(2 L / alpha)),
//          L = 8^D leaves and v(x) the exact variance proxy (in units of
//          sigma^2) of G~(x)'s noise E(x).
// Coverage, proven: the interval targets x*, the smallest grid value with
// F(x*) >= q N in the bounded data, at leaf resolution. The bisections
// stop at prefixes the noise selects, so a bound at one fixed prefix does
// not apply; instead we make the bound hold at every prefix at once.
// E(p) is a sum of independent discrete Gaussians with coefficients whose
// squares sum to v(p), so it is sigma sqrt(v(p))-sub-Gaussian (CKS20 Cor.
// 9: N_Z(0, sigma^2) is sigma-sub-Gaussian) and P[E(p) > h(p)] and
// P[E(p) < -h(p)] are each <= exp(-h^2 / (2 v sigma^2)) = alpha / (2 L).
// A union bound (Boole's inequality) over the two signs and the L
// prefixes p = 1..L that a bisection over the leaves can visit gives
//     P[|E(p)| <= h(p) for every p] >= 1 - alpha.
// On that event, G being non-decreasing: the upper search stops at a leaf
// j with G~(j + 1) >= h, so G(j + 1) >= 0 and x* lies at or before leaf
// j's right edge; the lower search stops at a leaf j whose predecessor
// prefix had G~(j) < -h, so G(j) < 0 and x* lies at or after leaf j's left
// edge (j = 0 is trivially so). Hence [ci_low, ci_high] contains x* with
// probability >= confidence, for every data set (no CDF shape is
// assumed). The price of simultaneity is the factor
// sqrt(ln(2 L / alpha) / ln(2 / alpha)) on h: 1.8 for L = 4096 at 95%.
//
// Thread-safety: immutable after Create().
#ifndef COHORTD_SERVER_PRIVACY_QUANTILE_TREE_H_
#define COHORTD_SERVER_PRIVACY_QUANTILE_TREE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/crypto/csprng.h"
#include "server/privacy/aggregations.h"
#include "server/privacy/contribution_bounding.h"
#include "server/privacy/samplers.h"

namespace cohortd::privacy {

struct QuantileEstimate {
  double q = 0;
  Estimate estimate;  // in measure units
};

// The tree's shape: public, data-independent. Depth D is the smallest with
// branching^D leaves reaching the domain's grid size, at most max_depth.
struct QuantileTreeShape {
  int branching = 8;
  int max_depth = 4;
  // Read each prefix with the least-variance mix of left siblings and
  // "parent minus right siblings" per level (the .cc); false: left
  // siblings only (Google's QuantileTree), kept to measure the gain.
  bool min_variance_prefixes = true;
};

// Which leaf each fixed-point value falls in: leaves of `leaf_width`
// consecutive grid values from the domain's lower end. Immutable.
struct QuantileLeafGrid {
  int branching = 8;
  int depth = 1;
  bool min_variance_prefixes = true;
  int64_t leaves = 8;      // branching^depth
  int64_t leaf_width = 1;  // fixed-point values per leaf
  int64_t lower_fp = 0;
  int64_t upper_fp = 0;
  double inverse_width = 1;  // 1 / leaf_width

  // The leaf of `value_fp`, clamped into the domain first. Exact integer
  // division by leaf_width, computed as a multiplication (a 64-bit divide
  // per session was a tenth of the box plot's scan): offsets are below
  // 2^41, so the double product is within 2^-11 of the quotient and one
  // correction step makes it exact.
  int64_t LeafOf(int64_t value_fp) const {
    const int64_t v = value_fp < lower_fp   ? lower_fp
                      : value_fp > upper_fp ? upper_fp
                                            : value_fp;
    const int64_t offset = v - lower_fp;
    int64_t leaf =
        static_cast<int64_t>(static_cast<double>(offset) * inverse_width);
    if (leaf * leaf_width > offset) {
      --leaf;
    } else if ((leaf + 1) * leaf_width <= offset) {
      ++leaf;
    }
    return leaf;
  }
};

class QuantileTree {
 public:
  // The leaf grid a tree of `shape` uses over `domain`: what a backend
  // counts sessions into for ReleaseLeafCounts(). Errors: InvalidArgument
  // for branching outside [2, 256] or max_depth outside [1, 16], or more
  // than 2^24 leaves.
  static absl::StatusOr<QuantileLeafGrid> Grid(
      const MeasureDomain& domain, const QuantileTreeShape& shape = {});

  // `quantiles`: each in [0, 1], at least one. Errors: InvalidArgument.
  static absl::StatusOr<QuantileTree> Create(
      const ContributionBounds& bounds, const MeasureDomain& domain,
      std::vector<double> quantiles, double rho, double confidence,
      const QuantileTreeShape& shape = {});

  // `leaf_counts[j]`: how many of the cohort's bounded sessions have a
  // value in leaf j of grid() (exactly grid().leaves entries, each >= 0).
  // Returns one estimate per requested quantile, in request order. The
  // work is O(leaves) plus the nodes read, independent of the session
  // count. Errors: InvalidArgument for a wrong size or a negative count;
  // randomness failure.
  absl::StatusOr<std::vector<QuantileEstimate>> ReleaseLeafCounts(
      absl::Span<const int64_t> leaf_counts, RandomWords& rng) const;

  // The same from the sessions' fixed-point values (any order; values
  // outside the domain are clamped): counts them into leaves first.
  absl::StatusOr<std::vector<QuantileEstimate>> Release(
      absl::Span<const int64_t> values_fp, RandomWords& rng) const;

  const QuantileLeafGrid& grid() const { return grid_; }
  int depth() const { return grid_.depth; }
  double sigma2() const { return noise_.sigma2(); }

  // The variance proxy v(p, q) of G~'s noise at the prefix of the first p
  // leaves (1 <= p <= leaves), in units of sigma^2, for the decomposition
  // the release uses (see the .cc). Exposed for tests and benchmarks.
  double PrefixVariance(int64_t p, double q) const;

 private:
  class Noisy;  // one release's lazily noised tree

  QuantileTree(MeasureDomain domain, std::vector<double> quantiles,
               DiscreteGaussian noise, QuantileLeafGrid grid, double log_term)
      : domain_(domain),
        quantiles_(std::move(quantiles)),
        noise_(noise),
        grid_(grid),
        log_term_(log_term) {}

  MeasureDomain domain_;
  std::vector<double> quantiles_;
  DiscreteGaussian noise_;
  QuantileLeafGrid grid_;
  double log_term_;  // 2 ln(2 L / alpha), L = leaves
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_QUANTILE_TREE_H_
