#include "tools/cohortctl/report/truth.h"

#include <cmath>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::testing::IsOk;
using ::cohortd::testing::StatusIs;
using ::cohortd::v1::AggregateRequest;
using ::cohortd::v1::Metric;
using ::testing::HasSubstr;

// Columns in an order unlike simulate's, to show the header is read by
// name. Sessions: a1 has three (one without expertise), a2 two, a3 one.
constexpr char kCsv[] =
    "expertise,session_id,task_value_usd,account_id,verified_success,"
    "work_mode\n"
    "novice,s1,10,a1,true,fix\n"
    "novice,s2,30,a1,false,fix\n"
    ",s3,,a1,true,build\n"
    "expert,s4,100,a2,\"true\",build\n"
    "expert,s5,200,a2,,fix\n"
    "novice,s6,20,a3,false,build\n";

GroundTruth Parsed() {
  std::istringstream in(kCsv);
  absl::StatusOr<GroundTruth> truth = GroundTruth::Parse(in);
  EXPECT_THAT(truth, IsOk());
  return *std::move(truth);
}

AggregateRequest ByExpertise() {
  AggregateRequest request;
  request.add_group_by("expertise");
  Metric* sessions = request.add_metrics();
  sessions->set_kind(Metric::SESSIONS);
  sessions->set_name("sessions");
  Metric* mean = request.add_metrics();
  mean->set_kind(Metric::MEAN);
  mean->set_name("value");
  mean->set_measure("task_value_usd");
  Metric* rate = request.add_metrics();
  rate->set_kind(Metric::RATE);
  rate->set_name("vs");
  rate->mutable_rate_of()->set_dimension("verified_success");
  rate->mutable_rate_of()->add_any_of("true");
  return request;
}

TEST(TruthTest, CountsAccountsSessionsMeansAndRatesPerCohort) {
  absl::StatusOr<TruthByCohort> truth = Parsed().Compute(ByExpertise());
  ASSERT_THAT(truth, IsOk());
  // The session without expertise is in no cohort.
  ASSERT_EQ(truth->size(), 2u);
  const CohortTruth& novice = truth->at({"novice"});
  EXPECT_EQ(novice.accounts, 2);
  EXPECT_EQ(novice.sessions, 3);
  EXPECT_DOUBLE_EQ(novice.metrics.at("sessions").value, 3);
  EXPECT_DOUBLE_EQ(novice.metrics.at("value").value, 20);
  EXPECT_DOUBLE_EQ(novice.metrics.at("vs").value, 1.0 / 3);
  const CohortTruth& expert = truth->at({"expert"});
  EXPECT_EQ(expert.accounts, 1);
  // An absent label is neither a match nor a miss (the server's RATE).
  EXPECT_DOUBLE_EQ(expert.metrics.at("vs").value, 1.0);
}

TEST(TruthTest, FiltersAndTwoDimensionKeysInRequestOrder) {
  AggregateRequest request = ByExpertise();
  request.add_group_by("work_mode");
  auto* filter = request.add_filters();
  filter->set_dimension("work_mode");
  filter->add_any_of("fix");
  absl::StatusOr<TruthByCohort> truth = Parsed().Compute(request);
  ASSERT_THAT(truth, IsOk());
  ASSERT_EQ(truth->size(), 2u);
  EXPECT_EQ(truth->at({"novice", "fix"}).sessions, 2);
  EXPECT_EQ(truth->at({"expert", "fix"}).sessions, 1);
  // The only expert fix session has no verified_success label.
  EXPECT_TRUE(std::isnan(truth->at({"expert", "fix"}).metrics.at("vs").value));
}

TEST(TruthTest, LowerEmpiricalQuantilesAndNoGroupBy) {
  AggregateRequest request;
  Metric* quantiles = request.add_metrics();
  quantiles->set_kind(Metric::QUANTILES);
  quantiles->set_name("q");
  quantiles->set_measure("task_value_usd");
  for (double q : {0.05, 0.5, 0.8, 1.0}) quantiles->add_quantiles(q);
  absl::StatusOr<TruthByCohort> truth = Parsed().Compute(request);
  ASSERT_THAT(truth, IsOk());
  const CohortTruth& all = truth->at({});
  EXPECT_EQ(all.sessions, 6);
  EXPECT_EQ(all.accounts, 3);
  // Values 10 20 30 100 200: ceil(q n)-th smallest.
  EXPECT_THAT(all.metrics.at("q").quantiles,
              ::testing::ElementsAre(10, 30, 100, 200));
}

TEST(TruthTest, UnknownColumnsAndBadRowsAreErrors) {
  AggregateRequest request = ByExpertise();
  request.add_group_by("occupation");
  EXPECT_THAT(
      Parsed().Compute(request),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("occupation")));
  std::istringstream short_row("account_id,expertise\na1,novice,extra\n");
  EXPECT_THAT(
      GroundTruth::Parse(short_row),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
  std::istringstream no_account("session_id,expertise\ns1,novice\n");
  EXPECT_THAT(
      GroundTruth::Parse(no_account),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("account_id")));
  EXPECT_THAT(GroundTruth::ReadFile("/nonexistent/truth.csv"),
              StatusIs(absl::StatusCode::kNotFound));
}

// A planted additive model, y = alpha_g + beta_mode + gamma_band exactly,
// with the mode confounded with the cohort: the raw means mix the modes'
// effects in, the fit recovers alpha_g + the overall mix of the controls.
TEST(TruthTest, AdjustedMeansRecoverAPlantedAdditiveModel) {
  const std::map<std::string, double> alpha = {{"a", 1}, {"b", 3}};
  const std::map<std::string, double> beta = {{"x", 0}, {"y", 2}, {"z", 5}};
  struct Cell {
    const char* group;
    const char* mode;
    double value;  // the band's measure: < 10 low (+0), >= 10 high (+10)
    int count;
  };
  const Cell cells[] = {{"a", "x", 5, 6},  {"a", "y", 20, 2}, {"a", "z", 5, 1},
                        {"a", "x", 20, 1}, {"b", "x", 20, 1}, {"b", "y", 5, 3},
                        {"b", "z", 20, 4}, {"b", "y", 20, 1}, {"b", "x", 5, 1}};
  std::string csv = "account_id,group,mode,value,y\n";
  double mix = 0;
  int n = 0, session = 0;
  std::map<std::string, std::pair<double, int>> raw;
  for (const Cell& c : cells) {
    const double effects = beta.at(c.mode) + (c.value >= 10 ? 10 : 0);
    const double y = alpha.at(c.group) + effects;
    for (int i = 0; i < c.count; ++i) {
      csv += absl::StrCat("acc", session++, ",", c.group, ",", c.mode, ",",
                          c.value, ",", y, "\n");
      mix += effects;
      ++n;
      raw[c.group].first += y;
      ++raw[c.group].second;
    }
  }
  mix /= n;
  std::istringstream in(csv);
  ASSERT_OK_AND_ASSIGN(GroundTruth truth, GroundTruth::Parse(in));
  truth.AddBand("value_band", "value", {10});
  AggregateRequest request;
  request.add_group_by("group");
  Metric* adjusted = request.add_metrics();
  adjusted->set_kind(Metric::MEAN);
  adjusted->set_name("adjusted");
  adjusted->set_measure("y");
  adjusted->add_adjust_for("mode");
  adjusted->add_adjust_for("value_band");
  Metric* plain = request.add_metrics();
  plain->set_kind(Metric::MEAN);
  plain->set_name("raw");
  plain->set_measure("y");
  ASSERT_OK_AND_ASSIGN(TruthByCohort cohorts, truth.Compute(request));
  for (const auto& [group, a] : alpha) {
    const CohortTruth& cohort = cohorts.at({group});
    EXPECT_NEAR(cohort.metrics.at("adjusted").value, a + mix, 1e-9) << group;
    EXPECT_NEAR(cohort.metrics.at("raw").value,
                raw[group].first / raw[group].second, 1e-9);
  }
  // The confounding is real: the raw difference is not alpha's.
  EXPECT_GT(std::fabs((cohorts.at({"b"}).metrics.at("raw").value -
                       cohorts.at({"a"}).metrics.at("raw").value) -
                      2.0),
            0.5);

  // A control that is the cohort itself leaves nothing to separate them.
  adjusted->clear_adjust_for();
  adjusted->add_adjust_for("group");
  ASSERT_OK_AND_ASSIGN(TruthByCohort singular, truth.Compute(request));
  EXPECT_TRUE(std::isnan(singular.at({"a"}).metrics.at("adjusted").value));
  adjusted->clear_adjust_for();
  adjusted->add_adjust_for("nope");
  EXPECT_THAT(truth.Compute(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no dimension column 'nope'")));
}

}  // namespace
}  // namespace cohortd::cohortctl
