// Prints the before/after figures of the RDP ledger and the noise chooser
// (issue 12 items 1 and 2): at Google DP's parameters (L0 = 1, Linf = 5,
// delta = 1e-5, 95%, k = 10 pre-threshold), one query selecting cohorts
// and releasing one session count at a total epsilon of 1: the count's
// half-width, the smallest cohort kept with p >= 0.95 and the keep
// probability of a 37-account cohort; the reported epsilon of a request of
// 1; how many default queries (cohortd's defaults: L0 = 4, Linf = 8,
// epsilon 1, delta 1e-10, one SESSIONS metric) fit a budget of (epsilon
// 20, delta 1e-5); and a budget's spent/remaining after 10 such queries.
// "Before" is the zCDP ledger with Gaussian noise (the family the chooser
// falls back to, and the ledger arithmetic of the previous accountant);
// "after" is what the server now does. Pure computation, no randomness.
//
//   build/bench/privacy/ledger_chooser_figures
#include <cmath>
#include <cstdio>

#include "server/privacy/accountant.h"
#include "server/privacy/query_release.h"

namespace cohortd::privacy {
namespace {

QueryPrivacyParams Params(int l0, int linf, double epsilon, double delta) {
  QueryPrivacyParams p;
  p.k = 10;
  p.bounds.max_cohorts_per_account = l0;
  p.bounds.max_sessions_per_cohort = linf;
  p.epsilon = epsilon;
  p.delta = delta;
  p.confidence = 0.95;
  return p;
}

QueryReleaser Releaser(QueryPrivacyParams p, QueryPrivacyParams::Family f) {
  p.family = f;
  MetricRequest sessions;
  sessions.kind = MetricKind::kSessions;
  return *QueryReleaser::Create(p, {sessions});
}

void OneQuery(const char* label, const QueryReleaser& r) {
  const auto* count = r.budget().family == NoiseFamily::kLaplace
                          ? "discrete Laplace"
                          : "discrete Gaussian";
  // The half-width: Widths() holds selection then the metric (+1).
  const std::vector<double> widths = r.Widths();
  std::printf(
      "%-7s noise %-17s selection %-9s count +-%-4.0f kept w.p.0.5 at %3lld, "
      "w.p.0.95 at %3lld accounts; P[keep 37] = %.3f; reported eps %.12g\n",
      label, count,
      r.partition_selector().is_optimal() ? "optimal" : "Gaussian",
      widths.back() - 1,
      static_cast<long long>(
          r.partition_selector().MinCohortSizeReleasedWith(0.5)),
      static_cast<long long>(
          r.partition_selector().MinCohortSizeReleasedWith(0.95)),
      r.partition_selector().KeepProbability(37),
      r.budget().Reported().epsilon);
}

}  // namespace
}  // namespace cohortd::privacy

int main() {
  using namespace cohortd::privacy;
  using Family = QueryPrivacyParams::Family;
  std::printf(
      "== Google DP's parameters: L0 1, Linf 5, eps 1, delta 1e-5, "
      "k 10, one session count ==\n");
  QueryPrivacyParams google = Params(1, 5, 1.0, 1e-5);
  OneQuery("before", Releaser(google, Family::kGaussian));
  // One query is the whole budget here.
  google.reference_budget_epsilon = 1.0;
  google.reference_budget_delta = 1e-5;
  OneQuery("after", Releaser(google, Family::kAuto));
  // The previous accountant reported EpsilonFromRho(rho_total) rounded up.
  const double rho = *RhoFromEpsilonDelta(1.0, 0.5e-5);
  std::printf("before: reported eps of a request of 1 = %.12g\n",
              *EpsilonFromRho(rho, 0.5e-5, Rounding::kUp));

  std::printf(
      "\n== Default queries (L0 4, Linf 8, eps 1, delta 1e-10, one "
      "session count) per budget (eps 20, delta 1e-5) ==\n");
  QueryPrivacyParams defaults = Params(4, 8, 1.0, 1e-10);
  const QueryReleaser before = Releaser(defaults, Family::kGaussian);
  // zCDP ledger: capacity (rho(20, delta/2), delta/2), each query
  // (rho(1, 5e-11), 5e-11).
  const double cap = *RhoFromEpsilonDelta(20, 0.5e-5);
  const double per = before.budget().rho_total;
  const long long zcdp_queries = static_cast<long long>(
      std::min(std::floor(cap / per), std::floor(0.5e-5 / 0.5e-10)));
  defaults.reference_budget_epsilon = 20;
  defaults.reference_budget_delta = 1e-5;
  const QueryReleaser after = Releaser(defaults, Family::kAuto);
  BudgetLedger ledger = *BudgetLedger::Create(20, 1e-5);
  long long rdp_queries = 0;
  while (ledger.Charge(after.budget().Charge()).ok()) ++rdp_queries;
  const QueryReleaser laplace = Releaser(defaults, Family::kLaplace);
  std::printf(
      "before: %lld queries (zCDP ledger), count +-%.0f\n"
      "after:  %lld queries (RDP ledger), family %s, count +-%.0f "
      "(Laplace alone would give +-%.0f but only %lld queries)\n",
      zcdp_queries, before.Widths().back() - 1, rdp_queries,
      after.budget().family == NoiseFamily::kLaplace ? "Laplace" : "Gaussian",
      after.Widths().back() - 1, laplace.Widths().back() - 1,
      static_cast<long long>(
          RepetitionsAffordable(laplace.budget().Charge(), 20, 1e-5)));

  std::printf("\n== Budget (eps 20, delta 1e-5) after 10 default queries ==\n");
  {
    // Previous ledger: spent (EpsilonFromRho(rho, d/2), approx + d/2),
    // remaining (EpsilonFromRho(cap - rho, d/2), cap_delta - approx + d/2).
    const double spent_rho = 10 * per, spent_delta = 10 * 0.5e-10;
    std::printf(
        "before: total eps 20 delta 1e-05; spent eps %.6g delta %.6g; "
        "remaining eps %.6g delta %.6g\n",
        *EpsilonFromRho(spent_rho, 0.5e-5, Rounding::kUp), spent_delta + 0.5e-5,
        *EpsilonFromRho(cap - spent_rho, 0.5e-5, Rounding::kDown),
        0.5e-5 - spent_delta + 0.5e-5);
    BudgetLedger now = *BudgetLedger::Create(20, 1e-5);
    for (int i = 0; i < 10; ++i) (void)now.Charge(after.budget().Charge());
    const ReportedCost s = now.ReportedSpent(), r = now.ReportedRemaining();
    std::printf(
        "after:  total eps 20 delta 1e-05; spent eps %.8g delta %.8g; "
        "remaining eps %.8g delta %.8g\n",
        s.epsilon, s.delta, r.epsilon, r.delta);
  }
  return 0;
}
