#include "tools/cohortctl/report/report_figures.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::testing::IsOk;
using ::cohortd::v1::AggregateResponse;
using ::cohortd::v1::DatasetDescription;
using ::testing::DoubleEq;
using ::testing::HasSubstr;

DatasetDescription Description() {
  DatasetDescription description;
  auto* work_mode = description.add_dimensions();
  work_mode->set_name("work_mode");
  for (const char* v : {"build", "fix", "write"}) work_mode->add_values(v);
  auto* month = description.add_dimensions();
  month->set_name("month");
  month->set_derived(true);
  auto* expertise = description.add_dimensions();
  expertise->set_name("expertise");
  for (const char* v : {"novice", "expert"}) expertise->add_values(v);
  auto* occupation = description.add_dimensions();
  occupation->set_name("occupation");
  for (int i = 0; i < 12; ++i)
    occupation->add_values("occ" + std::to_string(i));
  description.mutable_privacy()->set_k(10);
  return description;
}

void AddCohort(AggregateResponse* response,
               const std::map<std::string, std::string>& key,
               const std::string& metric, double value, double low,
               double high) {
  auto* cohort = response->add_cohorts();
  for (const auto& [d, v] : key) (*cohort->mutable_key())[d] = v;
  auto* estimate = cohort->add_estimates();
  estimate->set_metric(metric);
  estimate->set_value(value);
  estimate->set_ci_low(low);
  estimate->set_ci_high(high);
}

TEST(SharesOfTest, ConservativeIntervalsFromCountIntervals) {
  const std::vector<Cell> shares =
      SharesOf({{60, 50, 70, 55.0}, {40, 30, 50, 45.0}});
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_DOUBLE_EQ(shares[0].value, 0.6);
  EXPECT_DOUBLE_EQ(shares[0].low, 50.0 / 100);   // 50 / (50 + 50)
  EXPECT_DOUBLE_EQ(shares[0].high, 70.0 / 100);  // 70 / (70 + 30)
  EXPECT_DOUBLE_EQ(shares[1].low, 30.0 / 100);
  EXPECT_DOUBLE_EQ(shares[1].high, 50.0 / 100);
  EXPECT_THAT(shares[0].truth, ::testing::Optional(DoubleEq(0.55)));
}

TEST(SharesOfTest, NegativeNoisyCountsCountAsZeroAndTruthNeedsAll) {
  const std::vector<Cell> shares =
      SharesOf({{-5, -20, 10, 1.0}, {100, 90, 110, std::nullopt}});
  EXPECT_DOUBLE_EQ(shares[0].value, 0);
  EXPECT_DOUBLE_EQ(shares[0].low, 0);
  EXPECT_DOUBLE_EQ(shares[0].high, 10.0 / (10 + 90));
  EXPECT_DOUBLE_EQ(shares[1].value, 1);
  EXPECT_DOUBLE_EQ(shares[1].high, 1);
  EXPECT_FALSE(shares[0].truth.has_value());
  // The interval holds for every count inside its own interval.
  for (double a : {0.0, 10.0}) {
    for (double b : {90.0, 110.0}) {
      EXPECT_GE(b / (a + b), shares[1].low);
      EXPECT_LE(a / (a + b), shares[0].high);
    }
  }
  EXPECT_TRUE(SharesOf({}).empty());
}

TEST(StudyFiguresTest, SevenFiguresWithinTheQueryAndTotalBudget) {
  const std::vector<FigureSpec> figures = StudyFigures("sessions");
  ASSERT_EQ(figures.size(), 7u);
  double total = 0;
  for (size_t i = 0; i < figures.size(); ++i) {
    EXPECT_EQ(figures[i].number, static_cast<int>(i + 1));
    for (const auto& query : figures[i].queries) {
      EXPECT_EQ(query.dataset(), "sessions");
      EXPECT_GT(query.epsilon(), 0);
      EXPECT_LE(query.epsilon(), 2);
      total += query.epsilon();
    }
  }
  EXPECT_DOUBLE_EQ(total, 13.5);
  // Figure 7 is about problem sessions only: failure signal > 3.
  ASSERT_EQ(figures[6].queries[0].measure_filters_size(), 1);
  EXPECT_EQ(figures[6].queries[0].measure_filters(0).measure(),
            "failure_signal");
}

TEST(BuildFigureTest, WorkModeSharesByMonthWithTruthAndSuppression) {
  const FigureSpec spec = StudyFigures("sessions")[0];
  std::vector<AggregateResponse> responses(2);
  AddCohort(&responses[0], {{"work_mode", "build"}}, "sessions", 300, 280, 320);
  AddCohort(&responses[0], {{"work_mode", "fix"}}, "sessions", 100, 80, 120);
  responses[0].mutable_cost()->set_epsilon(0.5);
  AddCohort(&responses[1], {{"month", "2026-01"}, {"work_mode", "fix"}},
            "sessions", 50, 40, 60);
  AddCohort(&responses[1], {{"month", "2026-01"}, {"work_mode", "build"}},
            "sessions", 150, 140, 160);
  AddCohort(&responses[1], {{"month", "2026-02"}, {"work_mode", "build"}},
            "sessions", 150, 140, 160);
  responses[1].mutable_cost()->set_epsilon(1);
  std::vector<TruthByCohort> truths(2);
  truths[0][{"build"}].metrics["sessions"].value = 290;
  truths[0][{"fix"}].metrics["sessions"].value = 110;

  absl::StatusOr<FigureResult> figure =
      BuildFigure(spec, responses, truths, Description());
  ASSERT_THAT(figure, IsOk());
  EXPECT_DOUBLE_EQ(figure->epsilon, 1.5);
  ASSERT_EQ(figure->panels.size(), 1u);
  const Panel& panel = figure->panels[0];
  EXPECT_EQ(panel.chart, ChartKind::kStackedShares);
  EXPECT_THAT(panel.rows, ::testing::ElementsAre("build", "fix", "write"));
  EXPECT_THAT(panel.columns,
              ::testing::ElementsAre("all months", "2026-01", "2026-02"));
  ASSERT_TRUE(panel.cells[0][0].has_value());
  EXPECT_DOUBLE_EQ(panel.cells[0][0]->value, 0.75);
  EXPECT_DOUBLE_EQ(panel.cells[0][0]->low, 280.0 / (280 + 120));
  EXPECT_THAT(panel.cells[0][0]->truth, ::testing::Optional(DoubleEq(0.725)));
  EXPECT_DOUBLE_EQ(panel.cells[1][1]->value, 0.25);
  EXPECT_DOUBLE_EQ(panel.cells[0][2]->value, 1.0);
  EXPECT_FALSE(panel.cells[1][2].has_value());
  EXPECT_FALSE(panel.cells[2][0].has_value());
  // Domain minus released: 2 of 3 work modes, 3 of 3 x 2 months seen.
  EXPECT_THAT(figure->suppression,
              ::testing::ElementsAre(
                  "work_mode: 2 of 3 cohorts released; not released: write",
                  "month x work_mode: 3 of 6 cohorts released"));
  const Coverage coverage = CoverageOf(*figure);
  EXPECT_EQ(coverage.checked, 2);
  EXPECT_EQ(coverage.inside, 2);

  const std::string text = FormatFigureText(*figure);
  EXPECT_THAT(text, HasSubstr("Figure 1. Share of sessions by work mode"));
  EXPECT_THAT(text, HasSubstr("75.0 [70.0, 80.0]"));
  EXPECT_THAT(text, HasSubstr("ε spent: 1.5"));
  EXPECT_THAT(text, HasSubstr("not released: write"));
}

TEST(BuildFigureTest, TopTenOccupationsByNoisySessions) {
  const FigureSpec spec = StudyFigures("sessions")[4];
  std::vector<AggregateResponse> responses(1);
  for (int i = 0; i < 12; ++i) {
    auto* cohort = responses[0].add_cohorts();
    (*cohort->mutable_key())["occupation"] = "occ" + std::to_string(i);
    auto* sessions = cohort->add_estimates();
    sessions->set_metric("sessions");
    sessions->set_value(1000 + 10 * i);
    auto* rate = cohort->add_estimates();
    rate->set_metric("verified_success");
    rate->set_value(0.25);
    rate->set_ci_low(0.2);
    rate->set_ci_high(0.3);
  }
  absl::StatusOr<FigureResult> figure =
      BuildFigure(spec, responses, {}, Description());
  ASSERT_THAT(figure, IsOk());
  const Panel& panel = figure->panels[0];
  ASSERT_EQ(panel.rows.size(), 10u);
  EXPECT_EQ(panel.rows.front(), "occ11");
  EXPECT_EQ(panel.rows.back(), "occ2");
  EXPECT_TRUE(panel.percent[0]);
  EXPECT_FALSE(panel.percent[1]);
  EXPECT_EQ(CoverageOf(*figure).checked, 0);
  const std::string text = FormatFigureText(*figure);
  EXPECT_THAT(text, HasSubstr("25.0 [20.0, 30.0]"));
  EXPECT_THAT(text, HasSubstr("1110 [0, 0]"));
}

TEST(CohortsBelowKTest, FlagsReleasedCohortsWithFewAccountsInTheTruth) {
  const FigureSpec spec = StudyFigures("sessions")[3];  // by expertise
  AggregateResponse response;
  AddCohort(&response, {{"expertise", "novice"}}, "verified_success", 0.2, 0.1,
            0.3);
  AddCohort(&response, {{"expertise", "expert"}}, "verified_success", 0.3, 0.2,
            0.4);
  AddCohort(&response, {{"expertise", "advanced"}}, "verified_success", 0.3,
            0.2, 0.4);
  TruthByCohort truth;
  truth[{"novice"}].accounts = 10;
  truth[{"expert"}].accounts = 9;
  // "advanced" is absent from the truth: no account at all.
  EXPECT_THAT(CohortsBelowK(spec.queries[0], response, truth, 10),
              ::testing::ElementsAre("expertise=expert has 9 accounts",
                                     "expertise=advanced has 0 accounts"));
  truth[{"expert"}].accounts = 10;
  truth[{"advanced"}].accounts = 500;
  EXPECT_TRUE(CohortsBelowK(spec.queries[0], response, truth, 10).empty());
}

TEST(BuildFigureTest, MismatchedSizesAreAnError) {
  EXPECT_THAT(BuildFigure(StudyFigures("sessions")[0], {}, {}, Description()),
              ::cohortd::testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace cohortd::cohortctl
