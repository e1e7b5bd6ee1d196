// The executor over a real ColumnarIndex, with a seeded deterministic
// random source and a very large epsilon, so that released values sit
// within a few units of the exact bounded statistics and the tests can
// check what bounding, filtering and k-anonymity did.
#include "server/engine/executor.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/crypto/csprng.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"
#include "tests/privacy/deterministic_random.h"
#include "tests/engine/executor_fixture.h"

namespace cohortd {
namespace {

using cohortd::v1::AggregateRequest;
using cohortd::v1::Metric;


class ExecutorTest : public testing::ExecutorFixture {};

TEST_F(ExecutorTest, ReleasesBoundedCountsAndSuppressesCohortsBelowK) {
  for (int a = 0; a < 20; ++a) Add(absl::StrCat("fix", a), 2, {{"work_mode", "fix"}});
  for (int a = 0; a < 15; ++a) Add(absl::StrCat("bld", a), 1, {{"work_mode", "build"}});
  // k - 1 = 9 accounts with 30 sessions each: never released.
  for (int a = 0; a < 9; ++a) Add(absl::StrCat("tst", a), 30, {{"work_mode", "test"}});
  ASSERT_OK_AND_ASSIGN(
      ExecutionResult result,
      Run(ByWorkMode({Kind(Metric::SESSIONS), Kind(Metric::ACCOUNTS)})));
  auto t = Table(result, "work_mode");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t.count("test"), 0u);
  EXPECT_NEAR(t["fix"]["sessions"].value(), 40, 1);
  EXPECT_NEAR(t["fix"]["accounts"].value(), 20, 1);
  EXPECT_NEAR(t["build"]["sessions"].value(), 15, 1);
  EXPECT_EQ(result.candidate_cohorts, 3u);
}

TEST_F(ExecutorTest, AnAccountCountsAtMostLinfSessionsPerCohort) {
  Add("heavy", 50, {{"work_mode", "fix"}});
  for (int a = 0; a < 19; ++a) Add(absl::StrCat("a", a), 1, {{"work_mode", "fix"}});
  ASSERT_OK_AND_ASSIGN(ExecutionResult result,
                       Run(ByWorkMode({Kind(Metric::SESSIONS)})));
  auto t = Table(result, "work_mode");
  // 19 + Linf (8), not 19 + 50.
  EXPECT_NEAR(t["fix"]["sessions"].value(), 27, 1);
}

TEST_F(ExecutorTest, AnAccountReachesAtMostL0Cohorts) {
  config_.datasets[0].privacy.max_cohorts_per_account = 2;
  for (int a = 0; a < 40; ++a) {
    for (const char* mode : {"build", "fix", "test", "write"}) {
      Add(absl::StrCat("acct", a), 1, {{"work_mode", mode}});
    }
  }
  ASSERT_OK_AND_ASSIGN(ExecutionResult result,
                       Run(ByWorkMode({Kind(Metric::ACCOUNTS)})));
  double total = 0;
  for (const auto& [mode, metrics] : Table(result, "work_mode")) {
    total += metrics.at("accounts").value();
  }
  EXPECT_NEAR(total, 80, 4);  // 40 accounts x L0 = 2, not x 4
}

TEST_F(ExecutorTest, FiltersAndMissingLabelsExcludeSessions) {
  for (int a = 0; a < 30; ++a) {
    Add(absl::StrCat("a", a), 1, {{"work_mode", "fix"}, {"outcome", "success"}});
    Add(absl::StrCat("a", a), 1, {{"work_mode", "fix"}, {"outcome", "failure"}});
    Add(absl::StrCat("a", a), 1, {{"work_mode", "fix"}});  // no outcome
    Add(absl::StrCat("a", a), 1, {{"outcome", "success"}});  // no work_mode
  }
  Metric rate = Kind(Metric::RATE);
  rate.set_name("success");
  rate.mutable_rate_of()->set_dimension("outcome");
  rate.mutable_rate_of()->add_any_of("success");
  ASSERT_OK_AND_ASSIGN(ExecutionResult all,
                       Run(ByWorkMode({Kind(Metric::SESSIONS), rate})));
  auto t = Table(all, "work_mode");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_NEAR(t["fix"]["sessions"].value(), 90, 1);
  // Among sessions with an outcome label: 30 of 60.
  EXPECT_NEAR(t["fix"]["success"].value(), 0.5, 0.02);

  AggregateRequest filtered = ByWorkMode({Kind(Metric::SESSIONS)});
  auto* f = filtered.add_filters();
  f->set_dimension("outcome");
  f->add_any_of("failure");
  ASSERT_OK_AND_ASSIGN(ExecutionResult some, Run(filtered));
  EXPECT_NEAR(Table(some, "work_mode")["fix"]["sessions"].value(), 30, 1);
}

TEST_F(ExecutorTest, SumsMeansAndQuantilesUseClampedFixedPoint) {
  for (int a = 0; a < 40; ++a) {
    // actions_per_prompt is clamped to [0, 200]: 500 counts as 200.
    Add(absl::StrCat("a", a), 1, {{"work_mode", "fix"}},
        {{"actions_per_prompt", a < 20 ? 10.0 : 500.0}});
  }
  Metric q = Kind(Metric::QUANTILES, "actions_per_prompt");
  q.add_quantiles(0.25);
  q.add_quantiles(0.75);
  ASSERT_OK_AND_ASSIGN(
      ExecutionResult result,
      Run(ByWorkMode({Kind(Metric::SUM, "actions_per_prompt"),
                      Kind(Metric::MEAN, "actions_per_prompt"), q}),
          /*seed=*/2));
  auto t = Table(result, "work_mode");
  // A sum's noise scales with Linf * max|value| (8 * 200 here), so even at
  // this epsilon it is tens of units: check the interval instead, which
  // must hold the clamped truth (4200, not 20 * 10 + 20 * 500) and be
  // narrow enough to tell the two apart.
  const auto& sum = t["fix"]["sum_actions_per_prompt"];
  EXPECT_LE(sum.ci_low(), 4200);
  EXPECT_GE(sum.ci_high(), 4200);
  EXPECT_LT(sum.ci_high() - sum.ci_low(), 1000);
  // The intervals are 95% ones (the per-metric chooser gives the sum and
  // mean discrete Laplace noise here): seed 1 drew one of the 1-in-20
  // misses of the mean's, seed 2 none.
  const auto& mean = t["fix"]["mean_actions_per_prompt"];
  EXPECT_LE(mean.ci_low(), 105);
  EXPECT_GE(mean.ci_high(), 105);
  EXPECT_LT(mean.ci_high() - mean.ci_low(), 20);
  const auto& quantiles = t["fix"]["quantiles_actions_per_prompt"];
  ASSERT_EQ(quantiles.quantiles_size(), 2);
  EXPECT_NEAR(quantiles.quantiles(0).value(), 10, 1);
  EXPECT_NEAR(quantiles.quantiles(1).value(), 200, 1);
}

// Quantiles count sessions into leaves either in per-cohort histograms
// (few possible cohorts) or in per-cohort leaf lists (many, e.g. an
// open-domain group-by): both must release the same. One cohort of 40
// accounts is asked by work_mode (9 possible cohorts: histograms) and by
// task_topic (300 more topics, below k: lists); its topic sorts first, so
// its noise draws come first and the same seed gives the same draws.
TEST_F(ExecutorTest, QuantilesAreTheSameFromHistogramsAndLeafLists) {
  for (int a = 0; a < 40; ++a) {
    Add(absl::StrCat("a", a), 2, {{"work_mode", "fix"}, {"task_topic", "aaa"}},
        {{"actions_per_prompt", 1.5 * a}});
  }
  for (int t = 0; t < 300; ++t) {
    Add(absl::StrCat("t", t), 1, {{"task_topic", absl::StrCat("t", t)}},
        {{"actions_per_prompt", 3.0}});
  }
  Metric q = Kind(Metric::QUANTILES, "actions_per_prompt");
  AggregateRequest by_mode = ByWorkMode({q});
  AggregateRequest by_topic = by_mode;
  by_topic.set_group_by(0, "task_topic");
  ASSERT_OK_AND_ASSIGN(ExecutionResult histograms, Run(by_mode, 9));
  ASSERT_OK_AND_ASSIGN(ExecutionResult lists, Run(by_topic, 9));
  ASSERT_EQ(histograms.cohorts.size(), 1u);
  ASSERT_EQ(lists.cohorts.size(), 1u);
  ASSERT_EQ(histograms.cohorts[0].estimates_size(), 1);
  ASSERT_EQ(lists.cohorts[0].estimates_size(), 1);
  const cohortd::v1::Estimate& h = histograms.cohorts[0].estimates(0);
  EXPECT_EQ(h.quantiles_size(), 5);
  EXPECT_EQ(h.SerializeAsString(),
            lists.cohorts[0].estimates(0).SerializeAsString());
  // The median of 0, 1.5, ..., 58.5 (each twice) is 28.5 or 30.
  EXPECT_NEAR(h.value(), 29, 2);
}

TEST_F(ExecutorTest, SameQuerySameSeedSameRelease) {
  for (int a = 0; a < 30; ++a) Add(absl::StrCat("a", a), 12, {{"work_mode", "fix"}});
  const auto request = ByWorkMode({Kind(Metric::SESSIONS)});
  ASSERT_OK_AND_ASSIGN(ExecutionResult first, Run(request, 7));
  ASSERT_OK_AND_ASSIGN(ExecutionResult second, Run(request, 7));
  ASSERT_EQ(first.cohorts.size(), 1u);
  EXPECT_EQ(first.cohorts[0].SerializeAsString(),
            second.cohorts[0].SerializeAsString());
}

TEST_F(ExecutorTest, MetricsOfAMeasureCarriedByFewerThanKAccountsAreOmitted) {
  // 40 accounts in "fix"; only k - 1 = 9 of them carry the measure (with
  // many sessions each): the cohort and its session count are released,
  // the mean, sum and quantiles of the measure are not (no Estimate).
  for (int a = 0; a < 40; ++a) {
    if (a < 9) {
      Add(absl::StrCat("m", a), 8, {{"work_mode", "fix"}},
          {{"actions_per_prompt", 42.0}});
    } else {
      Add(absl::StrCat("m", a), 2, {{"work_mode", "fix"}});
    }
  }
  // 40 in "build", 30 of them with the measure: the control.
  for (int a = 0; a < 40; ++a) {
    if (a < 30) {
      Add(absl::StrCat("b", a), 2, {{"work_mode", "build"}},
          {{"actions_per_prompt", 7.0}});
    } else {
      Add(absl::StrCat("b", a), 2, {{"work_mode", "build"}});
    }
  }
  const AggregateRequest request = ByWorkMode(
      {Kind(Metric::SESSIONS), Kind(Metric::MEAN, "actions_per_prompt"),
       Kind(Metric::SUM, "actions_per_prompt"),
       Kind(Metric::QUANTILES, "actions_per_prompt")});
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    ASSERT_OK_AND_ASSIGN(ExecutionResult result, Run(request, seed));
    auto t = Table(result, "work_mode");
    ASSERT_EQ(t.count("fix"), 1u);
    EXPECT_NEAR(t["fix"]["sessions"].value(), 9 * 8 + 31 * 2, 1);
    EXPECT_EQ(t["fix"].size(), 1u) << "only the session count";
    ASSERT_EQ(t["build"].size(), 4u);
    EXPECT_NEAR(t["build"]["mean_actions_per_prompt"].value(), 7, 7);
  }
}

TEST_F(ExecutorTest, RateOfALabelCarriedByFewerThanKAccountsIsOmitted) {
  for (int a = 0; a < 40; ++a) {
    std::map<std::string, std::string> labels = {{"work_mode", "fix"}};
    if (a < 9) labels["outcome"] = "success";
    Add(absl::StrCat("a", a), 3, labels);
  }
  Metric rate = Kind(Metric::RATE);
  rate.set_name("success");
  rate.mutable_rate_of()->set_dimension("outcome");
  rate.mutable_rate_of()->add_any_of("success");
  ASSERT_OK_AND_ASSIGN(ExecutionResult result,
                       Run(ByWorkMode({Kind(Metric::ACCOUNTS), rate})));
  auto t = Table(result, "work_mode");
  ASSERT_EQ(t.count("fix"), 1u);
  EXPECT_EQ(t["fix"].count("success"), 0u);
  EXPECT_EQ(t["fix"].count("accounts"), 1u);
}

TEST_F(ExecutorTest, NoGroupByHasHalfTheNoiseOfFourPossibleCohorts) {
  // L0 = 4 but one cohort can exist: sigma scales with sqrt(min(L0, 1)).
  // With a per-principal budget of many queries the noise chooser keeps the
  // Gaussian plan (privacy/query_release.h), whose sigma this checks.
  config_.datasets[0].privacy.principal_budget = {20, 1e-5};
  AggregateRequest none;
  none.set_dataset("sessions");
  none.set_epsilon(1);
  none.add_metrics()->set_kind(Metric::SESSIONS);
  AggregateRequest four = none;
  four.add_group_by("work_mode");
  ASSERT_OK_AND_ASSIGN(QueryPlan p1, PlanQuery(config_, none));
  ASSERT_OK_AND_ASSIGN(QueryPlan p4, PlanQuery(config_, four));
  ASSERT_OK_AND_ASSIGN(privacy::QueryReleaser r1, MakeReleaser(p1));
  ASSERT_OK_AND_ASSIGN(privacy::QueryReleaser r4, MakeReleaser(p4));
  const double ratio = std::sqrt(r4.partition_selector().sigma2() /
                                 r1.partition_selector().sigma2());
  EXPECT_NEAR(ratio, 2, 1e-3);
  // The session count's interval, through the real path: ~half as wide.
  for (int a = 0; a < 2000; ++a) {
    Add(absl::StrCat("a", a), 1, {{"work_mode", "fix"}});
  }
  ASSERT_OK_AND_ASSIGN(ExecutionResult n1, Run(none));
  ASSERT_OK_AND_ASSIGN(ExecutionResult n4, Run(four));
  ASSERT_EQ(n1.cohorts.size(), 1u);
  ASSERT_EQ(n4.cohorts.size(), 1u);
  const auto& e1 = n1.cohorts[0].estimates(0);
  const auto& e4 = n4.cohorts[0].estimates(0);
  EXPECT_NEAR((e4.ci_high() - e4.ci_low()) / (e1.ci_high() - e1.ci_low()), 2,
              0.02);
}

// The noise chooser's guard (privacy/query_release.h) counts queries in
// the budget of the principal who asks, not the dataset's default: a
// principal whose budget is one query gets the narrower Laplace plan,
// one with a budget of many queries (or the default) the Gaussian plan,
// which affords more of them.
TEST_F(ExecutorTest, NoiseChooserGuardsTheAskingPrincipalsBudget) {
  config_.datasets[0].privacy.principal_budget = {20, 1e-5};
  AggregateRequest count;
  count.set_dataset("sessions");
  count.set_epsilon(1);
  count.add_metrics()->set_kind(Metric::SESSIONS);
  ASSERT_OK_AND_ASSIGN(QueryPlan plain, PlanQuery(config_, count));
  config_.datasets[0].privacy.principal_budgets["solo"] = {1, plain.delta};
  ASSERT_OK_AND_ASSIGN(QueryPlan solo, PlanQuery(config_, count, "solo"));
  ASSERT_OK_AND_ASSIGN(QueryPlan other, PlanQuery(config_, count, "other"));
  EXPECT_EQ(solo.principal_budget.epsilon, 1);
  EXPECT_EQ(other.principal_budget.epsilon, 20);
  ASSERT_OK_AND_ASSIGN(privacy::QueryReleaser r_default, MakeReleaser(plain));
  ASSERT_OK_AND_ASSIGN(privacy::QueryReleaser r_solo, MakeReleaser(solo));
  ASSERT_OK_AND_ASSIGN(privacy::QueryReleaser r_other, MakeReleaser(other));
  EXPECT_EQ(r_default.budget().family, privacy::NoiseFamily::kGaussian);
  EXPECT_EQ(r_other.budget().family, privacy::NoiseFamily::kGaussian);
  EXPECT_NE(r_solo.budget().family, privacy::NoiseFamily::kGaussian);
  // Narrower for the one query the solo principal can afford...
  EXPECT_LT(r_solo.Widths().back(), r_default.Widths().back());
  // ...and the plan it did not get would have cost the others queries.
  EXPECT_LT(
      privacy::RepetitionsAffordable(r_solo.budget().Charge(), 20, 1e-5),
      privacy::RepetitionsAffordable(r_default.budget().Charge(), 20, 1e-5));
  EXPECT_GE(
      privacy::RepetitionsAffordable(r_solo.budget().Charge(), 1, plain.delta),
      1);
}

TEST_F(ExecutorTest, ReleaserMemoKeysDoublesByTheirExactBits) {
  // Epsilons that print alike (6 significant digits) are different
  // questions with different budgets; the memo must not merge them.
  AggregateRequest a = ByWorkMode({Kind(Metric::SESSIONS)});
  a.set_epsilon(0.1234567);
  AggregateRequest b = a;
  b.set_epsilon(0.1234568);
  AggregateRequest c = a;
  c.set_epsilon(std::nextafter(0.1234567, 1.0));
  ASSERT_OK_AND_ASSIGN(QueryPlan pa, PlanQuery(config_, a));
  ASSERT_OK_AND_ASSIGN(QueryPlan pb, PlanQuery(config_, b));
  ASSERT_OK_AND_ASSIGN(QueryPlan pc, PlanQuery(config_, c));
  ASSERT_OK_AND_ASSIGN(privacy::QueryReleaser ra, MakeReleaser(pa));
  ASSERT_OK_AND_ASSIGN(privacy::QueryReleaser rb, MakeReleaser(pb));
  ASSERT_OK_AND_ASSIGN(privacy::QueryReleaser rc, MakeReleaser(pc));
  EXPECT_LT(ra.budget().rho_total, rb.budget().rho_total);
  EXPECT_NE(ra.budget().rho_total, rc.budget().rho_total);
  // The same for a config value: a dataset with another k, built at the
  // same address, is not served the old releaser.
  ASSERT_OK_AND_ASSIGN(privacy::QueryReleaser again, MakeReleaser(pa));
  EXPECT_EQ(again.budget().rho_total, ra.budget().rho_total);
  config_.datasets[0].privacy.k = 25;
  ASSERT_OK_AND_ASSIGN(QueryPlan pk, PlanQuery(config_, a));
  ASSERT_EQ(pk.dataset, pa.dataset);
  ASSERT_OK_AND_ASSIGN(privacy::QueryReleaser rk, MakeReleaser(pk));
  EXPECT_EQ(rk.partition_selector().k(), 25);
  EXPECT_EQ(ra.partition_selector().k(), 10);
}

}  // namespace
}  // namespace cohortd
