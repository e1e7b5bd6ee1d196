#include "server/privacy/accountant.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace cohortd::privacy {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

absl::Status CheckEpsilonDelta(double epsilon, double delta) {
  if (!(epsilon > 0) || !std::isfinite(epsilon) || !(delta > 0) ||
      !(delta < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "need epsilon > 0 and 0 < delta < 1, got epsilon=%g delta=%g", epsilon,
        delta));
  }
  return absl::OkStatus();
}

// a + b rounded up. Adding zero is exact in IEEE-754, so it needs no margin:
// rounding it anyway made a charge equal to a whole budget exceed it.
double AddRoundedUp(double a, double b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return RoundSpend(a + b);
}

// a + b rounded up exactly (TwoSum: the rounding error of a + b is
// computed exactly; step up one ulp when the true sum is above the
// double). Basic composition of epsilons must let 0.5 + 0.5 fill a budget
// of 1, which a relative margin would refuse.
double AddExactlyUp(double a, double b) {
  if (a == 0) return b;
  if (b == 0) return a;
  const double s = a + b;
  if (!std::isfinite(s)) return s;
  const double bp = s - a;
  const double err = (a - (s - bp)) + (b - bp);
  return err > 0 ? std::nextafter(s, kInf) : s;
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
  // reference code for CKS20). Any a is a valid bound.
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
  return std::min(1.0, delta * (1 + 1e-6));
}

absl::StatusOr<double> RhoFromEpsilonDelta(double epsilon, double delta) {
  absl::Status status = CheckEpsilonDelta(epsilon, delta);
  if (!status.ok()) return status;
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
  double lo = 0,
         hi = (rho + 2 * std::sqrt(rho * -std::log(delta))) * (1 + 1e-6);
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (ZcdpDelta(rho, mid) <= delta ? hi : lo) = mid;
  }
  return rounding == Rounding::kUp ? RoundSpend(hi) : RoundRemaining(hi);
}

const std::array<double, kRdpOrderCount>& RdpOrders() {
  // Dense where budgets of tens of epsilon convert (a ~ 2-4), sparser up to
  // the orders of single small queries (a in the hundreds or thousands).
  static constexpr std::array<double, kRdpOrderCount> kOrders = {
      1.1, 1.25, 1.5, 1.75, 2,   2.25, 2.5, 2.75, 3,    3.5,  4,
      4.5, 5,    6,   7,    8,   9,    10,  12,   14,   16,   20,
      24,  28,   32,  40,   48,  56,   64,  80,   96,   112,  128,
      160, 192,  256, 320,  384, 512,  640, 768,  1024, 1536, 2048};
  return kOrders;
}

RdpCurve ZcdpCurve(double rho) {
  RdpCurve curve{};
  if (rho <= 0) return curve;
  for (int i = 0; i < kRdpOrderCount; ++i) {
    curve[i] = RoundSpend(rho * RdpOrders()[i]);
  }
  return curve;
}

double DiscreteLaplaceRdp(double b, int64_t l1, double alpha) {
  if (l1 <= 0) return 0;
  // sum_x p(x)^a p(x - d)^(1-a), p(x) = (1-r)/(1+r) r^|x|, r = e^{-1/b}:
  // split at x <= 0, 0 < x < d, x >= d (docs/privacy.md). With
  // q = r^(2a-1), in logs relative to the dominant e^{(a-1)d/b}:
  //   E = [(1 + r^{(2a-1)d}) + (1-r) q (1 - q^{d-1}) / (1-q)] / (1 + r)
  //   D_a = (a-1)d/b + ln E over (a - 1).
  const long double a = alpha;
  const long double d = static_cast<long double>(l1);
  const long double inv_b = 1.0L / b;
  const long double r = std::exp(-inv_b);
  const long double q = std::exp(-(2 * a - 1) * inv_b);
  const long double ends = 1 + std::exp(-(2 * a - 1) * d * inv_b);
  const long double middle =
      l1 > 1 ? (1 - r) * q * -std::expm1((d - 1) * std::log(q)) / (1 - q) : 0;
  const long double log_e = std::log((ends + middle) / (1 + r));
  const long double divergence = d * inv_b + log_e / (a - 1);
  // The closed form errs by far less than 1e-12 relative in long double;
  // never exceed the pure-DP bound l1 / b by more than that.
  return RoundSpend(
      static_cast<double>(std::min(divergence, d * inv_b) * (1 + 1e-12L)));
}

RdpCurve DiscreteLaplaceCurve(double b, int64_t l1) {
  RdpCurve curve{};
  for (int i = 0; i < kRdpOrderCount; ++i) {
    curve[i] = DiscreteLaplaceRdp(b, l1, RdpOrders()[i]);
  }
  return curve;
}

double PureDpRdp(double epsilon, double alpha) {
  if (epsilon <= 0) return 0;
  // ln((e^{a e} + e^{(1-a) e}) / (1 + e^e)) / (a - 1), in logs:
  // a e + ln(1 + e^{(1 - 2a) e}) - e - ln(1 + e^{-e}).
  const long double a = alpha, e = epsilon;
  const long double log_num = a * e + std::log1p(std::exp((1 - 2 * a) * e));
  const long double log_den = e + std::log1p(std::exp(-e));
  const long double divergence = (log_num - log_den) / (a - 1);
  return RoundSpend(static_cast<double>(
      std::min<long double>(std::max<long double>(divergence, 0), e) *
      (1 + 1e-12L)));
}

RdpCurve PureDpCurve(double epsilon) {
  RdpCurve curve{};
  for (int i = 0; i < kRdpOrderCount; ++i) {
    curve[i] = PureDpRdp(epsilon, RdpOrders()[i]);
  }
  return curve;
}

PrivacyCharge PrivacyCharge::FromZcdp(double rho, double delta) {
  PrivacyCharge charge;
  charge.rdp = ZcdpCurve(rho);
  charge.delta = delta;
  return charge;
}

double PrivacyCharge::Rho() const {
  double rho = 0;
  for (int i = 0; i < kRdpOrderCount; ++i) {
    rho = std::max(rho, rdp[i] / RdpOrders()[i]);
  }
  return RoundSpend(rho);
}

bool PrivacyCharge::IsZero() const {
  for (double x : rdp) {
    if (x != 0) return false;
  }
  return delta == 0 && (dp_epsilon == 0 || dp_epsilon == kInf) && dp_delta == 0;
}

PrivacyCharge Compose(const PrivacyCharge& a, const PrivacyCharge& b) {
  PrivacyCharge c;
  for (int i = 0; i < kRdpOrderCount; ++i) {
    c.rdp[i] = AddRoundedUp(a.rdp[i], b.rdp[i]);
  }
  c.delta = AddRoundedUp(a.delta, b.delta);
  c.dp_epsilon = AddExactlyUp(a.dp_epsilon, b.dp_epsilon);
  c.dp_delta = AddExactlyUp(a.dp_delta, b.dp_delta);
  return c;
}

double RdpEpsilon(const RdpCurve& rdp, double delta_approximate, double delta) {
  const double slack = delta - delta_approximate;
  if (!(slack > 0)) return kInf;
  double best = kInf;
  bool zero = true;
  for (int i = 0; i < kRdpOrderCount; ++i) {
    if (rdp[i] != 0) zero = false;
    const double a = RdpOrders()[i];
    const double eps =
        rdp[i] + std::log1p(-1 / a) - (std::log(slack) + std::log(a)) / (a - 1);
    best = std::min(best, eps);
  }
  if (zero) best = 0;
  best = std::max(best, 0.0) - std::log1p(-delta_approximate);
  // A few operations in double: far below 1e-9 relative error.
  return best == 0 ? 0 : RoundSpend(best);
}

double ChargeEpsilon(const PrivacyCharge& c, double delta) {
  double eps = RdpEpsilon(c.rdp, c.delta, delta);
  if (c.dp_delta <= delta) eps = std::min(eps, c.dp_epsilon);
  return eps;
}

int64_t RepetitionsAffordable(const PrivacyCharge& charge, double epsilon,
                              double delta) {
  auto fits = [&](int64_t n) {
    if (n == 0) return true;
    const double dn = static_cast<double>(n);
    if (charge.dp_epsilon * dn <= epsilon && charge.dp_delta * dn <= delta) {
      return true;
    }
    RdpCurve curve;
    for (int i = 0; i < kRdpOrderCount; ++i) {
      curve[i] = RoundSpend(charge.rdp[i] * dn);
    }
    return RdpEpsilon(curve, RoundSpend(charge.delta * dn), delta) <= epsilon;
  };
  int64_t lo = 0, hi = 1;
  while (hi < 10000000 && fits(hi)) hi *= 2;
  if (fits(hi)) return hi;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

absl::StatusOr<QueryBudget> PlanQueryBudget(double epsilon, double delta,
                                            int noisy_metrics, int gates) {
  absl::Status status = CheckEpsilonDelta(epsilon, delta);
  if (!status.ok()) return status;
  if (noisy_metrics < 0 || gates < 0) {
    return absl::InvalidArgumentError("noisy_metrics and gates must be >= 0");
  }
  QueryBudget budget;
  budget.family = NoiseFamily::kGaussian;
  budget.gates = gates;
  budget.delta_conversion = delta / 2;
  budget.delta_approximate = delta / 2;
  absl::StatusOr<double> rho = RhoFromEpsilonDelta(epsilon, delta / 2);
  if (!rho.ok()) return rho.status();
  budget.rho_total = *rho;
  const double share = RoundRemaining(*rho / (noisy_metrics + gates + 1));
  budget.rho_partition_selection = share;
  budget.rho_per_metric = noisy_metrics > 0 ? share : 0;
  budget.rho_per_gate = gates > 0 ? share : 0;
  const double delta_share =
      gates > 0 ? RoundRemaining(delta / 2 / (gates + 1)) : delta / 2;
  budget.delta_partition_selection = delta_share;
  budget.delta_per_gate = gates > 0 ? delta_share : 0;
  // ZcdpDelta(rho, epsilon) <= delta / 2 held for rho (with its own
  // margin), so the query is (epsilon, delta)-DP: report at most epsilon.
  absl::StatusOr<double> converted =
      EpsilonFromRho(budget.rho_total, budget.delta_conversion, Rounding::kUp);
  if (!converted.ok()) return converted.status();
  budget.reported.epsilon = std::min(epsilon, *converted);
  budget.reported.delta = delta;
  budget.reported.rho = budget.rho_total;
  budget.charge = PrivacyCharge::FromZcdp(budget.rho_total, delta / 2);
  budget.charge.dp_epsilon = budget.reported.epsilon;
  budget.charge.dp_delta = delta;
  return budget;
}

absl::StatusOr<QueryBudget> PlanLaplaceBudget(double epsilon, double delta,
                                              int noisy_metrics, int gates,
                                              double selection_share) {
  absl::Status status = CheckEpsilonDelta(epsilon, delta);
  if (!status.ok()) return status;
  if (noisy_metrics < 1 || gates < 0 || !(selection_share > 0) ||
      !(selection_share * (1 + gates) < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Laplace plan: need noisy_metrics >= 1, gates >= 0 and a selection "
        "share in (0, 1 / (1 + gates)); got %d, %d, %g",
        noisy_metrics, gates, selection_share));
  }
  QueryBudget budget;
  budget.family = NoiseFamily::kLaplace;
  budget.gates = gates;
  budget.epsilon_partition_selection =
      RoundRemaining(selection_share * epsilon);
  budget.epsilon_per_gate = gates > 0 ? budget.epsilon_partition_selection : 0;
  budget.epsilon_per_metric = RoundRemaining(
      (1 - (1 + gates) * selection_share) * epsilon / noisy_metrics);
  const double delta_share =
      gates > 0 ? RoundRemaining(delta / (gates + 1)) : delta;
  budget.delta_partition_selection = delta_share;
  budget.delta_per_gate = gates > 0 ? delta_share : 0;
  budget.delta_approximate = delta;
  const double used = budget.epsilon_partition_selection * (1 + gates) +
                      budget.epsilon_per_metric * noisy_metrics;
  budget.reported.epsilon = std::min(epsilon, RoundSpend(used));
  budget.reported.delta = delta;
  return budget;
}

absl::StatusOr<BudgetLedger> BudgetLedger::Create(double epsilon,
                                                  double delta) {
  absl::StatusOr<double> rho = RhoFromEpsilonDelta(epsilon, delta / 2);
  if (!rho.ok()) return rho.status();
  BudgetLedger ledger(epsilon, delta, *rho);
  ledger.spent_.dp_epsilon = 0;
  return ledger;
}

absl::StatusOr<BudgetLedger> BudgetLedger::FromSpent(
    double epsilon, double delta, const PrivacyCharge& spent) {
  absl::StatusOr<BudgetLedger> ledger = Create(epsilon, delta);
  if (!ledger.ok()) return ledger.status();
  bool ok = spent.delta >= 0 && spent.dp_epsilon >= 0 && spent.dp_delta >= 0;
  for (double x : spent.rdp) ok = ok && x >= 0 && std::isfinite(x);
  if (!ok) return absl::InvalidArgumentError("spent must be >= 0");
  ledger->spent_ = spent;
  return ledger;
}

ReportedCost BudgetLedger::SpentBound(const PrivacyCharge& spent) const {
  ReportedCost rdp;
  rdp.delta = (delta_ + spent.delta) / 2;
  rdp.epsilon = spent.delta < delta_
                    ? RdpEpsilon(spent.rdp, spent.delta, rdp.delta)
                    : kInf;
  if (rdp.epsilon > epsilon_) {
    // Within the budget only at the full delta: report it there.
    rdp.delta = delta_;
    rdp.epsilon = RdpEpsilon(spent.rdp, spent.delta, delta_);
  }
  rdp.rho = spent.Rho();
  ReportedCost basic{spent.dp_epsilon, spent.dp_delta, rdp.rho};
  if (spent.IsZero()) return ReportedCost{};
  const bool basic_valid = basic.delta <= delta_ && basic.epsilon < kInf;
  if (!basic_valid) return rdp;
  if (basic.epsilon < rdp.epsilon ||
      (basic.epsilon == rdp.epsilon && basic.delta < rdp.delta)) {
    return basic;
  }
  return rdp;
}

bool BudgetLedger::Fits(const PrivacyCharge& after) const {
  if (after.dp_epsilon <= epsilon_ && after.dp_delta <= delta_) return true;
  return RdpEpsilon(after.rdp, after.delta, delta_) <= epsilon_;
}

bool BudgetLedger::CanAfford(const PrivacyCharge& charge) const {
  if (!(charge.delta >= 0) || !(charge.dp_delta >= 0) ||
      !(charge.dp_epsilon >= 0)) {
    return false;
  }
  PrivacyCharge after = Compose(spent_, charge);
  // (b): the spent amount as reported, then basic composition.
  const ReportedCost before = SpentBound(spent_);
  after.dp_epsilon = AddExactlyUp(before.epsilon, charge.dp_epsilon);
  after.dp_delta = AddExactlyUp(before.delta, charge.dp_delta);
  return Fits(after);
}

absl::Status BudgetLedger::Charge(const PrivacyCharge& charge) {
  if (!CanAfford(charge)) {
    const ReportedCost left = ReportedRemaining();
    return absl::ResourceExhaustedError(absl::StrFormat(
        "privacy budget exceeded: remaining epsilon=%.6g delta=%.3g, asked "
        "epsilon=%.6g delta=%.3g",
        left.epsilon, left.delta, ChargeEpsilon(charge, delta_),
        charge.dp_delta));
  }
  PrivacyCharge after = Compose(spent_, charge);
  const ReportedCost before = SpentBound(spent_);
  after.dp_epsilon = AddExactlyUp(before.epsilon, charge.dp_epsilon);
  after.dp_delta = AddExactlyUp(before.delta, charge.dp_delta);
  spent_ = after;
  return absl::OkStatus();
}

double BudgetLedger::ReportQuantum(double total) {
  return std::pow(10.0, std::floor(std::log10(total)) - 7);
}

ReportedCost BudgetLedger::ReportedTotal() const {
  return {epsilon_, delta_, rho_total_};
}

ReportedCost BudgetLedger::ReportedSpent() const {
  ReportedCost spent = SpentBound(spent_);
  // Up to the decimal grid: spent + remaining is then exact on it.
  const double qe = ReportQuantum(epsilon_), qd = ReportQuantum(delta_);
  auto up = [](double x, double q) {
    if (x == 0 || !std::isfinite(x)) return x;  // infinite: capped below
    // The smallest grid point whose double is >= x.
    double n = std::round(x / q);
    while (n > 0 && (n - 1) * q >= x) --n;
    while (n * q < x) ++n;
    return n * q;
  };
  spent.epsilon = std::min(up(spent.epsilon, qe), epsilon_);
  spent.delta = std::min(up(spent.delta, qd), delta_);
  // rho (already rounded up by Rho()) is the zCDP view, not additive after
  // pure-DP spending: not put on the grid.
  return spent;
}

ReportedCost BudgetLedger::ReportedRemaining() const {
  const ReportedCost spent = ReportedSpent();
  // In grid units, so that the subtraction is exact before scaling.
  auto minus = [](double total, double used) {
    const double q = ReportQuantum(total);
    const double n = std::round(total / q) - std::round(used / q);
    return std::max(0.0, n) * q;
  };
  return {minus(epsilon_, spent.epsilon), minus(delta_, spent.delta),
          RoundRemaining(rho_total_ - spent.rho)};
}

}  // namespace cohortd::privacy
