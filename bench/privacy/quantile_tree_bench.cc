// The quantile tree on its own (issue 12 item 4): release time from leaf
// counts per shape, and, with --compare, the comparison of tree shapes and
// of Smith's exponential mechanism by interval width at equal privacy.
//
//   quantile_tree_bench                  Google Benchmark timings
//   quantile_tree_bench --compare [--trials N]
//
// --compare draws box-plot cohorts like README's Figure 3 (actions per
// prompt, lognormal(2.0, 0.8) on [0, 200] at 0.01, cohort sizes of the
// five expertise levels at 400k sessions, and two small cohorts) and
// prints, per shape, the mean 95% interval width and mean absolute error
// of each of the five box-plot quantiles, at cohortd's defaults (L0 = 4,
// Linf = 8) and the same rho for every method. Noise comes from the
// production CSPRNG.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"
#include "server/crypto/csprng.h"
#include "server/privacy/contribution_bounding.h"
#include "server/privacy/quantile_tree.h"

namespace cohortd::privacy {
namespace {

const ContributionBounds kBounds{4, 8};
const std::vector<double> kBoxPlot = {0.05, 0.25, 0.5, 0.75, 0.95};
constexpr double kConfidence = 0.95;

MeasureDomain ActionsPerPrompt() {
  return *MeasureDomain::Create(0, 200, 0.01);
}

// Inverse of the standard normal CDF (Acklam's rational approximation,
// relative error < 1.2e-9): deterministic data, no generator.
double InverseNormal(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                             -2.759285104469687e+02, 1.383577518672690e+02,
                             -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                             -1.556989798598866e+02, 6.680131188771972e+01,
                             -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                             -2.400758277161838e+00, -2.549671010322563e+00,
                             4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                             2.445134137142996e+00, 3.754408661907416e+00};
  if (p < 0.02425) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q +
            c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - 0.02425) return -InverseNormal(1 - p);
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) *
         q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

// n sessions at the lognormal's (i + 1/2)/n quantiles, in fixed point.
std::vector<int64_t> Cohort(int n, const MeasureDomain& domain) {
  std::vector<int64_t> v;
  v.reserve(n);
  for (int i = 0; i < n; ++i) {
    const double x = std::exp(2.0 + 0.8 * InverseNormal((i + 0.5) / n));
    v.push_back(domain.ToFixedPoint(x));
  }
  return v;
}

// The smallest value x with #(values <= x) >= q n, in measure units.
double TrueQuantile(const std::vector<int64_t>& sorted, double q,
                    const MeasureDomain& domain) {
  const double rank = q * sorted.size();
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i + 1 >= rank) return domain.ToValue(sorted[i]);
  }
  return domain.ToValue(sorted.back());
}

double Uniform(RandomWords& rng) {
  uint64_t w = 0;
  rng.Next(&w);
  return (static_cast<double>(w >> 11) + 0.5) * 0x1p-53;
}

// Smith (2011) / the exponential mechanism for one quantile over the grid:
// P[x] ~ exp(-eps |#{v < x} - q n| / (2 Linf)), eps per quantile and
// cohort. Floating point: for the comparison only, never a release.
double ExponentialQuantile(const std::vector<int64_t>& sorted, double q,
                           double eps, const MeasureDomain& domain,
                           RandomWords& rng) {
  const int64_t points = domain.upper_fp - domain.lower_fp + 1;
  std::vector<double> log_w(points);
  size_t below = 0;
  double max_log = -1e300;
  const double target = q * sorted.size();
  for (int64_t i = 0; i < points; ++i) {
    const int64_t x = domain.lower_fp + i;
    while (below < sorted.size() && sorted[below] < x) ++below;
    log_w[i] = -eps * std::abs(static_cast<double>(below) - target) /
               (2.0 * kBounds.max_sessions_per_cohort);
    max_log = std::max(max_log, log_w[i]);
  }
  double total = 0;
  for (double& w : log_w) total += (w = std::exp(w - max_log));
  double u = Uniform(rng) * total;
  for (int64_t i = 0; i < points; ++i) {
    if ((u -= log_w[i]) <= 0) return domain.ToValue(domain.lower_fp + i);
  }
  return domain.ToValue(domain.upper_fp);
}

struct Method {
  std::string name;
  QuantileTreeShape shape;
  bool exponential = false;
};

void Compare(int trials, double rho) {
  const MeasureDomain domain = ActionsPerPrompt();
  // Five expertise cohorts at 400k sessions (12/20/35/23/10 % of 97%,
  // before bounding), and two small cohorts.
  const std::vector<int> sizes = {46560, 77600, 135800, 89240,
                                  38800, 5000,  500};
  std::vector<Method> methods = {
      {"b=8  D<=4 left-only (before)", {8, 4, false}},
      {"b=2  D<=12", {2, 12, true}},
      {"b=4  D<=6", {4, 6, true}},
      {"b=8  D<=4", {8, 4, true}},
      {"b=16 D<=3", {16, 3, true}},
      {"b=64 D<=2", {64, 2, true}},
      {"b=16 D<=4 left-only (Google)", {16, 4, false}},
      {"b=16 D<=4", {16, 4, true}},
      {"b=4  D<=5", {4, 5, true}},
      {"b=8  D<=3", {8, 3, true}},
      {"b=32 D<=2", {32, 2, true}},
      {"Smith EM, eps split", {}, true},
  };
  RandomWords& rng = SecureRandomWords();
  // Per method, the width / the first method's width over the cells
  // (cohort, quantile) where the first is informative (narrower than
  // 90% of the domain).
  std::vector<double> log_ratio(methods.size(), 0), worst(methods.size(), 0);
  int cells = 0;
  std::printf(
      "rho %.4g per quantile metric, L0 %d, Linf %d, %.0f%% intervals, %d "
      "releases per cohort\n",
      rho, kBounds.max_cohorts_per_account, kBounds.max_sessions_per_cohort,
      100 * kConfidence, trials);
  std::printf(
      "mean interval width (mean |error|) of q = 0.05 0.25 0.5 0.75 "
      "0.95, actions per prompt\n");
  for (int n : sizes) {
    std::vector<int64_t> sorted = Cohort(n, domain);
    std::sort(sorted.begin(), sorted.end());
    std::vector<double> truth;
    for (double q : kBoxPlot) truth.push_back(TrueQuantile(sorted, q, domain));
    std::printf("\ncohort of %d sessions: true quantiles", n);
    for (double t : truth) std::printf(" %.2f", t);
    std::printf("\n");
    std::vector<double> reference;
    for (size_t k = 0; k < methods.size(); ++k) {
      const Method& m = methods[k];
      std::vector<double> width(kBoxPlot.size(), 0), error(kBoxPlot.size(), 0);
      std::vector<int> misses(kBoxPlot.size(), 0);
      if (m.exponential) {
        // Each quantile's EM with eps is eps^2/8-zCDP (bounded range,
        // Cesar & Rogers 2021); five quantiles in each of L0 cohorts an
        // account touches: rho = 5 L0 eps^2 / 8.
        const double eps = std::sqrt(
            8 * rho / (kBoxPlot.size() * kBounds.max_cohorts_per_account));
        for (int t = 0; t < trials; ++t) {
          for (size_t i = 0; i < kBoxPlot.size(); ++i) {
            error[i] += std::abs(
                ExponentialQuantile(sorted, kBoxPlot[i], eps, domain, rng) -
                truth[i]);
          }
        }
      } else {
        auto tree = QuantileTree::Create(kBounds, domain, kBoxPlot, rho,
                                         kConfidence, m.shape);
        if (!tree.ok()) std::abort();
        for (int t = 0; t < trials; ++t) {
          auto r = tree->Release(sorted, rng);
          if (!r.ok()) std::abort();
          for (size_t i = 0; i < kBoxPlot.size(); ++i) {
            const Estimate& e = (*r)[i].estimate;
            width[i] += e.ci_high - e.ci_low;
            error[i] += std::abs(e.value - truth[i]);
            misses[i] += !(e.ci_low <= truth[i] && truth[i] <= e.ci_high);
          }
        }
      }
      std::printf("  %-30s", m.name.c_str());
      for (size_t i = 0; i < kBoxPlot.size(); ++i) {
        if (m.exponential) {
          std::printf("      - (%6.3f)", error[i] / trials);
        } else {
          std::printf(" %6.2f (%6.3f)", width[i] / trials, error[i] / trials);
        }
      }
      if (k == 0) reference = width;
      for (size_t i = 0; i < kBoxPlot.size() && !m.exponential; ++i) {
        const double domain_width =
            domain.ToValue(domain.upper_fp) - domain.ToValue(domain.lower_fp);
        if (reference[i] / trials >= 0.9 * domain_width) continue;
        if (k == 0) ++cells;
        const double ratio = width[i] / reference[i];
        log_ratio[k] += std::log(ratio);
        worst[k] = std::max(worst[k], ratio);
      }
      int missed = 0;
      for (int x : misses) missed += x;
      if (!m.exponential) std::printf("  misses %d", missed);
      std::printf("\n");
    }
  }
  std::printf(
      "\nwidth relative to \"%s\" over the %d cells where it is "
      "informative: geometric mean, worst\n",
      methods[0].name.c_str(), cells);
  for (size_t k = 0; k + 1 < methods.size(); ++k) {
    std::printf("  %-30s %.3f  %.3f\n", methods[k].name.c_str(),
                std::exp(log_ratio[k] / cells), worst[k]);
  }
}

// One box-plot release of an 80,000-session cohort from its leaf counts.
void BM_ReleaseLeafCounts(benchmark::State& state) {
  const MeasureDomain domain = ActionsPerPrompt();
  const QuantileTreeShape shape{static_cast<int>(state.range(0)),
                                static_cast<int>(state.range(1)), true};
  auto tree = QuantileTree::Create(kBounds, domain, kBoxPlot, 0.005,
                                   kConfidence, shape);
  if (!tree.ok()) std::abort();
  std::vector<int64_t> counts(tree->grid().leaves, 0);
  for (int64_t v : Cohort(80000, domain)) ++counts[tree->grid().LeafOf(v)];
  RandomWords& rng = SecureRandomWords();
  for (auto _ : state) {
    auto r = tree->ReleaseLeafCounts(counts, rng);
    benchmark::DoNotOptimize(r);
  }
  state.counters["leaves"] = static_cast<double>(tree->grid().leaves);
}
BENCHMARK(BM_ReleaseLeafCounts)
    ->Args({8, 4})
    ->Args({16, 3})
    ->Args({16, 4})
    ->Args({4, 6})
    ->Unit(benchmark::kMicrosecond);

// Counting 80,000 values into leaves (what the executor does per cohort).
void BM_CountIntoLeaves(benchmark::State& state) {
  const MeasureDomain domain = ActionsPerPrompt();
  auto grid = QuantileTree::Grid(domain);
  if (!grid.ok()) std::abort();
  const std::vector<int64_t> values = Cohort(80000, domain);
  std::vector<int64_t> counts(grid->leaves);
  for (auto _ : state) {
    std::fill(counts.begin(), counts.end(), 0);
    for (int64_t v : values) ++counts[grid->LeafOf(v)];
    benchmark::DoNotOptimize(counts.data());
  }
  state.SetItemsProcessed(state.iterations() * values.size());
}
BENCHMARK(BM_CountIntoLeaves)->Unit(benchmark::kMicrosecond);

// What the release did before: sort the cohort's values.
void BM_SortValues(benchmark::State& state) {
  const MeasureDomain domain = ActionsPerPrompt();
  std::vector<int64_t> values = Cohort(80000, domain);
  // An account-ordered scan meets values in no particular order.
  for (size_t i = 0; i < values.size(); ++i) {
    std::swap(values[i], values[(i * 2654435761u) % values.size()]);
  }
  for (auto _ : state) {
    std::vector<int64_t> copy = values;
    std::sort(copy.begin(), copy.end());
    benchmark::DoNotOptimize(copy.data());
  }
  state.SetItemsProcessed(state.iterations() * values.size());
}
BENCHMARK(BM_SortValues)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cohortd::privacy

int main(int argc, char** argv) {
  int trials = 200;
  double rho = 0.005;
  bool compare = false;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--compare") == 0) {
      compare = true;
    } else if (std::strcmp(argv[i], "--trials") == 0 && i + 1 < argc) {
      trials = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--rho") == 0 && i + 1 < argc) {
      rho = std::atof(argv[++i]);
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (compare) {
    if (trials < 1 || !(rho > 0)) {
      std::fprintf(stderr, "quantile_tree_bench: --trials >= 1, --rho > 0\n");
      return 2;
    }
    cohortd::privacy::Compare(trials, rho);
    return 0;
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
