// The report's analyst additions (issue 11): the study figures use
// geometric means (figure 3), a lines-added measure filter (figure 5) and
// the problem-session filter (figure 7); every figure says what its error
// bars cover; the ground truth computes geometric means and measure
// filters the way the server does.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tools/cohortctl/report/report_figures.h"
#include "tools/cohortctl/report/truth.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::v1::AggregateRequest;
using ::cohortd::v1::AggregateResponse;
using ::cohortd::v1::DatasetDescription;
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
  // With the study's kind of interval: noise and clustered sampling.
  EXPECT_EQ(five.interval(), cohortd::v1::NOISE_AND_SAMPLING);
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

TEST(ReportAnalystTest, FiguresFourAndSevenAskAdjustedBesideRaw) {
  const std::vector<FigureSpec> figures = StudyFigures("sessions");
  for (int n : {4, 7}) {
    const FigureSpec& spec = Figure(figures, n);
    ASSERT_EQ(spec.queries.size(), 2u) << n;
    // Raw: the study's kind of interval, noise and clustered sampling.
    const AggregateRequest& raw = spec.queries[0];
    EXPECT_EQ(raw.interval(), cohortd::v1::NOISE_AND_SAMPLING) << n;
    for (const Metric& m : raw.metrics()) EXPECT_TRUE(m.adjust_for().empty());
    // Adjusted: noise-only intervals (cohortd has no other for them), the
    // same rates on the same population, at the per-query maximum.
    const AggregateRequest& q = spec.queries[1];
    EXPECT_EQ(q.interval(), cohortd::v1::NOISE) << n;
    EXPECT_EQ(q.epsilon(), 2) << n;
    EXPECT_EQ(q.measure_filters_size(), raw.measure_filters_size()) << n;
    ASSERT_EQ(q.metrics_size(), raw.metrics_size()) << n;
    for (int i = 0; i < q.metrics_size(); ++i) {
      const Metric& m = q.metrics(i);
      EXPECT_EQ(m.kind(), Metric::RATE);
      EXPECT_EQ(m.name(), raw.metrics(i).name() + "_adjusted");
      EXPECT_EQ(m.rate_of().SerializeAsString(),
                raw.metrics(i).rate_of().SerializeAsString());
      const std::vector<std::string> controls(m.adjust_for().begin(),
                                              m.adjust_for().end());
      EXPECT_EQ(controls, (std::vector<std::string>{
                              "work_mode", "task_value_band", "occupation"}));
      // A control is never the grouped-by dimension nor the rate's label.
      for (const std::string& c : controls) {
        EXPECT_NE(c, q.group_by(0));
        EXPECT_NE(c, m.rate_of().dimension());
      }
    }
  }
}

TEST(ReportAnalystTest, AdjustForMonthsAddsTheMonthWithItsFilter) {
  AggregateResponse by_month;
  for (const char* m : {"2026-01", "2025-12", "2026-01"}) {
    (*by_month.add_cohorts()->mutable_key())["month"] = m;
  }
  const std::vector<std::string> months = ReleasedMonths(by_month);
  EXPECT_EQ(months, (std::vector<std::string>{"2025-12", "2026-01"}));

  FigureSpec four = StudyFigures("sessions")[3];
  AdjustForMonths({}, &four);  // no months: unchanged
  EXPECT_EQ(four.queries[1].filters_size(), 0);
  AdjustForMonths(months, &four);
  EXPECT_EQ(four.queries[0].filters_size(), 0);  // the raw release
  ASSERT_EQ(four.queries[1].filters_size(), 1);
  EXPECT_EQ(four.queries[1].filters(0).dimension(), "month");
  EXPECT_EQ(four.queries[1].filters(0).any_of_size(), 2);
  for (const Metric& m : four.queries[1].metrics()) {
    const bool has_month =
        std::find(m.adjust_for().begin(), m.adjust_for().end(), "month") !=
        m.adjust_for().end();
    EXPECT_EQ(has_month, !m.adjust_for().empty()) << m.name();
  }
  // A figure without adjusted metrics gets no month filter.
  FigureSpec five = StudyFigures("sessions")[4];
  AdjustForMonths(months, &five);
  EXPECT_EQ(five.queries[0].filters_size(), 0);
}

TEST(ReportAnalystTest, AdjustedHonestyToleranceIsTheReleasedInterval) {
  const FigureSpec spec = StudyFigures("sessions")[6];  // abandonment
  DatasetDescription description;
  auto* expertise = description.add_dimensions();
  expertise->set_name("expertise");
  for (const char* v : {"novice", "expert"}) expertise->add_values(v);
  AggregateResponse response, adjusted_response;
  auto add = [&](const char* level, double raw, double adjusted) {
    auto* cohort = response.add_cohorts();
    (*cohort->mutable_key())["expertise"] = level;
    auto* r = cohort->add_estimates();
    r->set_metric("abandoned");
    r->set_value(raw);
    r->set_ci_low(raw - 0.01);
    r->set_ci_high(raw + 0.01);
    cohort = adjusted_response.add_cohorts();
    (*cohort->mutable_key())["expertise"] = level;
    auto* a = cohort->add_estimates();
    a->set_metric("abandoned_adjusted");
    a->set_value(adjusted);
    a->set_ci_low(adjusted - 0.02);   // asymmetric: reaches 0.02 down
    a->set_ci_high(adjusted + 0.05);  // and 0.05 up
  };
  add("novice", 0.20, 0.17);
  add("expert", 0.06, 0.07);
  TruthByCohort truth, adjusted_truth;
  truth[{"novice"}].metrics["abandoned"].value = 0.19;
  adjusted_truth[{"novice"}].metrics["abandoned_adjusted"].value = 0.21;
  truth[{"expert"}].metrics["abandoned"].value = 0.06;
  adjusted_truth[{"expert"}].metrics["abandoned_adjusted"].value = 0.04;
  ASSERT_OK_AND_ASSIGN(FigureResult figure,
                       BuildFigure(spec, {response, adjusted_response},
                                   {truth, adjusted_truth}, description));
  ASSERT_EQ(figure.panels.size(), 1u);
  EXPECT_EQ(figure.panels[0].columns,
            (std::vector<std::string>{"abandoned", "abandoned, adjusted"}));
  EXPECT_FALSE(figure.panels[0].cells[0][0]->adjusted);
  EXPECT_TRUE(figure.panels[0].cells[0][1]->adjusted);
  int misses = 0;
  const std::vector<std::string> lines = AdjustedHonesty(figure, &misses);
  ASSERT_EQ(lines.size(), 2u);  // raw cells are not in it
  EXPECT_EQ(misses, 1);
  EXPECT_THAT(lines[0], HasSubstr("novice abandoned, adjusted: released 17.0, "
                                  "fixed-effects truth 21.0, off by 4.0 of a "
                                  "tolerance 5.0 (inside)"));
  EXPECT_THAT(lines[1], HasSubstr("off by 3.0 of a tolerance 2.0 (OUTSIDE)"));
  EXPECT_THAT(figure.notes, Contains(HasSubstr(
                                "fixed effects for work_mode, task_value_band, "
                                "occupation")));
}

}  // namespace
}  // namespace cohortd::cohortctl
