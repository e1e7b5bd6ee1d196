// The report's analyst additions (issue 11): the study figures use
// geometric means (figure 3), a lines-added measure filter (figure 5) and
// the problem-session filter (figure 7); every figure says what its error
// bars cover; the ground truth computes geometric means and measure
// filters the way the server does.
#include <cmath>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tools/cohortctl/report_figures.h"
#include "tools/cohortctl/truth.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::v1::AggregateRequest;
using ::cohortd::v1::Metric;
using ::testing::Contains;
using ::testing::HasSubstr;

const FigureSpec& Figure(const std::vector<FigureSpec>& figures, int n) {
  return figures[n - 1];
}

TEST(ReportAnalystTest, FiguresAskWhatTheStudyShowed) {
  const std::vector<FigureSpec> figures = StudyFigures("sessions");
  ASSERT_EQ(figures.size(), 7u);
  // Figure 3: geometric means beside the quantiles.
  int geometric = 0;
  for (const Metric& m : Figure(figures, 3).queries[0].metrics()) {
    EXPECT_NE(m.kind(), Metric::MEAN);
    geometric += m.kind() == Metric::GEOMETRIC_MEAN;
  }
  EXPECT_EQ(geometric, 2);
  // Figure 5: among sessions with at least one line added.
  const AggregateRequest& five = Figure(figures, 5).queries[0];
  ASSERT_EQ(five.measure_filters_size(), 1);
  EXPECT_EQ(five.measure_filters(0).measure(), "lines_added");
  EXPECT_EQ(five.measure_filters(0).at_least(), 1);
  // Figure 7: problem sessions are those with failure signal > 3.
  const AggregateRequest& seven = Figure(figures, 7).queries[0];
  ASSERT_EQ(seven.measure_filters_size(), 1);
  EXPECT_EQ(seven.measure_filters(0).measure(), "failure_signal");
  EXPECT_EQ(seven.measure_filters(0).above(), 3);
  EXPECT_EQ(seven.filters_size(), 0);
}

TEST(ReportAnalystTest, EveryFigureSaysWhatItsErrorBarsCover) {
  for (const FigureSpec& spec : StudyFigures("sessions")) {
    const std::vector<std::string> notes = ErrorBarNotes(spec);
    ASSERT_FALSE(notes.empty()) << spec.number;
    for (const std::string& note : notes) {
      EXPECT_THAT(note, HasSubstr("Error bars: ")) << spec.number;
      EXPECT_THAT(note, HasSubstr("DP noise")) << spec.number;
    }
  }
  const std::vector<FigureSpec> figures = StudyFigures("sessions");
  EXPECT_THAT(ErrorBarNotes(Figure(figures, 1)),
              Contains(HasSubstr("at least 95% intervals of the DP noise "
                                 "only")));
  EXPECT_THAT(ErrorBarNotes(Figure(figures, 7)),
              Contains(HasSubstr("Population: sessions with failure_signal "
                                 "> 3.")));
  FigureSpec sampled = Figure(figures, 4);
  sampled.queries[0].set_interval(cohortd::v1::NOISE_AND_SAMPLING);
  EXPECT_THAT(ErrorBarNotes(sampled),
              Contains(HasSubstr("95% intervals for the population value: "
                                 "the DP noise and the sampling error "
                                 "clustered by account")));
}

TEST(ReportAnalystTest, TruthHasGeometricMeansAndMeasureFilters) {
  std::istringstream csv(
      "account_id,expertise,actions_per_prompt,lines_added\n"
      "a1,novice,2,0\n"
      "a1,novice,8,3\n"
      "a2,novice,32,5\n"
      "a3,novice,0,\n");
  ASSERT_OK_AND_ASSIGN(GroundTruth truth, GroundTruth::Parse(csv));
  cohortd::v1::DatasetDescription description;
  auto* actions = description.add_measures();
  actions->set_name("actions_per_prompt");
  actions->set_lower(0);
  actions->set_upper(200);
  actions->set_granularity(0.01);
  truth.SetGeometricFloors(description);

  AggregateRequest request;
  request.add_group_by("expertise");
  Metric* geo = request.add_metrics();
  geo->set_kind(Metric::GEOMETRIC_MEAN);
  geo->set_measure("actions_per_prompt");
  ASSERT_OK_AND_ASSIGN(TruthByCohort all, truth.Compute(request));
  // (2 * 8 * 32 * 0.01)^(1/4): the zero counts as the floor 0.01.
  EXPECT_NEAR(all.at({"novice"}).metrics.at("geomean_actions_per_prompt").value,
              std::pow(2 * 8 * 32 * 0.01, 0.25), 1e-9);

  auto* filter = request.add_measure_filters();
  filter->set_measure("lines_added");
  filter->set_above(0);
  ASSERT_OK_AND_ASSIGN(TruthByCohort lines, truth.Compute(request));
  EXPECT_EQ(lines.at({"novice"}).sessions, 2);
  EXPECT_NEAR(
      lines.at({"novice"}).metrics.at("geomean_actions_per_prompt").value, 16,
      1e-9);
  filter->set_measure("nope");
  EXPECT_FALSE(truth.Compute(request).ok());
}

}  // namespace
}  // namespace cohortd::cohortctl
