#include "tools/cohortctl/truth.h"

#include <cmath>
#include <sstream>

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

}  // namespace
}  // namespace cohortd::cohortctl
