// Privacy accounting: an approximate Renyi-DP ledger over a fixed grid of
// orders, with basic composition of (epsilon, delta) guarantees kept
// alongside; whichever of the two valid bounds is tighter is used.
//
// Unit of charge: a `PrivacyCharge`, holding
//  * `rdp[i]`: an upper bound on the Renyi divergence of order
//    RdpOrders()[i] (Mironov 2017) of the mechanism conditioned on an event
//    of probability >= 1 - `delta` on each side (approximate RDP, as
//    approximate zCDP in Bun & Steinke 2016 "BS16" Def. 8.1, one curve for
//    all orders). Pure mechanisms have delta = 0; only partition selection
//    and contributor gates carry one. Curves and deltas add under
//    composition (BS16 Lemma 8.3; Mironov Prop. 1);
//  * `dp_epsilon`, `dp_delta`: an (epsilon, delta)-DP guarantee of the same
//    charge, composed basically (epsilons and deltas add; Dwork & Roth
//    Thm 3.16). Infinite epsilon = none known.
// Curves: Gaussian rho * alpha (CKS20 Thm 14 via zCDP); discrete Laplace
// its exact curve (DiscreteLaplaceRdp); any pure epsilon-DP pair the
// randomized-response curve (PureDpRdp; Kairouz, Oh & Viswanath 2015: an
// epsilon-DP pair is a post-processing of randomized response, and Renyi
// divergence cannot grow under post-processing).
//
// Conversion to (epsilon, delta)-DP (RdpEpsilon): for approximate part
// delta_a and a target delta > delta_a,
//   epsilon = min over the orders of
//     R(a) + ln(1 - 1/a) - (ln(delta - delta_a) + ln a) / (a - 1)
//             + ln(1 / (1 - delta_a))
// (Canonne, Kamath & Steinke 2020 "CKS20" Prop. 12 / Balle et al. 2020
// Thm 21, the best known RDP -> DP conversion; the last term pays for
// conditioning on the approximate part's event, BS16 Lemma 8.8's argument).
//
// Rounding is conservative: anything spent is rounded up, anything that
// remains (or is granted) down, by kRoundingMargin relative.
//
// All functions are pure and thread-safe; BudgetLedger is a value type.
#ifndef COHORTD_SERVER_PRIVACY_ACCOUNTANT_H_
#define COHORTD_SERVER_PRIVACY_ACCOUNTANT_H_

#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"

namespace cohortd::privacy {

// Relative margin applied when rounding up or down (see file comment).
inline constexpr double kRoundingMargin = 1e-9;

// Rounds a spent quantity up / a remaining quantity down by the margin.
double RoundSpend(double x);
double RoundRemaining(double x);

// ---------------------------------------------------------------- zCDP
// Kept for the Gaussian family's planning (one query's Gaussians compose to
// a single rho) and for reading zCDP ledgers stored before the RDP ledger.

// rho of the (discrete) Gaussian mechanism: Delta_2^2 / (2 sigma^2)
// (CKS20 Thm 14; BS16 Prop. 1.6), rounded up. Requires sigma2 > 0.
double GaussianRho(double l2_sensitivity_squared, double sigma2);

// rho of a pure epsilon-DP mechanism: epsilon^2 / 2 (BS16 Prop. 1.4),
// rounded up.
double PureDpRho(double epsilon);

// The delta' of CKS20 Cor. 13 for rho and epsilon (rounded up), and the
// largest rho whose delta' is <= delta at epsilon (rounded down). Errors:
// InvalidArgument unless epsilon > 0 and 0 < delta < 1.
double ZcdpDelta(double rho, double epsilon);
absl::StatusOr<double> RhoFromEpsilonDelta(double epsilon, double delta);

// The smallest epsilon with ZcdpDelta(rho, epsilon) <= delta, rounded up
// (a cost) or down (a remaining allowance). Errors: InvalidArgument unless
// rho >= 0 and 0 < delta < 1.
enum class Rounding { kUp, kDown };
absl::StatusOr<double> EpsilonFromRho(double rho, double delta,
                                      Rounding rounding);

// ---------------------------------------------------------------- RDP
// The fixed grid of orders (> 1) the ledger keeps, ascending. Changing it
// changes the stored ledger encoding (kRdpOrdersVersion).
inline constexpr int kRdpOrderCount = 44;
inline constexpr int kRdpOrdersVersion = 1;
const std::array<double, kRdpOrderCount>& RdpOrders();

using RdpCurve = std::array<double, kRdpOrderCount>;

// rho * alpha at every order (a rho-zCDP mechanism), rounded up.
RdpCurve ZcdpCurve(double rho);

// The exact Renyi divergence of order `alpha` > 1 between the discrete
// Laplace of scale b (P[x] ~ exp(-|x|/b)) and its shift by the integer
// `l1` >= 0, rounded up. For a vector of independent discrete Laplaces
// whose shifts sum to at most l1 this is also the bound: the divergence is
// convex in the shift and 0 at 0 (log of a sum of log-convex terms), hence
// superadditive, so the whole shift on one coordinate is the worst case.
double DiscreteLaplaceRdp(double b, int64_t l1, double alpha);
RdpCurve DiscreteLaplaceCurve(double b, int64_t l1);

// The Renyi divergence of order alpha of randomized response with
// parameter epsilon, (1/(a-1)) ln((e^{a eps} + e^{(1-a) eps}) / (1 + e^eps)):
// a bound for every epsilon-DP pair (see file comment), rounded up.
double PureDpRdp(double epsilon, double alpha);
RdpCurve PureDpCurve(double epsilon);

// One charge to a ledger (see file comment).
struct PrivacyCharge {
  RdpCurve rdp{};
  double delta = 0;  // approximate part of the RDP guarantee
  double dp_epsilon = std::numeric_limits<double>::infinity();
  double dp_delta = 0;

  // delta-approximate rho-zCDP as a charge (a stored rho is the curve
  // rho * alpha); no basic-composition guarantee.
  static PrivacyCharge FromZcdp(double rho, double delta);
  // The smallest rho with rdp <= rho * alpha at every order (what the API's
  // `rho` field reports), rounded up.
  double Rho() const;
  bool IsZero() const;
};

// Composition: curves, deltas and the basic (epsilon, delta) add, rounded
// up (adding zero is exact, so a charge equal to a whole capacity fits).
PrivacyCharge Compose(const PrivacyCharge& a, const PrivacyCharge& b);

// The (epsilon, delta)-DP epsilon of an approximate-RDP curve at `delta`
// by the conversion in the file comment, rounded up; +infinity when
// delta <= delta_approximate. Takes the minimum over the grid's orders.
double RdpEpsilon(const RdpCurve& rdp, double delta_approximate, double delta);

// The best (epsilon, delta)-DP epsilon of `c` at `delta`: the smaller of
// the RDP conversion and, when c.dp_delta <= delta, c.dp_epsilon.
double ChargeEpsilon(const PrivacyCharge& c, double delta);

// The largest N such that N copies of `charge` fit a fresh budget of
// (epsilon, delta) by the RDP bound or by basic composition (a lower
// bound on what BudgetLedger accepts); capped at 10^7.
int64_t RepetitionsAffordable(const PrivacyCharge& charge, double epsilon,
                              double delta);

// A privacy cost as the public API reports it (proto PrivacyCost): the
// release (or the spending) is (epsilon, delta)-DP; `rho` is
// PrivacyCharge::Rho() of the approximate-RDP part, for reference.
struct ReportedCost {
  double epsilon = 0;
  double delta = 0;
  double rho = 0;
};

// How one query's (epsilon, delta) is split, for either noise family
// (query_release.h chooses one).
//
// Gaussian family (PlanQueryBudget): half of delta pays the zCDP -> DP
// conversion and half is the approximate part (delta_approximate), and
//   rho_total = RhoFromEpsilonDelta(epsilon, delta / 2),
// shared equally by partition selection, each contributor gate and each
// noisy metric (ACCOUNTS reuses partition selection's noisy count). All
// their widths scale as 1 / sqrt(share), so the split minimising the
// widest relative interval is the equal one. delta_approximate is split
// equally by partition selection and each gate. Reported epsilon =
// min(epsilon, EpsilonFromRho(rho_total, delta / 2)): never above the
// request.
//
// Laplace family (PlanLaplaceBudget): pure-DP shares composed basically:
// epsilon_partition_selection = epsilon_per_gate = s epsilon, and each of
// the m noisy metrics (ACCOUNTS included: the optimal selection releases
// no count) (1 - (1 + gates) s) epsilon / m; delta is split equally by
// the selection and the gates (optimal partition selection). The share s
// is chosen by the caller. The charge is completed by the caller from the
// mechanisms' exact curves.
//
// Per-metric plan (kMixed, query_release.h): Gaussian-threshold selection
// and gates and discrete Gaussian metrics at rho_per_metric each, except
// the metrics with metric_epsilon[i] > 0, which have discrete Laplace
// noise of that epsilon; the whole is charged by its composed RDP curve
// (delta_approximate = delta / 2 for selection and gates, as the
// Gaussian family) and converted at delta. Built by the caller.
enum class NoiseFamily { kGaussian, kLaplace, kMixed };
struct QueryBudget {
  NoiseFamily family = NoiseFamily::kGaussian;
  double rho_total = 0;
  double rho_partition_selection = 0;
  double rho_per_metric = 0;
  double rho_per_gate = 0;
  double epsilon_partition_selection = 0;  // Laplace family
  double epsilon_per_metric = 0;           // Laplace family
  double epsilon_per_gate = 0;             // Laplace family
  double delta_partition_selection = 0;    // the cohort selection's share
  double delta_per_gate = 0;               // each contributor gate's share
  double delta_approximate = 0;            // approximate part of the charge
  double delta_conversion = 0;             // Gaussian family
  int gates = 0;
  // kMixed: per metric, the epsilon of its discrete Laplace noise, or 0
  // for a discrete Gaussian at rho_per_metric (ACCOUNTS: 0, free).
  std::vector<double> metric_epsilon;
  // What the ledger charges, and the cost the API reports.
  PrivacyCharge charge;
  ReportedCost reported;

  const PrivacyCharge& Charge() const { return charge; }
  const ReportedCost& Reported() const { return reported; }
};

// The Gaussian family's plan for `noisy_metrics` >= 0 metrics that need
// their own noise and `gates` >= 0 contributor gates. Every share is
// rounded down. Errors: InvalidArgument unless epsilon > 0, 0 < delta < 1,
// noisy_metrics >= 0 and gates >= 0.
absl::StatusOr<QueryBudget> PlanQueryBudget(double epsilon, double delta,
                                            int noisy_metrics, int gates = 0);

// The Laplace family's shares (charge left empty, reported = (epsilon
// actually shared, delta)). Errors: InvalidArgument unless epsilon > 0,
// 0 < delta < 1, noisy_metrics >= 1, gates >= 0 and
// 0 < selection_share < 1 / (1 + gates).
absl::StatusOr<QueryBudget> PlanLaplaceBudget(double epsilon, double delta,
                                              int noisy_metrics, int gates,
                                              double selection_share);

// A budget (a principal's or a dataset's) stated as (epsilon, delta), and
// what has been spent from it. A value type: the durable ledger (storage)
// persists `spent()` and rebuilds it with FromSpent(). Not synchronised;
// callers serialise charges.
//
// A charge fits iff, after it, the composition of everything charged is
// (epsilon, delta)-DP by one of two valid bounds:
//  (a) the RDP curve and approximate delta, converted at the full delta;
//  (b) basic composition of the spent amount as reported before the
//      charge (itself a valid bound) with the charge's own (dp_epsilon,
//      dp_delta); the ledger keeps this hybrid in spent().dp_*.
// Reported spent = the better of (a) converted at conversion delta
// (delta - delta_a) / 2, i.e. (epsilon_a, (delta + delta_a) / 2), and (b):
// the one with the smaller epsilon (then the smaller delta). Remaining =
// total - spent in both units, so spent + remaining = total exactly on a
// decimal grid (ReportQuantum), and any query whose own (epsilon, delta)
// is within the reported remaining fits, by (b).
class BudgetLedger {
 public:
  // Errors: InvalidArgument unless epsilon > 0 and 0 < delta < 1.
  static absl::StatusOr<BudgetLedger> Create(double epsilon, double delta);
  // As Create, then records `spent` (e.g. read back from storage; a
  // ledger stored before this format has no basic bound: infinite
  // dp_epsilon). Errors: also InvalidArgument for a negative spend.
  static absl::StatusOr<BudgetLedger> FromSpent(double epsilon, double delta,
                                                const PrivacyCharge& spent);

  // Adds `charge` when it fits (see class comment). Errors:
  // ResourceExhausted (message says remaining and asked); the ledger is
  // unchanged then.
  absl::Status Charge(const PrivacyCharge& charge);

  // Whether Charge(charge) would succeed.
  bool CanAfford(const PrivacyCharge& charge) const;

  const PrivacyCharge& spent() const { return spent_; }
  double epsilon() const { return epsilon_; }
  double delta() const { return delta_; }

  // For the API's Budget message. Total is the stated (epsilon, delta) and
  // RhoFromEpsilonDelta(epsilon, delta/2); spent epsilon and delta are
  // rounded up to the decimal grid and remaining = total - spent on it.
  // rho, the zCDP view (PrivacyCharge::Rho), is not on the grid and its
  // remaining is floored at 0 (a pure-DP-heavy spend can exceed it).
  ReportedCost ReportedTotal() const;
  ReportedCost ReportedSpent() const;
  ReportedCost ReportedRemaining() const;

  // The decimal grid of reports: 10^(floor(log10(x)) - 7) for a total x.
  static double ReportQuantum(double total);

 private:
  BudgetLedger(double epsilon, double delta, double rho_total)
      : epsilon_(epsilon), delta_(delta), rho_total_(rho_total) {}
  // The better of the two spent bounds for `spent`, unrounded.
  ReportedCost SpentBound(const PrivacyCharge& spent) const;
  bool Fits(const PrivacyCharge& after) const;

  double epsilon_;
  double delta_;
  double rho_total_;
  PrivacyCharge spent_;
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_ACCOUNTANT_H_
