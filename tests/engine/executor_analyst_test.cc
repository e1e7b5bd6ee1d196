// The executor's analyst additions (issue 11): measure filters applied
// before contribution bounding, and GEOMETRIC_MEAN, over a real
// ColumnarIndex with a seeded random source and a very large epsilon, so
// released values sit within a few units of the bounded truth.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/crypto/csprng.h"
#include "server/engine/executor.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"
#include "tests/privacy/deterministic_random.h"
#include "tests/engine/executor_fixture.h"

namespace cohortd {
namespace {

using cohortd::v1::AggregateRequest;
using cohortd::v1::Metric;


class ExecutorAnalystTest : public testing::ExecutorFixture {};

TEST_F(ExecutorAnalystTest, MeasureFiltersApplyBeforeContributionBounding) {
  // Each account: 20 sessions without lines and 3 with lines added. Linf
  // is 8, so bounding before filtering would keep ~1 of the 3; filtering
  // first makes the 3 the population, and all are kept.
  for (int a = 0; a < 30; ++a) {
    Add(absl::StrCat("a", a), 20, {{"work_mode", "fix"}}, {{"lines_added", 0}});
    Add(absl::StrCat("a", a), 3, {{"work_mode", "fix"}}, {{"lines_added", 12}});
  }
  // Sessions without the measure never pass its filter.
  for (int a = 0; a < 30; ++a)
    Add(absl::StrCat("b", a), 2, {{"work_mode", "fix"}});
  AggregateRequest r =
      ByWorkMode({Kind(Metric::SESSIONS), Kind(Metric::MEAN, "lines_added")});
  auto* f = r.add_measure_filters();
  f->set_measure("lines_added");
  f->set_above(0);
  ASSERT_OK_AND_ASSIGN(ExecutionResult result, Run(r));
  auto t = Table(result, "work_mode");
  EXPECT_NEAR(t["fix"]["sessions"].value(), 90, 1);
  // The mean's noise scales with the bounds' range (10000 lines): check
  // that its interval holds the filtered truth, 12.
  EXPECT_LE(t["fix"]["mean_lines_added"].ci_low(), 12);
  EXPECT_GE(t["fix"]["mean_lines_added"].ci_high(), 12);

  // The boundaries: at_most 12 keeps them, below 12 keeps none (and then
  // the cohort has no sessions at all: nothing released).
  f->clear_above();
  f->set_at_least(12);
  f->set_at_most(12);
  ASSERT_OK_AND_ASSIGN(result, Run(r));
  EXPECT_NEAR(Table(result, "work_mode")["fix"]["sessions"].value(), 90, 1);
  f->clear_at_least();
  f->clear_at_most();
  f->set_below(12);
  ASSERT_OK_AND_ASSIGN(result, Run(r));
  EXPECT_NEAR(Table(result, "work_mode")["fix"]["sessions"].value(), 240, 1);
  f->set_above(0);
  ASSERT_OK_AND_ASSIGN(result, Run(r));
  EXPECT_TRUE(result.cohorts.empty());
}

TEST_F(ExecutorAnalystTest, FiltersCompareTheClampedFixedPointValue) {
  // actions_per_prompt is clamped to [0, 200] and stored in 0.01 steps:
  // 500 is stored as 200 and passes "at least 200"; 3.004 as 3.00.
  for (int a = 0; a < 20; ++a) {
    Add(absl::StrCat("a", a), 1, {{"work_mode", "fix"}},
        {{"actions_per_prompt", 500}});
    Add(absl::StrCat("a", a), 1, {{"work_mode", "fix"}},
        {{"actions_per_prompt", 3.004}});
  }
  AggregateRequest r = ByWorkMode({Kind(Metric::SESSIONS)});
  auto* f = r.add_measure_filters();
  f->set_measure("actions_per_prompt");
  f->set_at_least(200);
  ASSERT_OK_AND_ASSIGN(ExecutionResult result, Run(r));
  EXPECT_NEAR(Table(result, "work_mode")["fix"]["sessions"].value(), 20, 1);
  f->clear_at_least();
  f->set_at_most(3);
  ASSERT_OK_AND_ASSIGN(result, Run(r));
  EXPECT_NEAR(Table(result, "work_mode")["fix"]["sessions"].value(), 20, 1);
}

TEST_F(ExecutorAnalystTest, GeometricMeanOfFlooredClampedValues) {
  // Per account: 2, 8 and 32 actions per prompt: geometric mean 8 (the
  // arithmetic mean is 14). A zero counts as the floor 0.01.
  for (int a = 0; a < 40; ++a) {
    for (double v : {2.0, 8.0, 32.0}) {
      Add(absl::StrCat("a", a), 1, {{"work_mode", "fix"}},
          {{"actions_per_prompt", v}});
    }
    Add(absl::StrCat("z", a), 1, {{"work_mode", "build"}},
        {{"actions_per_prompt", a % 2 == 0 ? 0.0 : 100.0}});
  }
  ASSERT_OK_AND_ASSIGN(
      ExecutionResult result,
      Run(ByWorkMode({Kind(Metric::GEOMETRIC_MEAN, "actions_per_prompt"),
                      Kind(Metric::MEAN, "actions_per_prompt")})));
  auto t = Table(result, "work_mode");
  const auto& fix = t["fix"]["geomean_actions_per_prompt"];
  // The log range is ln(200 / 0.01) ~ 9.9: the noise is a few percent.
  EXPECT_NEAR(fix.value(), 8, 0.6);
  EXPECT_LE(fix.ci_low(), 8);
  EXPECT_GE(fix.ci_high(), 8);
  EXPECT_LT(fix.ci_high(), 14);
  EXPECT_NEAR(t["fix"]["mean_actions_per_prompt"].value(), 14, 0.5);
  // sqrt(0.01 * 100) = 1.
  EXPECT_NEAR(t["build"]["geomean_actions_per_prompt"].value(), 1, 0.1);
}

// Invariant 2 for adjusted metrics: the regression reads only sessions
// that carry the rate's label AND a level of every control, so the
// contributor gate counts the accounts of those sessions. A cohort whose
// sessions all carry the label but whose controls are carried by fewer
// than k accounts gets no adjusted estimate (its raw rate is released).
TEST_F(ExecutorAnalystTest, AdjustedMetricGateCountsAccountsCarryingControls) {
  for (int a = 0; a < 60; ++a) {
    for (const char* cohort : {"expert", "advanced"}) {
      Add(absl::StrCat(cohort, a), 2,
          {{"expertise", cohort},
           {"outcome", a % 3 == 0 ? "success" : "failure"},
           {"work_mode", a % 2 == 0 ? "build" : "fix"}});
    }
    // Novices: every session has an outcome, only 3 accounts a work mode
    // (k = 10).
    std::map<std::string, std::string> labels = {
        {"expertise", "novice"},
        {"outcome", a % 2 == 0 ? "success" : "failure"}};
    if (a < 3) labels["work_mode"] = "build";
    Add(absl::StrCat("novice", a), 2, labels);
  }
  AggregateRequest r;
  r.set_dataset("sessions");
  r.add_group_by("expertise");
  r.set_epsilon(5000);
  Metric raw;
  raw.set_kind(Metric::RATE);
  raw.set_name("raw");
  raw.mutable_rate_of()->set_dimension("outcome");
  raw.mutable_rate_of()->add_any_of("success");
  Metric adjusted = raw;
  adjusted.set_name("adjusted");
  adjusted.add_adjust_for("work_mode");
  *r.add_metrics() = raw;
  *r.add_metrics() = adjusted;

  ASSERT_OK_AND_ASSIGN(QueryPlan plan, PlanQuery(config_, r));
  // Canonical metrics are sorted by name: "adjusted", then "raw".
  ASSERT_EQ(plan.canonical.metrics(0).name(), "adjusted");
  const int gate = plan.metric_gates[0];
  ASSERT_GE(gate, 0);
  EXPECT_EQ(plan.gates[gate].label, "outcome");
  EXPECT_THAT(plan.gates[gate].controls, ::testing::ElementsAre("work_mode"));
  EXPECT_NE(plan.metric_gates[1], gate);

  ASSERT_OK_AND_ASSIGN(ExecutionResult result, Run(r));
  auto t = Table(result, "expertise");
  ASSERT_EQ(t.count("novice"), 1u);
  EXPECT_EQ(t["novice"].count("raw"), 1u);
  EXPECT_EQ(t["novice"].count("adjusted"), 0u);
  for (const char* cohort : {"expert", "advanced"}) {
    ASSERT_EQ(t[cohort].count("adjusted"), 1u) << cohort;
    EXPECT_NEAR(t[cohort]["adjusted"].value(), 20.0 / 60, 0.05) << cohort;
  }
}

}  // namespace
}  // namespace cohortd
