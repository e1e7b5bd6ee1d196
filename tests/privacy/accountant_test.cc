#include "server/privacy/accountant.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;

TEST(AccountantTest, RhoFromEpsilonDeltaBeatsTheStandardBoundAndRoundTrips) {
  ASSERT_OK_AND_ASSIGN(double rho, RhoFromEpsilonDelta(1.0, 5e-8));
  // The standard bound: (sqrt(L + eps) - sqrt(L))^2 with L = ln(2e7).
  const double l = std::log(2e7);
  const double standard = std::pow(std::sqrt(l + 1) - std::sqrt(l), 2);
  EXPECT_NEAR(standard, 0.014444, 1e-6);
  EXPECT_GT(rho, standard);
  EXPECT_LT(rho, 2 * standard);
  // Its delta at epsilon = 1 is within the grant, and a little more rho
  // would not be.
  EXPECT_LE(ZcdpDelta(rho, 1.0), 5e-8);
  EXPECT_GT(ZcdpDelta(rho * 1.01, 1.0), 5e-8);
  // Converting back never exceeds the epsilon granted.
  ASSERT_OK_AND_ASSIGN(double eps, EpsilonFromRho(rho, 5e-8, Rounding::kUp));
  EXPECT_LE(eps, 1.0 + 1e-6);
  EXPECT_GE(eps, 1.0 - 1e-3);
}

TEST(AccountantTest, ZcdpDeltaIsNeverWorseThanTheStandardBound) {
  for (double rho : {0.001, 0.01, 0.1, 1.0}) {
    for (double delta : {1e-9, 1e-6, 1e-3}) {
      const double standard_eps =
          rho + 2 * std::sqrt(rho * std::log(1 / delta));
      EXPECT_LE(ZcdpDelta(rho, standard_eps), delta * (1 + 1e-5));
    }
  }
}

TEST(AccountantTest, EpsilonFromRhoRoundsInTheRequestedDirection) {
  ASSERT_OK_AND_ASSIGN(double up, EpsilonFromRho(0.5, 1e-6, Rounding::kUp));
  ASSERT_OK_AND_ASSIGN(double down, EpsilonFromRho(0.5, 1e-6, Rounding::kDown));
  EXPECT_GT(up, down);
  EXPECT_LE(ZcdpDelta(0.5, up), 1e-6);
  EXPECT_LT(up, 0.5 + 2 * std::sqrt(0.5 * std::log(1e6)));
  EXPECT_NEAR(up, down, 1e-7);
}

TEST(AccountantTest, MechanismRhos) {
  // Delta_2^2 / (2 sigma^2) and eps^2 / 2, rounded up.
  EXPECT_GE(GaussianRho(16, 100), 0.08);
  EXPECT_NEAR(GaussianRho(16, 100), 0.08, 1e-9);
  EXPECT_GE(PureDpRho(1.0), 0.5);
  EXPECT_NEAR(PureDpRho(1.0), 0.5, 1e-8);
}

TEST(AccountantTest, CompositionAddsEveryPart) {
  PrivacyCharge a = PrivacyCharge::FromZcdp(0.1, 1e-8);
  a.dp_epsilon = 0.5;
  a.dp_delta = 1e-8;
  PrivacyCharge b = PrivacyCharge::FromZcdp(0.2, 2e-8);
  b.dp_epsilon = 0.25;
  b.dp_delta = 2e-8;
  const PrivacyCharge c = Compose(a, b);
  for (int i = 0; i < kRdpOrderCount; ++i) {
    EXPECT_GE(c.rdp[i], 0.3 * RdpOrders()[i]);
    EXPECT_NEAR(c.rdp[i], 0.3 * RdpOrders()[i], 1e-6 * RdpOrders()[i]);
  }
  EXPECT_GE(c.delta, 3e-8);
  EXPECT_GE(c.dp_epsilon, 0.75);
  EXPECT_NEAR(c.dp_epsilon, 0.75, 1e-8);
  EXPECT_GE(c.dp_delta, 3e-8);
  EXPECT_NEAR(c.Rho(), 0.3, 1e-8);
}

// The closed form of the discrete Laplace's Renyi divergence equals the
// direct sum over the support, and sits below the pure-DP bound l1 / b.
TEST(AccountantTest, DiscreteLaplaceCurveMatchesDirectSummation) {
  for (double b : {0.7, 2.0, 10.0}) {
    for (int64_t d : {1, 3, 8}) {
      for (double alpha : {1.5, 2.0, 8.0, 64.0}) {
        // In logs: p(x)^a q(x)^(1-a) = exp(a ln p + (1-a) ln q), and the
        // normalisers cancel (a + 1 - a = 1).
        const long double r = std::exp(-1.0L / b);
        const long double log_norm = std::log((1 - r) / (1 + r));
        long double sum = 0;
        for (int64_t x = -4000; x <= 4000; ++x) {
          const long double log_p = log_norm - std::llabs(x) / b;
          const long double log_q = log_norm - std::llabs(x - d) / b;
          sum += std::exp(alpha * log_p + (1 - alpha) * log_q);
        }
        const double direct = static_cast<double>(std::log(sum) / (alpha - 1));
        const double closed = DiscreteLaplaceRdp(b, d, alpha);
        EXPECT_GE(closed, direct * (1 - 1e-9)) << b << " " << d << " " << alpha;
        EXPECT_NEAR(closed, direct, 1e-7 * (1 + direct))
            << b << " " << d << " " << alpha;
        EXPECT_LE(closed, d / b * (1 + 1e-8));
      }
    }
  }
}

// Randomized response: the curve of every epsilon-DP pair; it tends to
// epsilon at large orders and to alpha eps^2 / 2 for small epsilon.
TEST(AccountantTest, PureDpCurveIsRandomizedResponse) {
  EXPECT_LE(PureDpRdp(1.0, 2048), 1.0 * (1 + 1e-8));
  EXPECT_GT(PureDpRdp(1.0, 2048), 0.99);
  EXPECT_NEAR(PureDpRdp(0.01, 2), 2 * 0.01 * 0.01 / 2, 1e-6);
  // Direct: (e^{2 eps} + e^{-eps}) / (1 + e^eps) at alpha = 2.
  const double e = 0.7;
  EXPECT_NEAR(PureDpRdp(e, 2),
              std::log((std::exp(2 * e) + std::exp(-e)) / (1 + std::exp(e))),
              1e-9);
}

// The conversion reproduces the zCDP one (CKS20 Cor. 13 is Prop. 12 on the
// curve rho * alpha) up to the grid of orders.
TEST(AccountantTest, RdpConversionMatchesZcdpOnAGaussianCurve) {
  for (double rho : {0.001, 0.0128, 0.1, 1.0, 5.0}) {
    ASSERT_OK_AND_ASSIGN(double zcdp, EpsilonFromRho(rho, 1e-6, Rounding::kUp));
    const double rdp = RdpEpsilon(ZcdpCurve(rho), 0, 1e-6);
    EXPECT_GE(rdp, zcdp * (1 - 1e-6)) << rho;
    EXPECT_LE(rdp, zcdp * 1.02) << rho;
  }
  EXPECT_EQ(RdpEpsilon(ZcdpCurve(0.1), 1e-6, 1e-6),
            std::numeric_limits<double>::infinity());
}

TEST(AccountantTest, RejectsBadParameters) {
  EXPECT_THAT(RhoFromEpsilonDelta(0, 1e-7),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RhoFromEpsilonDelta(1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RhoFromEpsilonDelta(1, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(EpsilonFromRho(-1, 1e-7, Rounding::kUp),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PlanQueryBudget(1, 1e-7, -1),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(QueryBudgetTest, SplitsRhoEquallyAndNeverOverspends) {
  ASSERT_OK_AND_ASSIGN(QueryBudget b, PlanQueryBudget(1.0, 1e-7, 3));
  EXPECT_DOUBLE_EQ(b.delta_conversion, 5e-8);
  EXPECT_DOUBLE_EQ(b.delta_partition_selection, 5e-8);
  EXPECT_LE(b.rho_partition_selection + 3 * b.rho_per_metric, b.rho_total);
  EXPECT_NEAR(b.rho_per_metric, b.rho_total / 4, 1e-6 * b.rho_total);
  EXPECT_NEAR(b.Charge().Rho(), b.rho_total, 1e-8 * b.rho_total);
  EXPECT_EQ(b.Charge().delta, 5e-8);
  const ReportedCost cost = b.Reported();
  EXPECT_LE(cost.epsilon, 1.0 + 1e-8);
  EXPECT_GE(cost.epsilon, 0.999);
  EXPECT_NEAR(cost.delta, 1e-7, 1e-15);
  EXPECT_EQ(cost.rho, b.rho_total);
}

TEST(QueryBudgetTest, NoMetricsGivesAllToPartitionSelection) {
  ASSERT_OK_AND_ASSIGN(QueryBudget b, PlanQueryBudget(1.0, 1e-7, 0));
  EXPECT_EQ(b.rho_per_metric, 0);
  EXPECT_LE(b.rho_partition_selection, b.rho_total);
  EXPECT_NEAR(b.rho_partition_selection, b.rho_total, 1e-8);
}

TEST(QueryBudgetTest, ContributorGatesGetTheirOwnRhoAndDeltaShares) {
  ASSERT_OK_AND_ASSIGN(QueryBudget b, PlanQueryBudget(1.0, 1e-7, 3, 2));
  // 1 selection + 2 gates + 3 metrics = 6 rho shares; the approximate
  // delta (half the query's) in 1 + 2 shares; the charge is unchanged.
  EXPECT_EQ(b.gates, 2);
  EXPECT_NEAR(b.rho_per_gate, b.rho_total / 6, 1e-6 * b.rho_total);
  EXPECT_EQ(b.rho_per_gate, b.rho_per_metric);
  EXPECT_LE(
      b.rho_partition_selection + 2 * b.rho_per_gate + 3 * b.rho_per_metric,
      b.rho_total);
  EXPECT_NEAR(b.delta_per_gate, 5e-8 / 3, 1e-16);
  EXPECT_LE(b.delta_partition_selection + 2 * b.delta_per_gate, 5e-8);
  EXPECT_NEAR(b.Charge().Rho(), b.rho_total, 1e-8 * b.rho_total);
  EXPECT_EQ(b.Charge().delta, 5e-8);
  EXPECT_NEAR(b.Reported().delta, 1e-7, 1e-15);
  ASSERT_OK_AND_ASSIGN(QueryBudget none, PlanQueryBudget(1.0, 1e-7, 3));
  EXPECT_EQ(none.rho_per_gate, 0);
  EXPECT_EQ(none.delta_per_gate, 0);
  EXPECT_EQ(none.delta_partition_selection, 5e-8);
  EXPECT_THAT(PlanQueryBudget(1, 1e-7, 1, -1),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(BudgetLedgerTest, ChargesUntilExhaustedThenRefusesWithoutChange) {
  ASSERT_OK_AND_ASSIGN(BudgetLedger ledger, BudgetLedger::Create(2.0, 1e-6));
  ASSERT_OK_AND_ASSIGN(QueryBudget q, PlanQueryBudget(1.0, 1e-7, 1));
  int charged = 0;
  while (ledger.CanAfford(q.Charge())) {
    ASSERT_OK(ledger.Charge(q.Charge()));
    ++charged;
    ASSERT_LT(charged, 1000);
  }
  // The zCDP ledger afforded 4 (capacity rho 0.0834 at delta/2, 0.0192
  // each); the RDP ledger converts at the whole delta less the spent
  // approximate part.
  EXPECT_GE(charged, 4);
  const PrivacyCharge before = ledger.spent();
  EXPECT_THAT(
      ledger.Charge(q.Charge()),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("remaining")));
  EXPECT_EQ(ledger.spent().rdp, before.rdp);
  EXPECT_EQ(ledger.spent().dp_epsilon, before.dp_epsilon);
  EXPECT_LE(ledger.ReportedSpent().epsilon, 2.0);
}

// A budget stated as exactly one query's (epsilon, delta) affords that
// query once, and then not a second one: the ledger never over-spends.
TEST(BudgetLedgerTest, BudgetOfOneQueryAffordsExactlyThatQuery) {
  for (double epsilon : {0.1, 1.0, 2.0, 7.5}) {
    for (double delta : {1e-9, 1e-7, 1e-5}) {
      for (int metrics : {0, 1, 5}) {
        ASSERT_OK_AND_ASSIGN(BudgetLedger ledger,
                             BudgetLedger::Create(epsilon, delta));
        ASSERT_OK_AND_ASSIGN(QueryBudget q,
                             PlanQueryBudget(epsilon, delta, metrics));
        EXPECT_OK(ledger.Charge(q.Charge()))
            << "epsilon " << epsilon << " delta " << delta;
        EXPECT_LE(ledger.ReportedSpent().epsilon, epsilon);
        EXPECT_LE(ledger.ReportedSpent().delta, delta);
        EXPECT_THAT(ledger.Charge(q.Charge()),
                    StatusIs(absl::StatusCode::kResourceExhausted));
      }
    }
  }
}

TEST(BudgetLedgerTest, ApproximateDeltaAloneCanExhaustTheBudget) {
  ASSERT_OK_AND_ASSIGN(BudgetLedger ledger, BudgetLedger::Create(100, 2e-7));
  const PrivacyCharge c = PrivacyCharge::FromZcdp(0.001, 5e-8);
  EXPECT_OK(ledger.Charge(c));
  EXPECT_OK(ledger.Charge(c));
  EXPECT_OK(ledger.Charge(c));
  // 4 x 5e-8 leaves no delta for the conversion.
  EXPECT_THAT(ledger.Charge(c), StatusIs(absl::StatusCode::kResourceExhausted));
}

// The complaint: (epsilon 1, delta 1e-5) reported 1.0000000005.
TEST(QueryBudgetTest, ReportedEpsilonNeverExceedsTheRequest) {
  for (double epsilon : {0.1, 0.5, 1.0, 2.0, 7.5}) {
    for (double delta : {1e-10, 1e-7, 1e-5}) {
      ASSERT_OK_AND_ASSIGN(QueryBudget q, PlanQueryBudget(epsilon, delta, 1));
      EXPECT_LE(q.Reported().epsilon, epsilon);
      EXPECT_GT(q.Reported().epsilon, epsilon * 0.999);
      EXPECT_LE(q.Reported().delta, delta);
      ASSERT_OK_AND_ASSIGN(QueryBudget l,
                           PlanLaplaceBudget(epsilon, delta, 2, 1, 0.3));
      EXPECT_LE(l.Reported().epsilon, epsilon);
      EXPECT_LE(l.epsilon_partition_selection * 2 + l.epsilon_per_metric * 2,
                epsilon);
    }
  }
}

// Pure-DP charges compose basically when that is tighter than RDP: a budget
// of epsilon 1 affords two queries of 0.5 (the RDP bound alone would not
// at this delta), and reports exactly half spent after the first.
TEST(BudgetLedgerTest, PureChargesComposeBasicallyWhenTighter) {
  ASSERT_OK_AND_ASSIGN(BudgetLedger ledger, BudgetLedger::Create(1.0, 1e-6));
  PrivacyCharge half;
  half.rdp = PureDpCurve(0.5);
  half.dp_epsilon = 0.5;
  EXPECT_GT(RdpEpsilon(Compose(half, half).rdp, 0, 1e-6), 1.0);
  ASSERT_OK(ledger.Charge(half));
  EXPECT_EQ(ledger.ReportedSpent().epsilon, 0.5);
  EXPECT_EQ(ledger.ReportedRemaining().epsilon, 0.5);
  ASSERT_OK(ledger.Charge(half));
  EXPECT_THAT(ledger.Charge(half),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

// The complaint: `cohortctl budget` printed delta spent 5.45e-06
// and remaining 9.55e-06 of 1e-05. Spent + remaining = total in every unit
// shown, spent is an upper bound, and anything within the remaining fits.
TEST(BudgetLedgerTest, SpentPlusRemainingIsTheTotalAndRemainingIsAffordable) {
  ASSERT_OK_AND_ASSIGN(BudgetLedger ledger, BudgetLedger::Create(20, 1e-5));
  ASSERT_OK_AND_ASSIGN(QueryBudget gaussian, PlanQueryBudget(1.0, 1e-8, 1));
  PrivacyCharge pure;
  pure.rdp = PureDpCurve(0.3);
  pure.dp_epsilon = 0.3;
  for (int i = 0; i < 30; ++i) {
    ASSERT_OK(ledger.Charge(i % 3 == 0 ? pure : gaussian.Charge()));
    const ReportedCost total = ledger.ReportedTotal();
    const ReportedCost spent = ledger.ReportedSpent();
    const ReportedCost left = ledger.ReportedRemaining();
    EXPECT_EQ(total.epsilon, 20);
    EXPECT_EQ(total.delta, 1e-5);
    const double qe = BudgetLedger::ReportQuantum(20);
    const double qd = BudgetLedger::ReportQuantum(1e-5);
    EXPECT_EQ(
        std::llround(spent.epsilon / qe) + std::llround(left.epsilon / qe),
        std::llround(20 / qe));
    EXPECT_EQ(std::llround(spent.delta / qd) + std::llround(left.delta / qd),
              std::llround(1e-5 / qd));
    // What remains is affordable as a basic (epsilon, delta) charge.
    PrivacyCharge rest;
    rest.rdp = PureDpCurve(left.epsilon);
    rest.dp_epsilon = left.epsilon;
    rest.dp_delta = left.delta;
    EXPECT_TRUE(ledger.CanAfford(rest)) << i;
  }
}

// A ledger stored by the zCDP build (rho, delta) reads as the curve
// rho * alpha, i.e. the same (epsilon, delta) it reported then.
TEST(BudgetLedgerTest, ZcdpLedgerMigratesAsTheCurveRhoTimesAlpha) {
  ASSERT_OK_AND_ASSIGN(
      BudgetLedger ledger,
      BudgetLedger::FromSpent(20, 1e-5, PrivacyCharge::FromZcdp(0.5, 1e-7)));
  EXPECT_NEAR(ledger.spent().Rho(), 0.5, 1e-8);
  ASSERT_OK_AND_ASSIGN(double zcdp,
                       EpsilonFromRho(0.5, (1e-5 - 1e-7) / 2, Rounding::kUp));
  EXPECT_GE(ledger.ReportedSpent().epsilon, zcdp * (1 - 1e-6));
  EXPECT_LE(ledger.ReportedSpent().epsilon, zcdp * 1.02);
}

TEST(BudgetLedgerTest, RepetitionsAffordableCountsWhatTheLedgerAccepts) {
  ASSERT_OK_AND_ASSIGN(QueryBudget q, PlanQueryBudget(1.0, 1e-10, 1));
  const int64_t n = RepetitionsAffordable(q.Charge(), 20, 1e-5);
  ASSERT_OK_AND_ASSIGN(BudgetLedger ledger, BudgetLedger::Create(20, 1e-5));
  for (int64_t i = 0; i < n; ++i) ASSERT_OK(ledger.Charge(q.Charge())) << i;
  EXPECT_GT(n, 20);  // far more than basic composition's 20
}

// A config whose budget shrank below what was spent (budgets come from the
// config at every start): everything reads as spent, nothing more fits.
TEST(BudgetLedgerTest, BudgetShrunkBelowTheSpendReadsAsAllSpent) {
  ASSERT_OK_AND_ASSIGN(
      BudgetLedger ledger,
      BudgetLedger::FromSpent(1.0, 1e-6, PrivacyCharge::FromZcdp(5.0, 2e-6)));
  EXPECT_EQ(ledger.ReportedSpent().epsilon, 1.0);
  EXPECT_EQ(ledger.ReportedRemaining().epsilon, 0);
  EXPECT_EQ(ledger.ReportedRemaining().delta, 0);
  EXPECT_FALSE(ledger.CanAfford(PrivacyCharge::FromZcdp(1e-9, 0)));
}

}  // namespace
}  // namespace cohortd::privacy
