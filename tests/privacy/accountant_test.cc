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

TEST(AccountantTest, CompositionAddsBothParts) {
  const ZcdpCharge c = Compose({0.1, 1e-8}, {0.2, 2e-8});
  EXPECT_GE(c.rho, 0.3);
  EXPECT_NEAR(c.rho, 0.3, 1e-9);
  EXPECT_GE(c.delta, 3e-8);
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
  EXPECT_EQ(b.Charge().rho, b.rho_total);
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
  EXPECT_EQ(b.Charge().rho, b.rho_total);
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
  // Capacity rho for (2, 5e-7) is about 0.0834; each query 0.0192.
  EXPECT_EQ(charged, 4);
  const ZcdpCharge before = ledger.spent();
  EXPECT_THAT(
      ledger.Charge(q.Charge()),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("remaining")));
  EXPECT_EQ(ledger.spent().rho, before.rho);
  EXPECT_LE(ledger.remaining().rho, ledger.capacity().rho - before.rho);
  EXPECT_GE(ledger.remaining().rho, 0);
}

// A budget stated as exactly one query's (epsilon, delta) affords that query
// once (it used to refuse it: the capacity and the composition were both
// rounded against it), and then nothing more: the ledger never over-spends.
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
        EXPECT_LE(ledger.spent().rho, ledger.capacity().rho);
        EXPECT_LE(ledger.spent().delta, ledger.capacity().delta);
        EXPECT_THAT(ledger.Charge({1e-12, 0}),
                    StatusIs(absl::StatusCode::kResourceExhausted));
        EXPECT_THAT(ledger.Charge({0, 1e-20}),
                    StatusIs(absl::StatusCode::kResourceExhausted));
      }
    }
  }
}

TEST(BudgetLedgerTest, DeltaAloneCanExhaustTheBudget) {
  ASSERT_OK_AND_ASSIGN(BudgetLedger ledger, BudgetLedger::Create(100, 2e-7));
  EXPECT_OK(ledger.Charge({0.001, 5e-8}));
  EXPECT_OK(ledger.Charge({0.001, 4.9e-8}));
  EXPECT_THAT(ledger.Charge({0.001, 5e-8}),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(BudgetLedgerTest, ReportsSpentUpAndRemainingDown) {
  ASSERT_OK_AND_ASSIGN(BudgetLedger ledger,
                       BudgetLedger::FromSpent(4.0, 1e-6, {0.1, 1e-7}));
  const ReportedCost total = ledger.ReportedTotal();
  const ReportedCost spent = ledger.ReportedSpent();
  const ReportedCost left = ledger.ReportedRemaining();
  EXPECT_LE(total.epsilon, 4.0);
  EXPECT_GE(spent.rho, 0.1);
  EXPECT_LE(left.rho + spent.rho, total.rho + 1e-12);
  // epsilon is concave in rho, so spent + remaining exceeds the total.
  EXPECT_GT(spent.epsilon + left.epsilon, total.epsilon);
  EXPECT_EQ(BudgetLedger::Create(4.0, 1e-6)->ReportedSpent().epsilon, 0);
}

}  // namespace
}  // namespace cohortd::privacy
