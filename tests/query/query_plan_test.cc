#include "server/query/query_plan.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using cohortd::v1::AggregateRequest;
using cohortd::v1::Metric;

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
  EXPECT_THAT(PlanQuery(config_, r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a month")));
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
      {[](AggregateRequest* r) { r->mutable_metrics(0)->set_name("sessions");
                                 r->mutable_metrics(1)->set_name("sessions"); },
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
    EXPECT_THAT(PlanQuery(config_, r),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(c.message)));
  }
}

}  // namespace
}  // namespace cohortd
