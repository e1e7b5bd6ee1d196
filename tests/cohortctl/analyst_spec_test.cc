// cohortctl's analyst syntax (issue 11): geomean:MEASURE, measure filters
// (--filter MEASURE>V ...) and --accuracy HALF_WIDTH@SESSIONS.
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

}  // namespace
}  // namespace cohortd::cohortctl
