#include "tools/cohortctl/metric_spec.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::testing::StatusIs;
using ::cohortd::v1::Metric;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(MetricSpecTest, CountsSumsAndMeans) {
  EXPECT_EQ(ParseMetricSpec("sessions")->kind(), Metric::SESSIONS);
  EXPECT_EQ(ParseMetricSpec("accounts")->kind(), Metric::ACCOUNTS);
  ASSERT_OK_AND_ASSIGN(Metric sum, ParseMetricSpec("sum:lines_added"));
  EXPECT_EQ(sum.kind(), Metric::SUM);
  EXPECT_EQ(sum.measure(), "lines_added");
  EXPECT_TRUE(sum.name().empty());
  ASSERT_OK_AND_ASSIGN(Metric mean,
                       ParseMetricSpec("value=mean:task_value_usd"));
  EXPECT_EQ(mean.kind(), Metric::MEAN);
  EXPECT_EQ(mean.name(), "value");
}

TEST(MetricSpecTest, RateWithAndWithoutName) {
  ASSERT_OK_AND_ASSIGN(Metric rate,
                       ParseMetricSpec("rate:verified_success=true"));
  EXPECT_EQ(rate.kind(), Metric::RATE);
  EXPECT_TRUE(rate.name().empty());
  EXPECT_EQ(rate.rate_of().dimension(), "verified_success");
  EXPECT_THAT(rate.rate_of().any_of(), ElementsAre("true"));

  ASSERT_OK_AND_ASSIGN(Metric named,
                       ParseMetricSpec("partial=rate:outcome=success,partial"));
  EXPECT_EQ(named.name(), "partial");
  EXPECT_EQ(named.rate_of().dimension(), "outcome");
  EXPECT_THAT(named.rate_of().any_of(), ElementsAre("success", "partial"));
}

TEST(MetricSpecTest, QuantilesDefaultToABoxPlot) {
  ASSERT_OK_AND_ASSIGN(Metric q,
                       ParseMetricSpec("quantiles:actions_per_prompt"));
  EXPECT_EQ(q.kind(), Metric::QUANTILES);
  EXPECT_EQ(q.measure(), "actions_per_prompt");
  EXPECT_THAT(q.quantiles(), ElementsAre(0.05, 0.25, 0.5, 0.75, 0.95));
  ASSERT_OK_AND_ASSIGN(Metric median,
                       ParseMetricSpec("med=quantiles:prompts:0.5"));
  EXPECT_EQ(median.name(), "med");
  EXPECT_THAT(median.quantiles(), ElementsAre(0.5));
}

TEST(MetricSpecTest, SyntaxErrorsAreExplained) {
  EXPECT_THAT(ParseMetricSpec("median:prompts"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown metric 'median'")));
  EXPECT_THAT(
      ParseMetricSpec("sum"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sum:MEASURE")));
  EXPECT_THAT(ParseMetricSpec("sessions:x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("takes no argument")));
  EXPECT_THAT(ParseMetricSpec("rate:outcome"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseMetricSpec("quantiles:prompts:0.5,1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("strictly between 0 and 1")));
  EXPECT_THAT(ParseMetricSpec("quantiles:prompts:0.5,,0.7"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("empty quantile")));
  EXPECT_THAT(
      ParseMetricSpec("=sessions"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty name")));
}

TEST(MetricSpecTest, OutputNames) {
  EXPECT_EQ(MetricOutputName(*ParseMetricSpec("sessions")), "sessions");
  EXPECT_EQ(MetricOutputName(*ParseMetricSpec("mean:prompts")), "mean_prompts");
  EXPECT_EQ(MetricOutputName(*ParseMetricSpec("rate:outcome=success,partial")),
            "rate_outcome_success_partial");
  EXPECT_EQ(MetricOutputName(*ParseMetricSpec("vs=rate:verified_success=true")),
            "vs");
}

TEST(MetricSpecTest, FiltersAndGroupBy) {
  ASSERT_OK_AND_ASSIGN(cohortd::v1::Filter filter,
                       ParseFilterSpec("outcome = success, partial"));
  EXPECT_EQ(filter.dimension(), "outcome");
  EXPECT_THAT(filter.any_of(), ElementsAre("success", "partial"));
  EXPECT_THAT(ParseFilterSpec("outcome"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseFilterSpec("=x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(*ParseGroupBy("month, work_mode"),
              ElementsAre("month", "work_mode"));
  EXPECT_THAT(ParseGroupBy("month,month"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("more than once")));
}

}  // namespace
}  // namespace cohortd::cohortctl
