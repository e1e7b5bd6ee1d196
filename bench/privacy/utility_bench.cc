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
  // The budget the noise chooser protects (the principal's): queries per
  // budget never drop below the Gaussian plan's there.
  double reference_epsilon;
  double reference_delta;
  // The figures before the per-metric chooser (main at 2b61953, this
  // program with --trials=1000, the same rows in order; the issue's own
  // "cohortd today" in brackets where it quotes one).
  std::vector<const char*> before;
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
  q.reference_budget_epsilon = p.reference_epsilon;
  q.reference_budget_delta = p.reference_delta;
  return q;
}

// Prints one table row: figure, before, now, Google.
void Row(const ParamSet& p, size_t* row, const std::string& figure,
         const std::string& now, const std::string& google) {
  const char* before = *row < p.before.size() ? p.before[*row] : "-";
  ++*row;
  std::printf("| %s | %s | %s | %s |\n", figure.c_str(), before, now.c_str(),
              google.c_str());
}

std::string Str(const char* format, double a, double b = 0) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), format, a, b);
  return buf;
}

// The family a releaser's plan uses, for the table.
const char* FamilyName(const QueryReleaser& r) {
  switch (r.budget().family) {
    case NoiseFamily::kLaplace:
      return "Laplace";
    case NoiseFamily::kMixed:
      return "per-metric";
    default:
      return "Gaussian";
  }
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
  std::printf(
      "\n## %s: L0 %d, Linf %d, epsilon %g, delta %g, k %d, 95%%; the "
      "chooser guards a budget of (%g, %g)\n\n",
      p.name, p.l0, p.linf, p.epsilon, p.delta, p.k, p.reference_epsilon,
      p.reference_delta);
  std::printf(
      "| figure | before [issue] | now (plan) | Google (quoted) |\n"
      "|---|---|---|---|\n");
  size_t row = 0;

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
  Row(p, &row, "session count half-width",
      Str("%.1f", (e.ci_high - e.ci_low) / 2) + " (" + FamilyName(count) + ")",
      Fmt(p.google_count_half_width, "%.1f"));

  // One query: selection + RATE (label grouped by: no gate).
  const QueryReleaser rate =
      OrDie(QueryReleaser::Create(params, {{MetricKind::kRate, {}, {}}}),
            "rate query");
  // The two cohorts: its widths there (0.583 / 0.402) are those
  // of true rates of about 0.75 and 0.82.
  Row(p, &row,
      "rate width, issue's cohorts: 195 sessions at 0.75 / 277 at 0.82",
      Str("%.3f / %.3f", RateWidth(rate, 195, 0.75, trials),
          RateWidth(rate, 277, 0.82, trials)) +
          " (" + FamilyName(rate) + ")",
      Fmt(p.google_rate_width_195, "%.3f") + " / " +
          Fmt(p.google_rate_width_277, "%.3f"));
  for (int64_t n : {200, 2000, 20000}) {
    Row(p, &row,
        Str("rate width at %.0f sessions (rate 0.5 / 0.8)",
            static_cast<double>(n)),
        Str("%.3f / %.3f", RateWidth(rate, n, 0.5, trials),
            RateWidth(rate, n, 0.8, trials)),
        "-");
  }

  // One query: selection + a gated MEAN of a [0, 200] measure.
  const MeasureDomain mean_domain =
      OrDie(MeasureDomain::Create(0, 200, 1), "mean domain");
  const QueryReleaser mean =
      OrDie(QueryReleaser::Create(params,
                                  {{MetricKind::kMean, mean_domain, {}, 0}}, 1),
            "mean query");
  for (int64_t n : {200, 2000, 20000}) {
    Row(p, &row,
        Str("mean width, [0, 200], %.0f sessions (mean 50 / 100)",
            static_cast<double>(n)),
        Str("%.1f / %.1f", MeanWidth(mean, n, 50, trials),
            MeanWidth(mean, n, 100, trials)) +
            (n == 200 ? std::string(" (") + FamilyName(mean) + ")" : ""),
        "-");
  }

  // Selection of the equal-work query (cohorts + one session
  // count): exact sizes, and a simulated check at the 0.95 size.
  const PartitionSelector& sel = count.partition_selector();
  const int64_t n50 = sel.MinCohortSizeReleasedWith(0.5);
  const int64_t n95 = sel.MinCohortSizeReleasedWith(0.95);
  int64_t kept = 0;
  for (int i = 0; i < trials; ++i) {
    kept += OrDie(sel.Decide(n95, SecureRandomWords()), "select").released;
  }
  Row(p, &row, "count query: smallest cohort released w.p. >= 0.5 (accounts)",
      Str("%.0f", static_cast<double>(n50)), "-");
  Row(p, &row,
      "count query: smallest cohort released w.p. >= 0.95 (accounts; "
      "simulated share there)",
      Str("%.0f (%.3f)", static_cast<double>(n95),
          static_cast<double>(kept) / trials),
      Fmt(p.google_kept_95, "~%.0f"));
  kept = 0;
  for (int i = 0; i < trials; ++i) {
    kept += OrDie(sel.Decide(37, SecureRandomWords()), "select").released;
  }
  Row(p, &row, "count query: 37-account cohort released w.p.",
      Str("%.3f (exact %.3f)", static_cast<double>(kept) / trials,
          sel.KeepProbability(37)),
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
  std::string widths;
  for (size_t j = 0; j < qs.size(); ++j) {
    widths += Str(j ? " / %.1f" : "%.1f", width[j] / box_trials);
  }
  Row(p, &row, "quantile widths q10/q25/q50/q75/q90, [0, 200], 2,000 sessions",
      widths + " (" + FamilyName(box) + ")", "-");

  // A query mixing kinds: selection + SESSIONS + RATE + a gated box plot.
  // Before, the box plot kept every metric Gaussian; the per-metric plan
  // may give the count and the rate Laplace noise. "before" is the
  // Gaussian plan, computed.
  {
    const std::vector<MetricRequest> mixed = {
        {MetricKind::kSessions, {}, {}},
        {MetricKind::kRate, {}, {}},
        {MetricKind::kQuantiles, domain, qs, 0}};
    QueryPrivacyParams gaussian_params = params;
    gaussian_params.family = QueryPrivacyParams::Family::kGaussian;
    const QueryReleaser now =
        OrDie(QueryReleaser::Create(params, mixed, 1), "mixed query");
    const QueryReleaser before = OrDie(
        QueryReleaser::Create(gaussian_params, mixed, 1), "mixed Gaussian");
    auto figures = [](const QueryReleaser& r) {
      return Str("+-%.0f / %.3f", *r.PredictedHalfWidth(0, 2000),
                 2 * *r.PredictedHalfWidth(1, 2000)) +
             Str(" / %.0f",
                 static_cast<double>(
                     r.partition_selector().MinCohortSizeReleasedWith(0.95))) +
             " (" + FamilyName(r) + ")";
    };
    std::printf(
        "| count + rate + box plot query: count half-width / rate width at "
        "2,000 sessions (predicted, widest rate) / kept w.p. 0.95 | %s | %s "
        "| - |\n",
        figures(before).c_str(), figures(now).c_str());
  }

  // Count queries (the default query: selection + one session count) per
  // budget (epsilon 20, delta 1e-5): what the ledger accepts.
  BudgetLedger ledger = OrDie(BudgetLedger::Create(20, 1e-5), "ledger");
  int64_t fitted = 0;
  while (fitted < 1000000 && ledger.Charge(count.budget().Charge()).ok()) {
    ++fitted;
  }
  Row(p, &row, "count queries per budget (epsilon 20, delta 1e-5)",
      Str("%.0f", static_cast<double>(fitted)), "-");
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
  // "before": main at 2b61953 (this program, --trials=1000), with the
  // issue's own "cohortd today" in brackets.
  const ParamSet sets[] = {
      {"Google DP's parameters (issue 12), the query = the budget",
       1,
       5,
       1.0,
       1e-5,
       10,
       30.0,
       0.544,
       0.383,
       37,
       1.0,
       1e-5,
       {"29.0 (Laplace) [58]", "0.434 / 0.309 (Gaussian) [0.583 / 0.402]",
        "0.490 / 0.394", "0.042 / 0.049", "0.004 / 0.005", "90.6 / 117.6",
        "10.8 / 8.9", "1.1 / 0.9", "31 [37]", "35 [47]", "0.987 [0.534]",
        "64.9 / 105.9 / 135.8 / 120.8 / 100.0", "1"}},
      {"cohortd defaults (config/cohortd.yaml)",
       4,
       8,
       1.0,
       1e-10,
       10,
       -1,
       -1,
       -1,
       -1,
       20,
       1e-5,
       {"277.0 (Gaussian)", "0.917 / 0.838", "0.935 / 0.911", "0.205 / 0.231",
        "0.020 / 0.023", "187.8 / 187.8", "53.3 / 46.9", "5.2 / 4.4", "129",
        "158", "0.000", "198.5 / 200.0 / 200.0 / 200.0 / 200.0", "420 [405]"}},
      {"cohortd, issue 12's delta 1e-7",
       4,
       8,
       1.0,
       1e-7,
       10,
       -1,
       -1,
       -1,
       -1,
       20,
       1e-5,
       {"226.0 (Gaussian) [226]", "0.897 / 0.782", "0.921 / 0.883",
        "0.165 / 0.191", "0.016 / 0.019", "183.3 / 187.1", "44.1 / 37.1",
        "4.2 / 3.5", "91", "115", "0.000",
        "195.7 / 198.1 / 199.9 / 199.6 / 198.9", "199"}},
  };
  std::printf(
      "# utility_bench: one query, equal (epsilon, delta); %d "
      "releases per simulated figure\n",
      trials);
  for (const ParamSet& p : sets) cohortd::privacy::Run(p, trials);
  return 0;
}
