#include "server/privacy/quantile_tree.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"
#include "tests/privacy/stat_checks.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;
using ::cohortd::testing::kZ;
using ::cohortd::testing::StatusIs;

const ContributionBounds kBounds{4, 8};

// A skewed cohort on [0, 200]: many small values, a long tail (like
// actions_per_prompt).
std::vector<int64_t> SkewedValues(int n) {
  std::vector<int64_t> v;
  for (int i = 0; i < n; ++i) {
    const double u = (i + 0.5) / n;
    v.push_back(static_cast<int64_t>(std::min(200.0, -12 * std::log(1 - u))));
  }
  return v;
}

// The smallest value x with #(values <= x) >= q n (the interval's target).
double TrueQuantile(std::vector<int64_t> v, double q) {
  std::sort(v.begin(), v.end());
  const double rank = q * v.size();
  for (size_t i = 0; i < v.size(); ++i) {
    if (i + 1 >= rank) return static_cast<double>(v[i]);
  }
  return static_cast<double>(v.back());
}

TEST(QuantileTreeTest, DepthAndNoiseFollowTheDomain) {
  ASSERT_OK_AND_ASSIGN(MeasureDomain small, MeasureDomain::Create(0, 200, 1));
  ASSERT_OK_AND_ASSIGN(QuantileTree t,
                       QuantileTree::Create(kBounds, small, {0.5}, 0.5, 0.9));
  EXPECT_EQ(t.depth(), 3);  // 201 grid points <= 512 leaves
  // sigma^2 = L0 D Linf^2 / (2 rho) = 4 * 3 * 64.
  EXPECT_NEAR(t.sigma2(), 768, 1e-3);
  ASSERT_OK_AND_ASSIGN(MeasureDomain big, MeasureDomain::Create(0, 20000, 0.1));
  ASSERT_OK_AND_ASSIGN(QuantileTree b,
                       QuantileTree::Create(kBounds, big, {0.5}, 0.5, 0.9));
  EXPECT_EQ(b.depth(), 4);
}

TEST(QuantileTreeTest, IntervalsCoverTheTrueQuantiles) {
  ASSERT_OK_AND_ASSIGN(MeasureDomain domain, MeasureDomain::Create(0, 200, 1));
  const std::vector<double> qs = {0.05, 0.25, 0.5, 0.75, 0.95};
  ASSERT_OK_AND_ASSIGN(QuantileTree tree,
                       QuantileTree::Create(kBounds, domain, qs, 0.5, 0.9));
  const std::vector<int64_t> values = SkewedValues(3000);
  DeterministicRandom source(21);
  RandomWords rng(&source);
  constexpr int kTrials = 2000;
  std::vector<int> covered(qs.size(), 0);
  std::vector<double> width(qs.size(), 0), sum(qs.size(), 0),
      sum_sq(qs.size(), 0);
  for (int t = 0; t < kTrials; ++t) {
    ASSERT_OK_AND_ASSIGN(std::vector<QuantileEstimate> r,
                         tree.Release(values, rng));
    ASSERT_EQ(r.size(), qs.size());
    for (size_t i = 0; i < qs.size(); ++i) {
      const double truth = TrueQuantile(values, qs[i]);
      EXPECT_EQ(r[i].q, qs[i]);
      EXPECT_LE(r[i].estimate.ci_low, r[i].estimate.value);
      EXPECT_LE(r[i].estimate.value, r[i].estimate.ci_high);
      covered[i] +=
          r[i].estimate.ci_low <= truth && truth <= r[i].estimate.ci_high;
      width[i] += r[i].estimate.ci_high - r[i].estimate.ci_low;
      sum[i] += r[i].estimate.value;
      sum_sq[i] += r[i].estimate.value * r[i].estimate.value;
    }
  }
  for (size_t i = 0; i < qs.size(); ++i) {
    const double coverage = static_cast<double>(covered[i]) / kTrials;
    EXPECT_GE(coverage, 0.9 - kZ * std::sqrt(0.09 / kTrials)) << qs[i];
    // Informative for the box (quartiles): narrower than a quarter of the
    // domain. The tails may honestly reach the domain edge: above the 95th
    // percentile there are only 150 sessions, fewer than h ~ 300.
    if (qs[i] >= 0.25 && qs[i] <= 0.75) {
      EXPECT_LT(width[i] / kTrials, 50) << qs[i];
    }
  }
  // Noisy: the median varies between releases. Its rank noise has sd
  // about sigma sqrt(v) ~ 28 * 3.5 around a density of ~125 sessions per
  // unit, i.e. ~0.8 units, so its variance is far above 0.01 (a missing
  // noise would give 0).
  const double var = sum_sq[2] / kTrials - std::pow(sum[2] / kTrials, 2);
  EXPECT_GT(var, 0.01);
}

// Coverage on adversarial CDFs. The bound is simultaneous over every prefix
// (union bound, quantile_tree.h), so the claim is P[miss] <= alpha for
// every data set; a correct tree must miss at most T alpha plus kZ
// binomial standard deviations (a 1e-6 false alarm) in T trials, for each
// quantile. Shapes:
//   flat       uniform over the whole domain: G crosses zero slowly, the
//              noise decides over many leaves;
//   point      a point mass: G jumps from -qN to (1 - q)N in one leaf;
//   gap        two point masses at 20 and 180: for q = 1/2, G = 0 exactly
//              on every prefix between them, so every prefix the upper
//              search visits there is one noise draw from failing;
//   heavy      most mass at 0 and a Pareto tail to the domain's top.
struct Shape {
  const char* name;
  std::vector<int64_t> values;
};

std::vector<Shape> AdversarialShapes(int n) {
  std::vector<Shape> shapes = {
      {"flat", {}}, {"point", {}}, {"gap", {}}, {"heavy", {}}};
  for (int i = 0; i < n; ++i) {
    const double u = (i + 0.5) / n;
    shapes[0].values.push_back(static_cast<int64_t>(u * 201));
    shapes[1].values.push_back(77);
    shapes[2].values.push_back(i < n / 2 ? 20 : 180);
    shapes[3].values.push_back(
        static_cast<int64_t>(std::min(200.0, std::pow(1 - u, -1.5) - 1)));
  }
  return shapes;
}

TEST(QuantileTreeTest, IntervalsCoverOnAdversarialCdfs) {
  ASSERT_OK_AND_ASSIGN(MeasureDomain domain, MeasureDomain::Create(0, 200, 1));
  const std::vector<double> qs = {0.05, 0.25, 0.5, 0.75, 0.95};
  constexpr double kConfidence = 0.9;
  ASSERT_OK_AND_ASSIGN(
      QuantileTree tree,
      QuantileTree::Create(kBounds, domain, qs, 0.5, kConfidence));
  constexpr int kTrials = 1500;
  const double alpha = 1 - kConfidence;
  const double max_misses =
      kTrials * alpha + kZ * std::sqrt(kTrials * alpha * (1 - alpha));
  for (const Shape& shape : AdversarialShapes(4000)) {
    DeterministicRandom source(23);
    RandomWords rng(&source);
    std::vector<int> misses(qs.size(), 0);
    std::vector<double> width(qs.size(), 0);
    for (int t = 0; t < kTrials; ++t) {
      ASSERT_OK_AND_ASSIGN(std::vector<QuantileEstimate> r,
                           tree.Release(shape.values, rng));
      for (size_t i = 0; i < qs.size(); ++i) {
        const double truth = TrueQuantile(shape.values, qs[i]);
        misses[i] +=
            !(r[i].estimate.ci_low <= truth && truth <= r[i].estimate.ci_high);
        width[i] += r[i].estimate.ci_high - r[i].estimate.ci_low;
      }
    }
    for (size_t i = 0; i < qs.size(); ++i) {
      std::printf("%-6s q=%.2f misses %4d of %d, mean width %.1f\n", shape.name,
                  qs[i], misses[i], kTrials, width[i] / kTrials);
      EXPECT_LE(misses[i], max_misses) << shape.name << " q=" << qs[i];
    }
    // Informative where the data are dense: the median of a point mass or
    // of the flat CDF is located to within a fraction of the domain.
    if (std::string(shape.name) != "gap" &&
        std::string(shape.name) != "heavy") {
      EXPECT_LT(width[2] / kTrials, 40) << shape.name;
    }
  }
}

// Positive control for the coverage check above: leaf counts misplaced by
// a binning error (every session counted 8 leaves to the right, as an
// off-by-a-leaf-width bug in LeafOf would do) must make it fail, so the
// check has the power to catch what counting into leaves could break.
TEST(QuantileTreeTest, CoverageCheckCatchesMisbinnedLeafCounts) {
  ASSERT_OK_AND_ASSIGN(MeasureDomain domain, MeasureDomain::Create(0, 200, 1));
  const std::vector<double> qs = {0.25, 0.5, 0.75};
  constexpr double kConfidence = 0.9;
  ASSERT_OK_AND_ASSIGN(
      QuantileTree tree,
      QuantileTree::Create(kBounds, domain, qs, 0.5, kConfidence));
  const std::vector<int64_t> values(4000, 77);  // the point mass
  std::vector<int64_t> shifted(tree.grid().leaves, 0);
  shifted[tree.grid().LeafOf(77) + 8] = static_cast<int64_t>(values.size());
  constexpr int kTrials = 300;
  const double alpha = 1 - kConfidence;
  const double max_misses =
      kTrials * alpha + kZ * std::sqrt(kTrials * alpha * (1 - alpha));
  DeterministicRandom source(24);
  RandomWords rng(&source);
  for (size_t i = 0; i < qs.size(); ++i) {
    int misses = 0;
    for (int t = 0; t < kTrials; ++t) {
      ASSERT_OK_AND_ASSIGN(std::vector<QuantileEstimate> r,
                           tree.ReleaseLeafCounts(shifted, rng));
      misses += !(r[i].estimate.ci_low <= 77 && 77 <= r[i].estimate.ci_high);
    }
    EXPECT_GT(misses, max_misses) << "q=" << qs[i];
  }
}

TEST(QuantileTreeTest, ReleaseLeafCountsIsReleaseOfTheValues) {
  ASSERT_OK_AND_ASSIGN(MeasureDomain domain,
                       MeasureDomain::Create(0, 200, 0.01));
  ASSERT_OK_AND_ASSIGN(
      QuantileTree tree,
      QuantileTree::Create(kBounds, domain, {0.05, 0.5, 0.95}, 0.5, 0.95));
  const std::vector<int64_t> values = SkewedValues(5000);
  std::vector<int64_t> counts(tree.grid().leaves, 0);
  for (int64_t v : values) ++counts[tree.grid().LeafOf(v)];
  DeterministicRandom a(25), b(25);
  RandomWords rng_a(&a), rng_b(&b);
  ASSERT_OK_AND_ASSIGN(auto from_values, tree.Release(values, rng_a));
  ASSERT_OK_AND_ASSIGN(auto from_counts, tree.ReleaseLeafCounts(counts, rng_b));
  ASSERT_EQ(from_values.size(), from_counts.size());
  for (size_t i = 0; i < from_values.size(); ++i) {
    EXPECT_EQ(from_values[i].estimate.value, from_counts[i].estimate.value);
    EXPECT_EQ(from_values[i].estimate.ci_low, from_counts[i].estimate.ci_low);
    EXPECT_EQ(from_values[i].estimate.ci_high, from_counts[i].estimate.ci_high);
  }
  EXPECT_THAT(tree.ReleaseLeafCounts(absl::MakeSpan(counts).subspan(1), rng_a),
              StatusIs(absl::StatusCode::kInvalidArgument));
  counts[3] = -1;
  EXPECT_THAT(tree.ReleaseLeafCounts(counts, rng_a),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// LeafOf divides by multiplying with the reciprocal: it must equal the
// integer quotient everywhere, also for offsets near the domain's 2^41.
TEST(QuantileTreeTest, LeafOfIsTheExactQuotient) {
  for (double granularity : {1.0, 0.01, 0.001, 0.37}) {
    for (double upper : {200.0, 20000.0, 1e9}) {
      if (upper / granularity >= 0x1p40) continue;
      ASSERT_OK_AND_ASSIGN(MeasureDomain domain,
                           MeasureDomain::Create(-3, upper, granularity));
      ASSERT_OK_AND_ASSIGN(QuantileLeafGrid grid, QuantileTree::Grid(domain));
      auto check = [&](int64_t fp) {
        const int64_t clamped =
            std::clamp(fp, domain.lower_fp, domain.upper_fp);
        ASSERT_EQ(grid.LeafOf(fp),
                  (clamped - domain.lower_fp) / grid.leaf_width)
            << fp << " width " << grid.leaf_width;
        ASSERT_LT(grid.LeafOf(fp), grid.leaves);
      };
      for (int64_t fp = domain.lower_fp - 5; fp < domain.lower_fp + 50000;
           ++fp) {
        check(fp);
      }
      for (int64_t fp = domain.upper_fp - 50000; fp <= domain.upper_fp + 5;
           ++fp) {
        check(fp);
      }
      for (int64_t j = 0; j < grid.leaves; ++j) {  // every leaf edge
        check(domain.lower_fp + j * grid.leaf_width - 1);
        check(domain.lower_fp + j * grid.leaf_width);
      }
    }
  }
}

// The variance proxy v(p, q) the thresholds use is exactly the least sum of
// squared node coefficients over every way of mixing "left siblings" and
// "parent minus right siblings" per level, computed here independently by
// enumerating all 2^(D-1) mixes with explicit coefficients per node; and
// never above the left-siblings-only reading (so never wider intervals).
TEST(QuantileTreeTest, PrefixVarianceIsTheLeastOverAllDecompositions) {
  struct Case {
    int branching, depth;
  };
  for (const Case& c : {Case{2, 5}, Case{4, 3}, Case{8, 3}, Case{16, 2}}) {
    int64_t leaves = 1;
    for (int l = 0; l < c.depth; ++l) leaves *= c.branching;
    ASSERT_OK_AND_ASSIGN(MeasureDomain domain,
                         MeasureDomain::Create(0, leaves - 1, 1));
    for (double q : {0.0, 0.05, 0.5, 0.95, 1.0}) {
      ASSERT_OK_AND_ASSIGN(QuantileTree tree,
                           QuantileTree::Create(kBounds, domain, {q}, 0.5, 0.9,
                                                {c.branching, c.depth, true}));
      ASSERT_OK_AND_ASSIGN(QuantileTree left_only,
                           QuantileTree::Create(kBounds, domain, {q}, 0.5, 0.9,
                                                {c.branching, c.depth, false}));
      ASSERT_EQ(tree.depth(), c.depth);
      for (int64_t p = 1; p < leaves; ++p) {
        std::vector<int64_t> digit(c.depth + 1);
        for (int l = c.depth, x = static_cast<int>(p); l >= 1; --l) {
          digit[l] = x % c.branching;
          x /= c.branching;
        }
        double best = 1e300, left = 0;
        for (int mask = 0; mask < (1 << (c.depth - 1)); ++mask) {
          // Coefficients of G~(p) = F~(p) - q N~ per (level, node).
          std::map<std::pair<int, int64_t>, double> coef;
          for (int64_t i = 0; i < c.branching; ++i) coef[{1, i}] -= q;
          int64_t parent = 0;
          for (int l = 1; l <= c.depth; ++l) {
            const bool minus = l >= 2 && (mask >> (l - 2)) & 1;
            const int64_t first = parent * c.branching;
            if (minus) {
              coef[{l - 1, parent}] += 1;
              for (int64_t i = digit[l]; i < c.branching; ++i) {
                coef[{l, first + i}] -= 1;
              }
            } else {
              for (int64_t i = 0; i < digit[l]; ++i) coef[{l, first + i}] += 1;
            }
            parent = first + digit[l];
          }
          double v = 0;
          for (const auto& [node, x] : coef) v += x * x;
          best = std::min(best, v);
          if (mask == 0) left = v;
        }
        ASSERT_NEAR(tree.PrefixVariance(p, q), best, 1e-9)
            << c.branching << "^" << c.depth << " p=" << p << " q=" << q;
        ASSERT_NEAR(left_only.PrefixVariance(p, q), left, 1e-9);
      }
    }
  }
}

TEST(QuantileTreeTest, ValuesStayInTheDomainForEmptyAndClampedInput) {
  ASSERT_OK_AND_ASSIGN(MeasureDomain domain, MeasureDomain::Create(0, 1, 0.01));
  ASSERT_OK_AND_ASSIGN(
      QuantileTree tree,
      QuantileTree::Create(kBounds, domain, {0, 0.5, 1}, 0.1, 0.95));
  DeterministicRandom source(22);
  RandomWords rng(&source);
  for (const std::vector<int64_t>& values :
       {std::vector<int64_t>{}, std::vector<int64_t>{-50, 500, 70}}) {
    ASSERT_OK_AND_ASSIGN(auto r, tree.Release(values, rng));
    for (const QuantileEstimate& e : r) {
      EXPECT_GE(e.estimate.ci_low, 0);
      EXPECT_LE(e.estimate.ci_high, 1);
    }
  }
}

TEST(QuantileTreeTest, RejectsBadParameters) {
  ASSERT_OK_AND_ASSIGN(MeasureDomain domain, MeasureDomain::Create(0, 1, 0.01));
  EXPECT_THAT(QuantileTree::Create(kBounds, domain, {}, 0.1, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(QuantileTree::Create(kBounds, domain, {1.5}, 0.1, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(QuantileTree::Create(kBounds, domain, {0.5}, 0, 0.95),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(QuantileTree::Create(kBounds, domain, {0.5}, 0.1, 0.95, {1, 4}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(QuantileTree::Grid(domain, {8, 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(MeasureDomain huge, MeasureDomain::Create(0, 1e9, 1));
  EXPECT_THAT(QuantileTree::Grid(huge, {256, 16}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace cohortd::privacy
