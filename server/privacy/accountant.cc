#include "server/privacy/accountant.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace cohortd::privacy {
namespace {

absl::Status CheckEpsilonDelta(double epsilon, double delta) {
  if (!(epsilon > 0) || !std::isfinite(epsilon) || !(delta > 0) ||
      !(delta < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "need epsilon > 0 and 0 < delta < 1, got epsilon=%g delta=%g", epsilon,
        delta));
  }
  return absl::OkStatus();
}

}  // namespace

double RoundSpend(double x) { return x * (1 + kRoundingMargin); }
double RoundRemaining(double x) {
  return std::max(0.0, x * (1 - kRoundingMargin));
}

double GaussianRho(double l2_sensitivity_squared, double sigma2) {
  return RoundSpend(l2_sensitivity_squared / (2 * sigma2));
}

double PureDpRho(double epsilon) { return RoundSpend(epsilon * epsilon / 2); }

double ZcdpDelta(double rho, double epsilon) {
  if (rho <= 0) return 0;
  // Minimise over a > 1 by bisection on the derivative of the exponent,
  // (2a - 1) rho - epsilon + ln(1 - 1/a), which increases in a (Steinke's
  // reference code for CKS20). a >= 1.01 avoids cancellation; any a is a
  // valid bound, so an imperfect search only costs tightness.
  double lo = 1.01, hi = (epsilon + 1) / (2 * rho) + 2;
  for (int i = 0; i < 200; ++i) {
    const double a = (lo + hi) / 2;
    const double derivative =
        (2 * a - 1) * rho - epsilon + std::log1p(-1.0 / a);
    (derivative < 0 ? lo : hi) = a;
  }
  const double a = (lo + hi) / 2;
  const double delta =
      std::exp((a - 1) * (a * rho - epsilon) + a * std::log1p(-1.0 / a)) /
      (a - 1);
  // The few operations above err by far less than 1e-6 relative.
  return std::min(1.0, delta * (1 + 1e-6));
}

absl::StatusOr<double> RhoFromEpsilonDelta(double epsilon, double delta) {
  absl::Status status = CheckEpsilonDelta(epsilon, delta);
  if (!status.ok()) return status;
  // ZcdpDelta increases in rho: keep ZcdpDelta(lo) <= delta while
  // bisecting; the standard bound's rho always qualifies.
  const double l = -std::log(delta);
  const double standard =
      std::pow(std::sqrt(l + epsilon) - std::sqrt(l), 2) * (1 - 1e-6);
  double lo = standard, hi = epsilon + 1;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (ZcdpDelta(mid, epsilon) <= delta ? lo : hi) = mid;
  }
  return RoundRemaining(lo);
}

absl::StatusOr<double> EpsilonFromRho(double rho, double delta,
                                      Rounding rounding) {
  if (!(rho >= 0) || !std::isfinite(rho) || !(delta > 0) || !(delta < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "need rho >= 0 and 0 < delta < 1, got %g, %g", rho, delta));
  }
  if (rho == 0) return 0.0;
  // ZcdpDelta decreases in epsilon: keep ZcdpDelta(hi) <= delta; the
  // standard bound's epsilon always qualifies.
  double lo = 0,
         hi = (rho + 2 * std::sqrt(rho * -std::log(delta))) * (1 + 1e-6);
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (ZcdpDelta(rho, mid) <= delta ? hi : lo) = mid;
  }
  return rounding == Rounding::kUp ? RoundSpend(hi) : RoundRemaining(hi);
}

namespace {

// a + b rounded up. Adding zero is exact in IEEE-754, so it needs no margin:
// rounding it anyway made a charge equal to a whole budget (one query at
// max_epsilon against a budget of exactly that) exceed the budget it equals.
double AddRoundedUp(double a, double b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return RoundSpend(a + b);
}

}  // namespace

ZcdpCharge Compose(const ZcdpCharge& a, const ZcdpCharge& b) {
  return {AddRoundedUp(a.rho, b.rho), AddRoundedUp(a.delta, b.delta)};
}

ZcdpCharge QueryBudget::Charge() const {
  return {rho_total, delta_approximate};
}

ReportedCost QueryBudget::Reported() const {
  ReportedCost cost;
  cost.rho = rho_total;
  cost.epsilon = *EpsilonFromRho(rho_total, delta_conversion, Rounding::kUp);
  cost.delta = RoundSpend(delta_conversion + delta_approximate);
  return cost;
}

absl::StatusOr<QueryBudget> PlanQueryBudget(double epsilon, double delta,
                                            int noisy_metrics, int gates) {
  absl::Status status = CheckEpsilonDelta(epsilon, delta);
  if (!status.ok()) return status;
  if (noisy_metrics < 0 || gates < 0) {
    return absl::InvalidArgumentError("noisy_metrics and gates must be >= 0");
  }
  QueryBudget budget;
  budget.gates = gates;
  budget.delta_conversion = delta / 2;
  budget.delta_approximate = delta / 2;
  absl::StatusOr<double> rho = RhoFromEpsilonDelta(epsilon, delta / 2);
  if (!rho.ok()) return rho.status();
  budget.rho_total = *rho;
  // Shares are rounded down so that their sum never exceeds the charge.
  const double share = RoundRemaining(*rho / (noisy_metrics + gates + 1));
  budget.rho_partition_selection = share;
  budget.rho_per_metric = noisy_metrics > 0 ? share : 0;
  budget.rho_per_gate = gates > 0 ? share : 0;
  const double delta_share =
      gates > 0 ? RoundRemaining(delta / 2 / (gates + 1)) : delta / 2;
  budget.delta_partition_selection = delta_share;
  budget.delta_per_gate = gates > 0 ? delta_share : 0;
  return budget;
}

absl::StatusOr<BudgetLedger> BudgetLedger::Create(double epsilon,
                                                  double delta) {
  absl::StatusOr<double> rho = RhoFromEpsilonDelta(epsilon, delta / 2);
  if (!rho.ok()) return rho.status();
  // delta / 2 is exact in binary floating point (as in PlanQueryBudget), so
  // the capacity equals the charge of one query at (epsilon, delta) exactly;
  // rounding it down would refuse that query.
  return BudgetLedger(epsilon, delta, ZcdpCharge{*rho, delta / 2});
}

absl::StatusOr<BudgetLedger> BudgetLedger::FromSpent(double epsilon,
                                                     double delta,
                                                     const ZcdpCharge& spent) {
  absl::StatusOr<BudgetLedger> ledger = Create(epsilon, delta);
  if (!ledger.ok()) return ledger.status();
  if (!(spent.rho >= 0) || !(spent.delta >= 0)) {
    return absl::InvalidArgumentError("spent must be >= 0");
  }
  ledger->spent_ = spent;
  return ledger;
}

bool BudgetLedger::CanAfford(const ZcdpCharge& charge) const {
  const ZcdpCharge after = Compose(spent_, charge);
  return charge.rho >= 0 && charge.delta >= 0 && after.rho <= capacity_.rho &&
         after.delta <= capacity_.delta;
}

absl::Status BudgetLedger::Charge(const ZcdpCharge& charge) {
  if (!CanAfford(charge)) {
    const ZcdpCharge left = remaining();
    return absl::ResourceExhaustedError(absl::StrFormat(
        "privacy budget exceeded: remaining rho=%.6g delta=%.3g, asked "
        "rho=%.6g delta=%.3g",
        left.rho, left.delta, charge.rho, charge.delta));
  }
  spent_ = Compose(spent_, charge);
  return absl::OkStatus();
}

ZcdpCharge BudgetLedger::remaining() const {
  return {RoundRemaining(capacity_.rho - spent_.rho),
          RoundRemaining(capacity_.delta - spent_.delta)};
}

ReportedCost BudgetLedger::Report(const ZcdpCharge& c,
                                  Rounding rounding) const {
  // The conversion delta' is the fixed half of the stated delta.
  ReportedCost cost;
  cost.rho = c.rho;
  cost.epsilon = *EpsilonFromRho(c.rho, delta_ / 2, rounding);
  cost.delta = c.delta + delta_ / 2;
  return cost;
}

ReportedCost BudgetLedger::ReportedTotal() const {
  return Report(capacity_, Rounding::kDown);
}
ReportedCost BudgetLedger::ReportedSpent() const {
  if (spent_.rho == 0 && spent_.delta == 0) return ReportedCost{};
  return Report(spent_, Rounding::kUp);
}
ReportedCost BudgetLedger::ReportedRemaining() const {
  return Report(remaining(), Rounding::kDown);
}

}  // namespace cohortd::privacy
