// Privacy accounting in zero-concentrated DP (zCDP; Bun & Steinke, TCC
// 2016, "BS16").
//
// The ledger unit is a `ZcdpCharge` = (rho, delta): the mechanism is
// delta-approximately rho-zCDP (BS16 Def. 8.1). Pure zCDP mechanisms (all
// our noise) have delta = 0; only DP partition selection carries a delta
// (the chance that a cohort present in one neighbour only is released).
// Approximate zCDP composes by adding both parts (BS16 Lemma 8.3).
//
// Conversion to (epsilon, delta)-DP uses the bound of CKS20 Corollary 13:
// rho-zCDP implies (epsilon, delta')-DP for
//   delta' = exp((a - 1)(a rho - epsilon) + a ln(1 - 1/a)) / (a - 1)
// for every a > 1 (we search a numerically; any a gives a valid bound). It
// is never worse than the standard bound (BS16 Prop. 1.3)
// epsilon = rho + 2 sqrt(rho ln(1/delta')), which brackets the searches.
// With the approximate part the result is (epsilon, delta' + delta).
//
// Rounding is conservative: anything that is spent is rounded up, anything
// that remains (or is granted) is rounded down, by a relative margin
// (kRoundingMargin) that dwarfs the double-precision error of the few
// operations involved.
//
// All functions are pure and thread-safe.
#ifndef COHORTD_SERVER_PRIVACY_ACCOUNTANT_H_
#define COHORTD_SERVER_PRIVACY_ACCOUNTANT_H_

#include "absl/status/statusor.h"

namespace cohortd::privacy {

// Relative margin applied when rounding up or down (see file comment).
inline constexpr double kRoundingMargin = 1e-9;

// Rounds a spent quantity up / a remaining quantity down by the margin.
double RoundSpend(double x);
double RoundRemaining(double x);

// rho of the (discrete) Gaussian mechanism: Delta_2^2 / (2 sigma^2)
// (CKS20 Thm 14; BS16 Prop. 1.6), rounded up. Requires sigma2 > 0.
double GaussianRho(double l2_sensitivity_squared, double sigma2);

// rho of a pure epsilon-DP mechanism: epsilon^2 / 2 (BS16 Prop. 1.4),
// rounded up.
double PureDpRho(double epsilon);

// The delta' of CKS20 Cor. 13 for rho and epsilon (rounded up), and the
// largest rho whose delta' is <= delta at epsilon (rounded down; about 30%
// more than the standard bound's (sqrt(ln(1/delta) + eps) -
// sqrt(ln(1/delta)))^2). Errors: InvalidArgument unless epsilon > 0 and
// 0 < delta < 1.
double ZcdpDelta(double rho, double epsilon);
absl::StatusOr<double> RhoFromEpsilonDelta(double epsilon, double delta);

// The smallest epsilon with ZcdpDelta(rho, epsilon) <= delta, rounded up
// (a cost) or down (a remaining allowance). Errors: InvalidArgument unless
// rho >= 0 and 0 < delta < 1.
enum class Rounding { kUp, kDown };
absl::StatusOr<double> EpsilonFromRho(double rho, double delta,
                                      Rounding rounding);

// delta-approximate rho-zCDP.
struct ZcdpCharge {
  double rho = 0;
  double delta = 0;
};

// Composition: rho and delta add (BS16 Lemma 8.3); rounded up, except that
// adding to zero is exact (so a charge equal to a whole capacity fits).
ZcdpCharge Compose(const ZcdpCharge& a, const ZcdpCharge& b);

// A privacy cost as the public API reports it (proto PrivacyCost):
// the release is (epsilon, delta)-DP, and `rho` is what the ledger charged.
// delta = delta_conversion + charge.delta, where delta_conversion is the
// delta' of the zCDP -> DP conversion above.
struct ReportedCost {
  double epsilon = 0;
  double delta = 0;
  double rho = 0;
};

// How one query's (epsilon, delta) is split. A query asks for
// (epsilon, delta); half of delta pays the zCDP -> DP conversion and half
// is the approximate part (delta_approximate), and
//   rho_total = RhoFromEpsilonDelta(epsilon, delta / 2).
// rho_total is split in equal shares between partition selection, each
// contributor gate and each noisy metric (ACCOUNTS reuses partition
// selection's noisy count, so it costs nothing and is not counted as a
// metric). delta_approximate is split in equal shares between partition
// selection and each contributor gate: both are pre-thresholded Gaussian
// selections (partition_selection.h) whose delta is that of the cohorts
// (or metrics) present on one side of a neighbouring pair only.
//
// A contributor gate is the k + DP threshold on the number of accounts
// that contribute to a metric (e.g. carry its measure); see
// query_release.h. Metrics sharing the same contributing sessions share
// one gate.
struct QueryBudget {
  double rho_total = 0;
  double rho_partition_selection = 0;
  double rho_per_metric = 0;
  double rho_per_gate = 0;
  double delta_partition_selection = 0;  // the cohort selection's share
  double delta_per_gate = 0;             // each contributor gate's share
  double delta_approximate = 0;          // approximate part of the charge
  double delta_conversion = 0;
  int gates = 0;

  // What the ledger charges: (rho_total, delta_approximate).
  ZcdpCharge Charge() const;
  // Reported cost: epsilon = EpsilonFromRho(rho_total, delta_conversion)
  // (rounded up, <= the requested epsilon), delta = requested delta.
  ReportedCost Reported() const;
};

// Splits (epsilon, delta) for a query with `noisy_metrics` >= 0 metrics
// that need their own noise and `gates` >= 0 contributor gates. Every
// share is rounded down, so the shares never sum to more than the charge.
// Errors: InvalidArgument unless epsilon > 0, 0 < delta < 1,
// noisy_metrics >= 0 and gates >= 0.
absl::StatusOr<QueryBudget> PlanQueryBudget(double epsilon, double delta,
                                            int noisy_metrics, int gates = 0);

// A budget (a principal's or a dataset's) and what has been spent from it.
// A value type: the durable ledger (storage) persists `spent()` and
// rebuilds it with FromSpent(). Not synchronised; callers serialise
// charges. A total stated as (epsilon, delta) is kept as
// capacity = (RhoFromEpsilonDelta(epsilon, delta / 2), delta / 2), mirroring
// QueryBudget: the composition of all charges then stays
// (epsilon, delta)-DP.
class BudgetLedger {
 public:
  // Errors: InvalidArgument unless epsilon > 0 and 0 < delta < 1.
  static absl::StatusOr<BudgetLedger> Create(double epsilon, double delta);
  // As Create, then records `spent` (e.g. read back from storage).
  static absl::StatusOr<BudgetLedger> FromSpent(double epsilon, double delta,
                                                const ZcdpCharge& spent);

  // Adds `charge` when it fits in what remains. Errors: ResourceExhausted
  // (message says remaining and asked) when either part would exceed the
  // capacity; the ledger is unchanged then.
  absl::Status Charge(const ZcdpCharge& charge);

  // Whether Charge(charge) would succeed.
  bool CanAfford(const ZcdpCharge& charge) const;

  const ZcdpCharge& capacity() const { return capacity_; }
  const ZcdpCharge& spent() const { return spent_; }
  // capacity - spent, rounded down, never negative.
  ZcdpCharge remaining() const;

  // For the API's Budget message: totals, spent and remaining in
  // (epsilon, delta, rho). Spent is rounded up, remaining and total down.
  ReportedCost ReportedTotal() const;
  ReportedCost ReportedSpent() const;
  ReportedCost ReportedRemaining() const;

 private:
  BudgetLedger(double epsilon, double delta, ZcdpCharge capacity)
      : epsilon_(epsilon), delta_(delta), capacity_(capacity) {}
  ReportedCost Report(const ZcdpCharge& c, Rounding rounding) const;

  double epsilon_;
  double delta_;
  ZcdpCharge capacity_;
  ZcdpCharge spent_;
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_ACCOUNTANT_H_
