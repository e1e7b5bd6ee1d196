// The planner's analyst additions (issue 11): measure filters (canonical
// form, precise errors), GEOMETRIC_MEAN and accuracy-first epsilons.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/executor.h"
#include "server/engine/query_plan.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using cohortd::v1::AggregateRequest;
using cohortd::v1::MeasureFilter;
using cohortd::v1::Metric;
using ::testing::HasSubstr;

AggregateRequest Request() {
  AggregateRequest r;
  r.set_dataset("sessions");
  r.add_group_by("expertise");
  r.add_metrics()->set_kind(Metric::SESSIONS);
  return r;
}

MeasureFilter* AddFilter(AggregateRequest* r, const std::string& measure) {
  MeasureFilter* f = r->add_measure_filters();
  f->set_measure(measure);
  return f;
}

class QueryPlanAnalystTest : public ::testing::Test {
 protected:
  Config config_ = testing::TestConfig();
};

TEST_F(QueryPlanAnalystTest, MeasureFiltersBecomeFixedPointRanges) {
  AggregateRequest r = Request();
  AddFilter(&r, "lines_added")->set_above(0);
  MeasureFilter* share = AddFilter(&r, "planning_user_share");
  share->set_at_least(0.25);
  share->set_below(0.5);
  ASSERT_OK_AND_ASSIGN(QueryPlan plan, PlanQuery(config_, r));
  // Sorted by measure; above 0 in whole lines is at least 1; below 0.5 in
  // steps of 0.001 is at most 0.499; the open side is the bound.
  ASSERT_EQ(plan.measure_ranges.size(), 2u);
  EXPECT_EQ(plan.measure_ranges[0].measure, "lines_added");
  EXPECT_EQ(plan.measure_ranges[0].lower_fp, 1);
  EXPECT_EQ(plan.measure_ranges[0].upper_fp, 10000);
  EXPECT_EQ(plan.measure_ranges[1].measure, "planning_user_share");
  EXPECT_EQ(plan.measure_ranges[1].lower_fp, 250);
  EXPECT_EQ(plan.measure_ranges[1].upper_fp, 499);
  ASSERT_EQ(plan.canonical.measure_filters_size(), 2);
  EXPECT_EQ(plan.canonical.measure_filters(0).at_least(), 1);
  EXPECT_EQ(plan.canonical.measure_filters(0).at_most(), 10000);
  EXPECT_FALSE(plan.canonical.measure_filters(0).has_above());
  EXPECT_THAT(plan.canonical_json, HasSubstr("measure_filters"));
}

TEST_F(QueryPlanAnalystTest, FiltersKeepingTheSameValuesAreOneQuestion) {
  AggregateRequest a = Request();
  AddFilter(&a, "lines_added")->set_above(0);
  AddFilter(&a, "actions_per_prompt")->set_at_most(50);
  AggregateRequest b = Request();
  AddFilter(&b, "actions_per_prompt")->set_below(50.005);
  AddFilter(&b, "lines_added")->set_at_least(0.5);
  ASSERT_OK_AND_ASSIGN(QueryPlan pa, PlanQuery(config_, a));
  ASSERT_OK_AND_ASSIGN(QueryPlan pb, PlanQuery(config_, b));
  EXPECT_EQ(pa.canonical_bytes, pb.canonical_bytes);

  // A different range, or none, is another question (and cache key).
  AggregateRequest c = Request();
  AddFilter(&c, "lines_added")->set_above(1);
  AddFilter(&c, "actions_per_prompt")->set_at_most(50);
  ASSERT_OK_AND_ASSIGN(QueryPlan pc, PlanQuery(config_, c));
  EXPECT_NE(pa.canonical_bytes, pc.canonical_bytes);
  ASSERT_OK_AND_ASSIGN(QueryPlan none, PlanQuery(config_, Request()));
  EXPECT_NE(pa.canonical_bytes, none.canonical_bytes);
}

TEST_F(QueryPlanAnalystTest, MeasureFilterErrorsArePrecise) {
  struct Case {
    std::function<void(AggregateRequest*)> edit;
    std::string message;
  };
  const Case cases[] = {
      {[](AggregateRequest* r) { AddFilter(r, "shoe")->set_above(1); },
       "measure_filters[0].measure: unknown measure 'shoe'; measures: "
       "actions_per_prompt, lines_added, planning_user_share"},
      {[](AggregateRequest* r) { AddFilter(r, "")->set_above(1); },
       "measure_filters[0].measure: is required"},
      {[](AggregateRequest* r) { AddFilter(r, "lines_added"); },
       "measure_filters[0]: set at least one of above, at_least, below, "
       "at_most"},
      {[](AggregateRequest* r) {
         MeasureFilter* f = AddFilter(r, "lines_added");
         f->set_above(3);
         f->set_below(2);
       },
       "measure_filters[0]: keeps no value: the range is empty within "
       "'lines_added''s bounds [0, 10000]"},
      {[](AggregateRequest* r) {
         MeasureFilter* f = AddFilter(r, "lines_added");
         f->set_above(3);
         f->set_below(4);  // no whole line strictly between
       },
       "measure_filters[0]: keeps no value"},
      {[](AggregateRequest* r) {
         AddFilter(r, "planning_user_share")->set_above(1);
       },
       "measure_filters[0]: keeps no value: the range is empty within "
       "'planning_user_share''s bounds [0, 1]"},
      {[](AggregateRequest* r) {
         MeasureFilter* f = AddFilter(r, "lines_added");
         f->set_above(3);
         f->set_at_least(4);
       },
       "measure_filters[0]: set at most one of above and at_least"},
      {[](AggregateRequest* r) {
         MeasureFilter* f = AddFilter(r, "lines_added");
         f->set_below(3);
         f->set_at_most(4);
       },
       "measure_filters[0]: set at most one of below and at_most"},
      {[](AggregateRequest* r) {
         AddFilter(r, "lines_added")->set_at_least(NAN);
       },
       "measure_filters[0].at_least: must be a finite number"},
      {[](AggregateRequest* r) {
         AddFilter(r, "lines_added")->set_above(1);
         AddFilter(r, "lines_added")->set_below(100);
       },
       "measure_filters[1]: measure 'lines_added' is filtered twice"},
  };
  for (const Case& c : cases) {
    AggregateRequest r = Request();
    c.edit(&r);
    EXPECT_THAT(
        PlanQuery(config_, r),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  }
}

TEST_F(QueryPlanAnalystTest, GeometricMeanIsAGatedMeasureMetric) {
  AggregateRequest r = Request();
  Metric* g = r.add_metrics();
  g->set_kind(Metric::GEOMETRIC_MEAN);
  g->set_measure("actions_per_prompt");
  ASSERT_OK_AND_ASSIGN(QueryPlan plan, PlanQuery(config_, r));
  EXPECT_EQ(plan.canonical.metrics(0).name(), "geomean_actions_per_prompt");
  EXPECT_EQ(plan.noisy_metrics, 2);
  ASSERT_EQ(plan.gates.size(), 1u);
  EXPECT_EQ(plan.gates[0].measure, "actions_per_prompt");
  EXPECT_EQ(plan.metric_gates[0], 0);

  g->clear_measure();
  EXPECT_THAT(PlanQuery(config_, r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("metrics[1].measure: is required")));
  // A measure without a positive range has no geometric mean.
  config_.datasets[0].measures.push_back(
      {"balance", -100, 0, std::nullopt, std::nullopt, 1});
  g->set_measure("balance");
  EXPECT_THAT(PlanQuery(config_, r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("metrics[1].measure: GEOMETRIC_MEAN needs a "
                                 "positive range; 'balance' has bounds "
                                 "[-100, 0]")));
}

AggregateRequest AccuracyRequest(double half_width, int64_t sessions) {
  AggregateRequest r;
  r.set_dataset("sessions");
  r.add_group_by("expertise");
  Metric* rate = r.add_metrics();
  rate->set_kind(Metric::RATE);
  rate->mutable_rate_of()->set_dimension("outcome");
  rate->mutable_rate_of()->add_any_of("success");
  Metric* share = r.add_metrics();
  share->set_kind(Metric::MEAN);
  share->set_measure("planning_user_share");
  r.mutable_accuracy()->set_half_width(half_width);
  r.mutable_accuracy()->set_cohort_sessions(sessions);
  return r;
}

double WidestPrediction(const QueryPlan& plan, double epsilon, int64_t n) {
  absl::StatusOr<std::vector<double>> widths =
      PredictHalfWidths(plan, epsilon, n);
  EXPECT_OK(widths);
  double widest = 0;
  for (double w : *widths) widest = std::max(widest, w);
  return widest;
}

TEST_F(QueryPlanAnalystTest, AccuracyChoosesTheSmallestEpsilonThatMeetsIt) {
  ASSERT_OK_AND_ASSIGN(QueryPlan plan,
                       PlanQuery(config_, AccuracyRequest(0.1, 4000)));
  EXPECT_TRUE(plan.accuracy_first);
  EXPECT_GT(plan.epsilon, 0);
  EXPECT_LE(plan.epsilon, config_.datasets[0].privacy.max_epsilon);
  EXPECT_EQ(plan.canonical.epsilon(), plan.epsilon);
  EXPECT_FALSE(plan.canonical.has_accuracy());
  // Meets it, and 0.1% less epsilon would not (4 significant digits).
  EXPECT_LE(WidestPrediction(plan, plan.epsilon, 4000), 0.1);
  EXPECT_GT(WidestPrediction(plan, plan.epsilon * 0.999, 4000), 0.1);

  // A looser accuracy or larger cohorts need less epsilon.
  ASSERT_OK_AND_ASSIGN(QueryPlan looser,
                       PlanQuery(config_, AccuracyRequest(0.2, 4000)));
  ASSERT_OK_AND_ASSIGN(QueryPlan larger,
                       PlanQuery(config_, AccuracyRequest(0.1, 16000)));
  EXPECT_LT(looser.epsilon, plan.epsilon);
  EXPECT_LT(larger.epsilon, plan.epsilon);
  EXPECT_GT(looser.epsilon, 0.01 * plan.epsilon) << looser.epsilon;

  // The same epsilon asked directly is the same question.
  AggregateRequest direct = AccuracyRequest(0.1, 4000);
  direct.clear_accuracy();
  direct.set_epsilon(plan.epsilon);
  ASSERT_OK_AND_ASSIGN(QueryPlan same, PlanQuery(config_, direct));
  EXPECT_EQ(same.canonical_bytes, plan.canonical_bytes);
}

TEST_F(QueryPlanAnalystTest, AccuracyBeyondMaxEpsilonNamesTheEpsilonNeeded) {
  absl::StatusOr<QueryPlan> plan =
      PlanQuery(config_, AccuracyRequest(0.002, 500));
  EXPECT_THAT(plan, StatusIs(absl::StatusCode::kFailedPrecondition,
                             HasSubstr("accuracy: a half-width of 0.002 for "
                                       "cohorts of 500 sessions needs "
                                       "epsilon ")));
  EXPECT_THAT(plan, StatusIs(absl::StatusCode::kFailedPrecondition,
                             HasSubstr("above this dataset's per-query "
                                       "maximum of 2")));
  // The epsilon named is the one that meets it.
  const std::string message(plan.status().message());
  const size_t at = message.find("needs epsilon ") + 14;
  const double needed = std::stod(message.substr(at));
  EXPECT_GT(needed, 2);
  config_.datasets[0].privacy.max_epsilon = needed;
  ASSERT_OK_AND_ASSIGN(QueryPlan allowed,
                       PlanQuery(config_, AccuracyRequest(0.002, 500)));
  EXPECT_NEAR(allowed.epsilon, needed, needed * 1e-3);
}

TEST_F(QueryPlanAnalystTest, AccuracyErrorsArePrecise) {
  AggregateRequest r = AccuracyRequest(0.1, 4000);
  r.set_epsilon(1);
  EXPECT_THAT(PlanQuery(config_, r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("epsilon: must be 0 with accuracy")));
  EXPECT_THAT(PlanQuery(config_, AccuracyRequest(0, 2000)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("accuracy.half_width: must be a positive")));
  EXPECT_THAT(PlanQuery(config_, AccuracyRequest(0.02, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("accuracy.cohort_sessions: must be a "
                                 "positive")));
  r = AccuracyRequest(0.1, 4000);
  Metric* q = r.add_metrics();
  q->set_kind(Metric::QUANTILES);
  q->set_measure("actions_per_prompt");
  EXPECT_THAT(PlanQuery(config_, r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("accuracy: metric "
                                 "'quantiles_actions_per_prompt': QUANTILES "
                                 "has no data-independent")));
}

}  // namespace
}  // namespace cohortd
