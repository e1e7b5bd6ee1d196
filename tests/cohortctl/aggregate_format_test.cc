#include "tools/cohortctl/aggregate_format.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::v1::AggregateResponse;
using ::testing::HasSubstr;

void AddEstimate(cohortd::v1::Cohort* cohort, const std::string& metric,
                 double value, double low, double high) {
  auto* estimate = cohort->add_estimates();
  estimate->set_metric(metric);
  estimate->set_value(value);
  estimate->set_ci_low(low);
  estimate->set_ci_high(high);
}

// Two cohorts, deliberately out of key order.
AggregateResponse TwoCohorts() {
  AggregateResponse response;
  auto* expert = response.add_cohorts();
  (*expert->mutable_key())["expertise"] = "novice";
  AddEstimate(expert, "sessions", 1234.4, 1200.1, 1268.9);
  AddEstimate(expert, "vs", 0.152, 0.14, 0.1641);
  auto* advanced = response.add_cohorts();
  (*advanced->mutable_key())["expertise"] = "advanced";
  AddEstimate(advanced, "sessions", 98765, 98000, 99530);
  AddEstimate(advanced, "vs", 0.3, 0.29, 0.31);
  response.set_release_id("rel-42");
  response.mutable_cost()->set_epsilon(0.5);
  response.mutable_cost()->set_delta(1e-9);
  response.mutable_cost()->set_rho(0.03125);
  response.mutable_budget()->mutable_total()->set_epsilon(10);
  response.mutable_budget()->mutable_remaining()->set_epsilon(9.5);
  return response;
}

TEST(AggregateFormatTest, TableSortsByKeyAndAlignsIntervalParts) {
  EXPECT_EQ(FormatTable(AggregateTable(TwoCohorts(), {"expertise"})),
            "expertise              sessions                       vs\n"
            "---------  --------------------  -----------------------\n"
            "advanced   98765 [98000, 99530]  0.3000 [0.2900, 0.3100]\n"
            "novice      1234 [ 1200,  1269]  0.1520 [0.1400, 0.1641]\n");
}

TEST(AggregateFormatTest, MetricsInTheOrderAsked) {
  // The server returns metrics in its canonical order; the user asked vs
  // first.
  const Table table = AggregateTable(TwoCohorts(), {"expertise"}, {"vs"});
  EXPECT_THAT(table.header,
              ::testing::ElementsAre("expertise", "vs", "sessions"));
  EXPECT_THAT(
      FormatAggregateCsv(TwoCohorts(), {"expertise"}, {"vs", "sessions"}),
      ::testing::StartsWith("expertise,vs,vs_ci_low,vs_ci_high,"
                            "sessions,"));
}

TEST(AggregateFormatTest, NoCohortReleasedKeepsTheHeader) {
  AggregateResponse empty;
  empty.set_release_id("rel-0");
  EXPECT_EQ(FormatAggregateCsv(empty, {"occupation"}, {"sessions"}),
            "occupation,sessions,sessions_ci_low,sessions_ci_high\n");
  EXPECT_THAT(FormatAggregateText(empty, {"occupation"}, {"sessions"}),
              ::testing::StartsWith("occupation  sessions\n"));
}

TEST(AggregateFormatTest, FooterHasReleaseCostAndBudget) {
  const std::string text = FormatAggregateText(TwoCohorts(), {"expertise"});
  EXPECT_THAT(text, HasSubstr("2 cohorts released; release rel-42 (new)\n"));
  EXPECT_THAT(text, HasSubstr("cost       ε=0.5 δ=1e-09 ρ=0.03125\n"));
  EXPECT_THAT(text, HasSubstr("remaining  ε=9.5 δ=0 ρ=0  (of ε=10 δ=0 ρ=0)"));

  AggregateResponse cached = TwoCohorts();
  cached.set_from_cache(true);
  EXPECT_THAT(FormatAggregateText(cached, {"expertise"}),
              HasSubstr("(from cache: the stored release, charged nothing)"));
}

TEST(AggregateFormatTest, QuantilesGetOneColumnEach) {
  AggregateResponse response;
  auto* cohort = response.add_cohorts();
  (*cohort->mutable_key())["expertise"] = "novice";
  auto* estimate = cohort->add_estimates();
  estimate->set_metric("apm");
  for (double q : {0.25, 0.5}) {
    auto* quantile = estimate->add_quantiles();
    quantile->set_q(q);
    quantile->set_value(q * 20);
    quantile->set_ci_low(q * 18);
    quantile->set_ci_high(q * 22);
  }
  const Table table = AggregateTable(response, {"expertise"});
  EXPECT_THAT(table.header,
              ::testing::ElementsAre("expertise", "apm q0.25", "apm q0.5"));
  EXPECT_THAT(table.rows[0][2], "10.00 [9.000, 11.00]");
  EXPECT_EQ(FormatAggregateCsv(response, {"expertise"}),
            "expertise,apm_q0.25,apm_q0.25_ci_low,apm_q0.25_ci_high,"
            "apm_q0.5,apm_q0.5_ci_low,apm_q0.5_ci_high\n"
            "novice,5,4.5,5.5,10,9,11\n");
}

TEST(AggregateFormatTest, CsvHasThreeColumnsPerMetricAndFullPrecision) {
  EXPECT_EQ(FormatAggregateCsv(TwoCohorts(), {"expertise"}),
            "expertise,sessions,sessions_ci_low,sessions_ci_high,vs,"
            "vs_ci_low,vs_ci_high\n"
            "advanced,98765,98000,99530,0.3,0.29,0.31\n"
            "novice,1234.4,1200.1,1268.9,0.152,0.14,0.1641\n");
}

TEST(AggregateFormatTest, MissingEstimatesAndUngroupedKeys) {
  AggregateResponse response;
  auto* a = response.add_cohorts();
  (*a->mutable_key())["month"] = "2026-02";
  (*a->mutable_key())["client"] = "web";
  AddEstimate(a, "sessions", 10, 9, 11);
  auto* b = response.add_cohorts();
  (*b->mutable_key())["month"] = "2026-01";
  (*b->mutable_key())["client"] = "cli";
  const Table table = AggregateTable(response, {"month"});
  EXPECT_THAT(table.header,
              ::testing::ElementsAre("month", "client", "sessions"));
  EXPECT_EQ(table.rows[0][0], "2026-01");
  EXPECT_EQ(table.rows[0][2], "-");
}

TEST(AggregateFormatTest, JsonUsesTheProtobufMapping) {
  ASSERT_OK_AND_ASSIGN(std::string json, FormatJson(TwoCohorts()));
  EXPECT_THAT(json, HasSubstr("\"releaseId\": \"rel-42\""));
  EXPECT_THAT(json, HasSubstr("\"fromCache\": false"));
  EXPECT_THAT(json, HasSubstr("\"ciLow\""));
  EXPECT_EQ(json.back(), '\n');
}

}  // namespace
}  // namespace cohortd::cohortctl
