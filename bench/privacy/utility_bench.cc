// Utility of the privacy core at equal (epsilon, delta): what an analyst
// gets for one query, printed as a table (issue 12, item 5).
//
// For each parameter set (Google's differential-privacy library's setting
// of the comparison, and cohortd's defaults) one query selects
// cohorts and releases one metric with the set's total epsilon, and the
// program prints:
//   * the session count's half-width (SESSIONS metric);
//   * the mean width of the rate interval at several cohort sizes
//     (RATE metric, true rate 0.5 and 0.8, simulated with the CSPRNG),
//     and of a [0, 200] measure's mean (MEAN metric with its gate);
//   * the smallest cohort (accounts) released with p >= 0.5 and >= 0.95,
//     exactly from the selection's distribution, and the share released in
//     a CSPRNG simulation at the 0.95 size as a check;
//   * quantile interval widths (a 5-point box of a [0, 200] measure over
//     2,000 uniform sessions);
//   * how many such queries fit in a budget of (epsilon 20, delta 1e-5);
// and Google's figures quoted in the issue beside ours.
//
// Only the privacy core's public API is used (QueryReleaser,
// PartitionSelector, BudgetLedger through the releaser's budget plan), so
// the program measures whatever mechanisms and split the core chooses.
// Usage: utility_bench [--trials=N] (default 4000 releases per figure).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/crypto/csprng.h"
#include "server/privacy/accountant.h"
#include "server/privacy/query_release.h"

namespace cohortd::privacy {
namespace {

struct ParamSet {
  const char* name;
  int l0;
  int linf;
  double epsilon;
  double delta;
  int k;
  // Google's figures quoted in the issue (negative: none quoted).
  double google_count_half_width;
  double google_rate_width_195;
  double google_rate_width_277;
  double google_kept_95;
};

constexpr int64_t kHuge = 1000000;  // accounts: always released

template <typename T>
T OrDie(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}

QueryPrivacyParams Params(const ParamSet& p) {
  QueryPrivacyParams q;
  q.k = p.k;
  q.bounds = {p.l0, p.linf};
  q.epsilon = p.epsilon;
  q.delta = p.delta;
  q.confidence = 0.95;
  return q;
}

// Mean width (ci_high - ci_low) of the rate over `trials` releases of a
// cohort with `sessions` sessions of which round(rate * sessions) match.
double RateWidth(const QueryReleaser& r, int64_t sessions, double rate,
                 int trials) {
  MetricInput in;
  in.sessions = sessions;
  in.matching = static_cast<int64_t>(rate * sessions + 0.5);
  double sum = 0;
  for (int i = 0; i < trials; ++i) {
    const CohortRelease c =
        OrDie(r.ReleaseCohort(kHuge, {&in, 1}, SecureRandomWords()), "rate");
    sum += c.metrics[0].estimate.ci_high - c.metrics[0].estimate.ci_low;
  }
  return sum / trials;
}

// Mean width of a gated mean over `trials` releases of a cohort with
// `sessions` sessions averaging `value` (fixed point = value, step 1).
double MeanWidth(const QueryReleaser& r, int64_t sessions, int64_t value,
                 int trials) {
  MetricInput in;
  in.sessions = sessions;
  in.sum_fp = static_cast<__int128>(sessions) * value;
  const int64_t gate[1] = {kHuge};
  double sum = 0;
  for (int i = 0; i < trials; ++i) {
    const CohortRelease c = OrDie(
        r.ReleaseCohort(kHuge, gate, {&in, 1}, SecureRandomWords()), "mean");
    sum += c.metrics[0].estimate.ci_high - c.metrics[0].estimate.ci_low;
  }
  return sum / trials;
}

std::string Fmt(double v, const char* format) {
  if (v < 0) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

void Run(const ParamSet& p, int trials) {
  const QueryPrivacyParams params = Params(p);
  std::printf("\n## %s: L0 %d, Linf %d, epsilon %g, delta %g, k %d, 95%%\n\n",
              p.name, p.l0, p.linf, p.epsilon, p.delta, p.k);
  std::printf("| figure | cohortd | Google (quoted) |\n|---|---|---|\n");

  // One query: selection + SESSIONS.
  const QueryReleaser count =
      OrDie(QueryReleaser::Create(params, {{MetricKind::kSessions, {}, {}}}),
            "count query");
  MetricInput big;
  big.sessions = 10000000;
  const CohortRelease c =
      OrDie(count.ReleaseCohort(kHuge, {&big, 1}, SecureRandomWords()),
            "count release");
  const Estimate& e = c.metrics[0].estimate;
  std::printf("| session count half-width | %.1f | %s |\n",
              (e.ci_high - e.ci_low) / 2,
              Fmt(p.google_count_half_width, "%.1f").c_str());

  // One query: selection + RATE (label grouped by: no gate).
  const QueryReleaser rate =
      OrDie(QueryReleaser::Create(params, {{MetricKind::kRate, {}, {}}}),
            "rate query");
  // The two cohorts: today's widths there (0.583 / 0.402) are
  // those of true rates of about 0.75 and 0.82.
  std::printf(
      "| rate width, issue's cohorts: 195 sessions at 0.75 / 277 at "
      "0.82 | %.3f / %.3f | %s / %s |\n",
      RateWidth(rate, 195, 0.75, trials), RateWidth(rate, 277, 0.82, trials),
      Fmt(p.google_rate_width_195, "%.3f").c_str(),
      Fmt(p.google_rate_width_277, "%.3f").c_str());
  const struct {
    int64_t sessions;
    double google;
  } sizes[] = {{200, -1}, {2000, -1}, {20000, -1}};
  for (const auto& s : sizes) {
    std::printf(
        "| rate width at %lld sessions (rate 0.5 / 0.8) | %.3f / "
        "%.3f | %s |\n",
        static_cast<long long>(s.sessions),
        RateWidth(rate, s.sessions, 0.5, trials),
        RateWidth(rate, s.sessions, 0.8, trials),
        Fmt(s.google, "%.3f").c_str());
  }

  // One query: selection + a gated MEAN of a [0, 200] measure.
  const MeasureDomain mean_domain =
      OrDie(MeasureDomain::Create(0, 200, 1), "mean domain");
  const QueryReleaser mean =
      OrDie(QueryReleaser::Create(params,
                                  {{MetricKind::kMean, mean_domain, {}, 0}}, 1),
            "mean query");
  for (int64_t n : {200, 2000, 20000}) {
    std::printf(
        "| mean width, [0, 200], %lld sessions (mean 50 / 100) | "
        "%.1f / %.1f | - |\n",
        static_cast<long long>(n), MeanWidth(mean, n, 50, trials),
        MeanWidth(mean, n, 100, trials));
  }

  // Selection of the equal-work query (cohorts + one session
  // count): exact sizes, and a simulated check at the 0.95 size. The noise
  // chooser may give that query another family (and selection) than the
  // rate and mean queries above.
  const PartitionSelector& sel = count.partition_selector();
  const int64_t n50 = sel.MinCohortSizeReleasedWith(0.5);
  const int64_t n95 = sel.MinCohortSizeReleasedWith(0.95);
  int64_t kept = 0;
  for (int i = 0; i < trials; ++i) {
    kept += OrDie(sel.Decide(n95, SecureRandomWords()), "select").released;
  }
  std::printf(
      "| count query: smallest cohort released w.p. >= 0.5 (accounts) | "
      "%lld | - "
      "|\n",
      static_cast<long long>(n50));
  std::printf(
      "| count query: smallest cohort released w.p. >= 0.95 (accounts; "
      "simulated "
      "share there) | %lld (%.3f) | %s |\n",
      static_cast<long long>(n95), static_cast<double>(kept) / trials,
      Fmt(p.google_kept_95, "~%.0f").c_str());
  std::printf("| count query: 37-account cohort released w.p. | ");
  kept = 0;
  for (int i = 0; i < trials; ++i) {
    kept += OrDie(sel.Decide(37, SecureRandomWords()), "select").released;
  }
  std::printf("%.3f | %s |\n", static_cast<double>(kept) / trials,
              p.google_kept_95 > 0 ? ">= 0.95" : "-");

  // One query: selection + a gated 5-point box of a [0, 200] measure.
  const MeasureDomain domain = OrDie(MeasureDomain::Create(0, 200, 1), "dom");
  const std::vector<double> qs = {0.1, 0.25, 0.5, 0.75, 0.9};
  const QueryReleaser box =
      OrDie(QueryReleaser::Create(params,
                                  {{MetricKind::kQuantiles, domain, qs, 0}}, 1),
            "quantile query");
  std::vector<int64_t> values;
  for (int i = 0; i < 2000; ++i) values.push_back((i * 37) % 201);
  MetricInput qin;
  qin.sessions = static_cast<int64_t>(values.size());
  qin.values_fp = values;
  std::vector<double> width(qs.size(), 0);
  const int box_trials = trials / 10 + 1;
  const int64_t gate[1] = {kHuge};
  for (int i = 0; i < box_trials; ++i) {
    const CohortRelease r = OrDie(
        box.ReleaseCohort(kHuge, gate, {&qin, 1}, SecureRandomWords()), "box");
    for (size_t j = 0; j < qs.size(); ++j) {
      width[j] += r.metrics[0].quantiles[j].estimate.ci_high -
                  r.metrics[0].quantiles[j].estimate.ci_low;
    }
  }
  std::printf(
      "| quantile widths q10/q25/q50/q75/q90, [0, 200], 2,000 "
      "sessions | ");
  for (size_t j = 0; j < qs.size(); ++j) {
    std::printf("%s%.1f", j ? " / " : "", width[j] / box_trials);
  }
  std::printf(" | - |\n");

  // Queries per budget (epsilon 20, delta 1e-5): what the ledger accepts.
  BudgetLedger ledger = OrDie(BudgetLedger::Create(20, 1e-5), "ledger");
  int64_t fitted = 0;
  while (fitted < 1000000 && ledger.Charge(rate.budget().Charge()).ok()) {
    ++fitted;
  }
  std::printf("| queries per budget (epsilon 20, delta 1e-5) | %lld | - |\n",
              static_cast<long long>(fitted));
}

}  // namespace
}  // namespace cohortd::privacy

int main(int argc, char** argv) {
  int trials = 4000;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--trials=", 9) == 0) {
      trials = std::atoi(argv[i] + 9);
    } else {
      std::fprintf(stderr, "usage: %s [--trials=N]\n", argv[0]);
      return 2;
    }
  }
  if (trials < 1) trials = 1;
  using cohortd::privacy::ParamSet;
  // Google's side of the table: Laplace, epsilon split in halves
  // between selection and the metric, as PipelineDP does by default.
  const ParamSet sets[] = {
      {"Google DP's parameters (issue 12)", 1, 5, 1.0, 1e-5, 10, 30.0, 0.544,
       0.383, 37},
      {"cohortd defaults (config/cohortd.yaml)", 4, 8, 1.0, 1e-10, 10, -1, -1,
       -1, -1},
      {"cohortd, issue 12's delta 1e-7", 4, 8, 1.0, 1e-7, 10, -1, -1, -1, -1},
  };
  std::printf(
      "# utility_bench: one query, equal (epsilon, delta); %d "
      "releases per simulated figure\n",
      trials);
  for (const ParamSet& p : sets) cohortd::privacy::Run(p, trials);
  return 0;
}
