// cohortctl's analyst syntax (issue 11): geomean:MEASURE, measure filters
// (--filter MEASURE>V ...), --accuracy HALF_WIDTH@SESSIONS, --interval and
// --adjust-for.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tools/cohortctl/metric_spec.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::testing::StatusIs;
using ::cohortd::v1::AggregateRequest;
using ::cohortd::v1::Metric;
using ::testing::HasSubstr;

TEST(AnalystSpecTest, GeometricMean) {
  ASSERT_OK_AND_ASSIGN(Metric m, ParseMetricSpec("geomean:actions_per_prompt"));
  EXPECT_EQ(m.kind(), Metric::GEOMETRIC_MEAN);
  EXPECT_EQ(m.measure(), "actions_per_prompt");
  EXPECT_EQ(MetricOutputName(m), "geomean_actions_per_prompt");
  ASSERT_OK_AND_ASSIGN(Metric named, ParseMetricSpec("g=geomean:prompts"));
  EXPECT_EQ(MetricOutputName(named), "g");
  EXPECT_THAT(ParseMetricSpec("geomean"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("geomean:MEASURE")));
  EXPECT_THAT(ParseMetricSpec("nope"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("geomean:MEASURE")));
}

TEST(AnalystSpecTest, MeasureFiltersMakeOneRangePerMeasure) {
  EXPECT_TRUE(IsMeasureFilterSpec("lines_added>0"));
  EXPECT_FALSE(IsMeasureFilterSpec("outcome=success"));
  AggregateRequest r;
  ASSERT_OK(AddMeasureFilterSpec("lines_added>0", &r));
  ASSERT_OK(AddMeasureFilterSpec("failure_signal >= 3", &r));
  ASSERT_OK(AddMeasureFilterSpec("lines_added<=500", &r));
  ASSERT_OK(AddMeasureFilterSpec("prompts<10", &r));
  ASSERT_EQ(r.measure_filters_size(), 3);
  const auto& lines = r.measure_filters(0);
  EXPECT_EQ(lines.measure(), "lines_added");
  EXPECT_TRUE(lines.has_above());
  EXPECT_EQ(lines.above(), 0);
  EXPECT_FALSE(lines.has_at_least());
  EXPECT_TRUE(lines.has_at_most());
  EXPECT_EQ(lines.at_most(), 500);
  EXPECT_EQ(r.measure_filters(1).measure(), "failure_signal");
  EXPECT_EQ(r.measure_filters(1).at_least(), 3);
  EXPECT_EQ(r.measure_filters(2).below(), 10);

  EXPECT_THAT(AddMeasureFilterSpec("lines_added>=2", &r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'lines_added' has two lower bounds")));
  for (const char* bad : {">3", "x>", "x>abc", "x<=inf", "x=>3"}) {
    EXPECT_THAT(
        AddMeasureFilterSpec(bad, &r),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("MEASURE>V")))
        << bad;
  }
}

TEST(AnalystSpecTest, Accuracy) {
  ASSERT_OK_AND_ASSIGN(cohortd::v1::Accuracy a, ParseAccuracySpec("0.05@2000"));
  EXPECT_EQ(a.half_width(), 0.05);
  EXPECT_EQ(a.cohort_sessions(), 2000);
  for (const char* bad : {"0.05", "0@100", "-1@100", "0.05@0", "x@1", "1@y"}) {
    EXPECT_THAT(ParseAccuracySpec(bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("HALF_WIDTH@SESSIONS")))
        << bad;
  }
}

TEST(AnalystSpecTest, IntervalKinds) {
  ASSERT_OK_AND_ASSIGN(cohortd::v1::IntervalKind noise,
                       ParseIntervalSpec("noise"));
  EXPECT_EQ(noise, cohortd::v1::NOISE);
  ASSERT_OK_AND_ASSIGN(cohortd::v1::IntervalKind both,
                       ParseIntervalSpec(" Noise_And_Sampling "));
  EXPECT_EQ(both, cohortd::v1::NOISE_AND_SAMPLING);
  for (const char* bad : {"", "sampling", "noise_and", "clustered"}) {
    EXPECT_THAT(ParseIntervalSpec(bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("noise_and_sampling")))
        << bad;
  }
}

AggregateRequest ExpertiseQuery() {
  AggregateRequest r;
  r.add_group_by("expertise");
  for (const char* spec : {"sessions", "vs=rate:verified_success=true",
                           "mean:task_value_usd", "quantiles:prompts"}) {
    *r.add_metrics() = *ParseMetricSpec(spec);
  }
  return r;
}

TEST(AnalystSpecTest, AdjustForAppliesToRatesAndMeansOnly) {
  AggregateRequest r = ExpertiseQuery();
  ASSERT_OK(ApplyAdjustFor("work_mode, task_value_band,occupation", &r));
  const std::vector<std::string> controls = {"work_mode", "task_value_band",
                                             "occupation"};
  EXPECT_EQ(r.metrics(0).adjust_for_size(), 0);  // sessions
  EXPECT_EQ(std::vector<std::string>(r.metrics(1).adjust_for().begin(),
                                     r.metrics(1).adjust_for().end()),
            controls);
  EXPECT_EQ(r.metrics(2).adjust_for_size(), 3);  // mean
  EXPECT_EQ(r.metrics(3).adjust_for_size(), 0);  // quantiles
  // Applying again replaces, not appends.
  ASSERT_OK(ApplyAdjustFor("work_mode", &r));
  EXPECT_EQ(r.metrics(1).adjust_for_size(), 1);
}

TEST(AnalystSpecTest, AdjustForErrors) {
  AggregateRequest r = ExpertiseQuery();
  EXPECT_THAT(ApplyAdjustFor("", &r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("must list dimensions")));
  EXPECT_THAT(ApplyAdjustFor("work_mode,,month", &r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("must list dimensions")));
  EXPECT_THAT(ApplyAdjustFor("work_mode,work_mode", &r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'work_mode' more than once")));
  EXPECT_THAT(ApplyAdjustFor("work_mode,expertise", &r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'expertise' is also in --group-by")));
  AggregateRequest sampling = ExpertiseQuery();
  sampling.set_interval(cohortd::v1::NOISE_AND_SAMPLING);
  EXPECT_THAT(
      ApplyAdjustFor("work_mode", &sampling),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("noise-only")));
  AggregateRequest counts;
  *counts.add_metrics() = *ParseMetricSpec("sessions");
  EXPECT_THAT(ApplyAdjustFor("work_mode", &counts),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("rate: and mean:")));
  // A failed call leaves the metrics untouched.
  EXPECT_EQ(r.metrics(1).adjust_for_size(), 0);
}

}  // namespace
}  // namespace cohortd::cohortctl
