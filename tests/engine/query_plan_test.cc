#include "server/engine/query_plan.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using cohortd::v1::AggregateRequest;
using cohortd::v1::Metric;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

AggregateRequest Request() {
  AggregateRequest r;
  r.set_dataset("sessions");
  r.add_group_by("work_mode");
  r.add_group_by("expertise");
  auto* f = r.add_filters();
  f->set_dimension("outcome");
  f->add_any_of("success");
  f->add_any_of("partial");
  auto* sessions = r.add_metrics();
  sessions->set_kind(Metric::SESSIONS);
  auto* rate = r.add_metrics();
  rate->set_kind(Metric::RATE);
  rate->mutable_rate_of()->set_dimension("outcome");
  rate->mutable_rate_of()->add_any_of("success");
  auto* q = r.add_metrics();
  q->set_kind(Metric::QUANTILES);
  q->set_measure("actions_per_prompt");
  return r;
}

class QueryPlanTest : public ::testing::Test {
 protected:
  Config config_ = testing::TestConfig();
};

TEST_F(QueryPlanTest, ResolvesDefaults) {
  ASSERT_OK_AND_ASSIGN(QueryPlan plan, PlanQuery(config_, Request()));
  EXPECT_EQ(plan.epsilon, config_.datasets[0].privacy.default_epsilon);
  EXPECT_EQ(plan.confidence, 0.95);
  EXPECT_EQ(plan.delta, config_.datasets[0].privacy.delta);
  EXPECT_EQ(plan.noisy_metrics, 3);
  EXPECT_THAT(plan.canonical.group_by(), ElementsAre("expertise", "work_mode"));
  std::vector<std::string> names;
  for (const auto& m : plan.canonical.metrics()) names.push_back(m.name());
  EXPECT_THAT(names, ElementsAre("quantiles_actions_per_prompt",
                                 "rate_outcome_success", "sessions"));
  EXPECT_THAT(plan.canonical.metrics(0).quantiles(),
              ElementsAre(0.05, 0.25, 0.5, 0.75, 0.95));
  EXPECT_TRUE(plan.months.empty());
  EXPECT_THAT(plan.canonical_json, HasSubstr("\"group_by\""));
}

TEST_F(QueryPlanTest, ReorderedRequestsHaveOneCanonicalForm) {
  AggregateRequest a = Request();
  AggregateRequest b = Request();
  b.mutable_group_by()->SwapElements(0, 1);
  b.mutable_metrics()->SwapElements(0, 2);
  b.mutable_filters(0)->mutable_any_of()->SwapElements(0, 1);
  b.mutable_filters(0)->add_any_of("success");  // duplicate value
  ASSERT_OK_AND_ASSIGN(QueryPlan pa, PlanQuery(config_, a));
  ASSERT_OK_AND_ASSIGN(QueryPlan pb, PlanQuery(config_, b));
  EXPECT_EQ(pa.canonical_bytes, pb.canonical_bytes);

  // The default epsilon spelled out is the same question too.
  b.set_epsilon(config_.datasets[0].privacy.default_epsilon);
  ASSERT_OK_AND_ASSIGN(QueryPlan pc, PlanQuery(config_, b));
  EXPECT_EQ(pa.canonical_bytes, pc.canonical_bytes);

  // A different epsilon is a different question.
  b.set_epsilon(0.5);
  ASSERT_OK_AND_ASSIGN(QueryPlan pd, PlanQuery(config_, b));
  EXPECT_NE(pa.canonical_bytes, pd.canonical_bytes);
}

TEST_F(QueryPlanTest, MonthFilterListsTheMonthsRead) {
  AggregateRequest r = Request();
  auto* f = r.add_filters();
  f->set_dimension("month");
  f->add_any_of("2026-02");
  f->add_any_of("2026-01");
  ASSERT_OK_AND_ASSIGN(QueryPlan plan, PlanQuery(config_, r));
  EXPECT_THAT(plan.months, ElementsAre("2026-01", "2026-02"));
  f->add_any_of("2026-13");
  EXPECT_THAT(
      PlanQuery(config_, r),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a month")));
}

TEST_F(QueryPlanTest, PreciseErrors) {
  struct Case {
    std::function<void(AggregateRequest*)> edit;
    std::string message;
  };
  const Case cases[] = {
      {[](AggregateRequest* r) { r->set_dataset("x"); },
       "dataset: unknown dataset 'x'; datasets: sessions"},
      {[](AggregateRequest* r) { r->set_group_by(1, "shoe"); },
       "group_by[1]: unknown dimension 'shoe'; dimensions: work_mode"},
      {[](AggregateRequest* r) { r->add_group_by("work_mode"); },
       "group_by[2]: 'work_mode' is repeated"},
      {[](AggregateRequest* r) { r->mutable_filters(0)->add_any_of("meh"); },
       "filters[0]: 'meh' is not a value of 'outcome'; allowed: success"},
      {[](AggregateRequest* r) { r->mutable_filters(0)->clear_any_of(); },
       "filters[0]: any_of must list at least one value"},
      {[](AggregateRequest* r) { r->clear_metrics(); },
       "metrics: at least one metric is required"},
      {[](AggregateRequest* r) { r->mutable_metrics(2)->set_measure("x"); },
       "metrics[2].measure: unknown measure 'x'; measures: "
       "actions_per_prompt"},
      {[](AggregateRequest* r) { r->mutable_metrics(2)->add_quantiles(1); },
       "metrics[2].quantiles: 1 is outside (0, 1)"},
      {[](AggregateRequest* r) { r->mutable_metrics(1)->clear_rate_of(); },
       "metrics[1].rate_of: RATE needs rate_of"},
      {[](AggregateRequest* r) {
         r->mutable_metrics(0)->set_kind(Metric::KIND_UNSPECIFIED);
       },
       "metrics[0].kind: must be one of"},
      {[](AggregateRequest* r) {
         r->mutable_metrics(0)->set_name("sessions");
         r->mutable_metrics(1)->set_name("sessions");
       },
       "'sessions' names two metrics"},
      {[](AggregateRequest* r) { r->set_epsilon(-1); },
       "epsilon: must be positive"},
      {[](AggregateRequest* r) { r->set_epsilon(3); },
       "epsilon: 3 is above this dataset's per-query maximum of 2"},
      {[](AggregateRequest* r) { r->set_confidence(1); },
       "confidence: must be in (0, 1)"},
  };
  for (const Case& c : cases) {
    AggregateRequest r = Request();
    c.edit(&r);
    EXPECT_THAT(
        PlanQuery(config_, r),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  }
}

// A request of `metrics` grouped by `group_by`.
AggregateRequest Grouped(std::vector<std::string> group_by) {
  AggregateRequest r;
  r.set_dataset("sessions");
  for (auto& g : group_by) r.add_group_by(g);
  r.add_metrics()->set_kind(Metric::SESSIONS);
  return r;
}

void Filter(AggregateRequest* r, const std::string& dimension,
            std::vector<std::string> values) {
  auto* f = r->add_filters();
  f->set_dimension(dimension);
  for (auto& v : values) f->add_any_of(v);
}

TEST_F(QueryPlanTest, L0IsCappedByTheCohortsThePublicDomainsAllow) {
  auto l0 = [&](const AggregateRequest& r) {
    return PlanQuery(config_, r)->max_cohorts_per_account;
  };
  EXPECT_EQ(config_.datasets[0].privacy.max_cohorts_per_account, 4);
  EXPECT_EQ(l0(Grouped({})), 1);              // one cohort
  EXPECT_EQ(l0(Grouped({"work_mode"})), 4);   // 4 values, L0 = 4
  EXPECT_EQ(l0(Grouped({"task_topic"})), 4);  // open: unbounded
  EXPECT_EQ(l0(Grouped({"month"})), 4);       // unfiltered month
  AggregateRequest r = Grouped({"work_mode"});
  Filter(&r, "work_mode", {"fix", "test"});
  EXPECT_EQ(l0(r), 2);
  Filter(&r, "outcome", {"success"});  // not grouped: no effect
  EXPECT_EQ(l0(r), 2);
  r = Grouped({"month", "work_mode"});
  Filter(&r, "month", {"2026-01"});
  Filter(&r, "work_mode", {"fix", "test", "write"});
  EXPECT_EQ(l0(r), 3);
  r = Grouped({"task_topic"});
  Filter(&r, "task_topic", {"only-one"});
  EXPECT_EQ(l0(r), 1);
  config_.datasets[0].privacy.max_cohorts_per_account = 2;
  EXPECT_EQ(l0(Grouped({"work_mode"})), 2);  // never above the configured
}

TEST_F(QueryPlanTest, GatesTheMetricsThatReadOnlySomeSessions) {
  AggregateRequest r = Grouped({"work_mode"});
  auto add = [&](Metric::Kind kind, const std::string& measure) {
    Metric* m = r.add_metrics();
    m->set_kind(kind);
    m->set_measure(measure);
    return m;
  };
  add(Metric::ACCOUNTS, "");
  add(Metric::MEAN, "actions_per_prompt");
  add(Metric::SUM, "actions_per_prompt");
  add(Metric::QUANTILES, "lines_added");
  Metric* by_label = add(Metric::RATE, "");
  by_label->mutable_rate_of()->set_dimension("outcome");
  by_label->mutable_rate_of()->add_any_of("success");
  Metric* by_key = add(Metric::RATE, "");
  by_key->mutable_rate_of()->set_dimension("work_mode");
  by_key->mutable_rate_of()->add_any_of("fix");
  Metric* by_month = add(Metric::RATE, "");
  by_month->mutable_rate_of()->set_dimension("month");
  by_month->mutable_rate_of()->add_any_of("2026-01");
  ASSERT_OK_AND_ASSIGN(QueryPlan plan, PlanQuery(config_, r));
  std::map<std::string, int> gate_of;
  for (int i = 0; i < plan.canonical.metrics_size(); ++i) {
    gate_of[plan.canonical.metrics(i).name()] = plan.metric_gates[i];
  }
  ASSERT_EQ(plan.gates.size(), 3u);
  EXPECT_EQ(gate_of["sessions"], -1);
  EXPECT_EQ(gate_of["accounts"], -1);
  EXPECT_EQ(gate_of["rate_work_mode_fix"], -1);  // every session has it
  EXPECT_EQ(gate_of["rate_month_2026-01"], -1);  // derived: always present
  // One gate per measure, shared by its metrics; one for the label.
  EXPECT_EQ(gate_of["mean_actions_per_prompt"],
            gate_of["sum_actions_per_prompt"]);
  EXPECT_EQ(plan.gates[gate_of["mean_actions_per_prompt"]].measure,
            "actions_per_prompt");
  EXPECT_EQ(plan.gates[gate_of["quantiles_lines_added"]].measure,
            "lines_added");
  EXPECT_EQ(plan.gates[gate_of["rate_outcome_success"]].label, "outcome");
  EXPECT_EQ(plan.gates[gate_of["rate_outcome_success"]].measure, "");
  // Filtering on the label makes every session carry it: no gate.
  Filter(&r, "outcome", {"success", "failure"});
  ASSERT_OK_AND_ASSIGN(QueryPlan filtered, PlanQuery(config_, r));
  EXPECT_EQ(filtered.gates.size(), 2u);
}

}  // namespace
}  // namespace cohortd

namespace cohortd {
namespace {

// Issue 11 items 3 and 4: the canonical form carries the interval kind and
// the sorted controls, so they are part of the cache key.
TEST(QueryPlanSamplingAdjustTest, CanonicalIntervalAndControls) {
  const Config config = testing::TestConfig();
  AggregateRequest r;
  r.set_dataset("sessions");
  r.add_group_by("expertise");
  auto* rate = r.add_metrics();
  rate->set_kind(Metric::RATE);
  rate->mutable_rate_of()->set_dimension("outcome");
  rate->mutable_rate_of()->add_any_of("success");
  rate->add_adjust_for("work_mode");
  rate->add_adjust_for("task_topic");
  // An open domain is a control only with listed values.
  AggregateRequest open = r;
  EXPECT_THAT(
      PlanQuery(config, open).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("open domain")));
  auto* topics = r.add_filters();
  topics->set_dimension("task_topic");
  topics->add_any_of("web");
  topics->add_any_of("data");
  ASSERT_OK_AND_ASSIGN(QueryPlan plan, PlanQuery(config, r));
  EXPECT_EQ(plan.canonical.metrics(0).name(), "rate_outcome_success_adjusted");
  EXPECT_THAT(plan.canonical.metrics(0).adjust_for(),
              ElementsAre("task_topic", "work_mode"));
  ASSERT_EQ(plan.ControlsOf(0).size(), 2u);
  EXPECT_THAT(plan.ControlsOf(0)[0].levels, ElementsAre("data", "web"));
  EXPECT_EQ(plan.ControlsOf(0)[1].levels.size(),
            config.datasets[0].FindDimension("work_mode")->values.size());

  AggregateRequest s = r;
  s.mutable_metrics(0)->clear_adjust_for();
  s.set_interval(cohortd::v1::NOISE_AND_SAMPLING);
  ASSERT_OK_AND_ASSIGN(QueryPlan sampled, PlanQuery(config, s));
  EXPECT_EQ(sampled.canonical.interval(), cohortd::v1::NOISE_AND_SAMPLING);
  EXPECT_EQ(sampled.noisy_metrics, 2);
  s.set_interval(cohortd::v1::NOISE);
  ASSERT_OK_AND_ASSIGN(QueryPlan plain, PlanQuery(config, s));
  EXPECT_NE(plain.canonical_bytes, sampled.canonical_bytes);

  AggregateRequest bad = r;
  bad.mutable_metrics(0)->add_adjust_for("work_mode");
  EXPECT_THAT(
      PlanQuery(config, bad).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("repeated")));
  bad = r;
  bad.mutable_metrics(0)->add_adjust_for("outcome");
  EXPECT_THAT(PlanQuery(config, bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("rate's own label")));
}

}  // namespace
}  // namespace cohortd
