#include "server/ingest/validator.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

cohortd::v1::Observation Valid() {
  cohortd::v1::Observation obs;
  obs.set_session_id("s-1");
  obs.set_account_id("acct-1");
  obs.mutable_session_start()->set_seconds(1767225600);  // 2026-01-01
  obs.set_source("work_mode_classifier@3");
  (*obs.mutable_labels())["work_mode"] = "fix";
  (*obs.mutable_labels())["task_topic"] = "rust-borrowck";
  (*obs.mutable_measures())["actions_per_prompt"] = 12.5;
  return obs;
}

class ValidatorTest : public ::testing::Test {
 protected:
  DatasetSpec dataset_ = testing::TestDataset();
};

TEST_F(ValidatorTest, AcceptsValidObservation) {
  EXPECT_EQ(ValidateObservation(dataset_, Valid()), std::nullopt);
}

TEST_F(ValidatorTest, RequiresIds) {
  auto obs = Valid();
  obs.clear_session_id();
  auto e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "session_id");
  EXPECT_EQ(e->reason_class, "missing_field");

  obs = Valid();
  obs.clear_account_id();
  e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "account_id");

  obs = Valid();
  obs.clear_source();
  e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "source");
}

TEST_F(ValidatorTest, RejectsOverlongSessionId) {
  auto obs = Valid();
  obs.set_session_id(std::string(kMaxSessionIdBytes + 1, 'x'));
  auto e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "session_id");
  EXPECT_THAT(e->reason, HasSubstr("at most 256"));
}

TEST_F(ValidatorTest, RequiresPlausibleSessionStart) {
  auto obs = Valid();
  obs.clear_session_start();
  auto e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "session_start");
  EXPECT_EQ(e->reason_class, "missing_field");

  // Milliseconds passed as seconds: far in the future.
  obs = Valid();
  obs.mutable_session_start()->set_seconds(int64_t{1767225600} * 1000);
  e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->reason_class, "invalid_timestamp");
}

TEST_F(ValidatorTest, RejectsUnknownDimensionNamingTheKnownOnes) {
  auto obs = Valid();
  (*obs.mutable_labels())["mood"] = "happy";
  auto e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "labels.mood");
  EXPECT_THAT(e->reason, HasSubstr("work_mode"));
  EXPECT_THAT(e->reason, Not(HasSubstr("month")));  // derived, not pushable
}

TEST_F(ValidatorTest, RejectsValueOutsideClosedDomainListingAllowed) {
  auto obs = Valid();
  (*obs.mutable_labels())["work_mode"] = "dance";
  auto e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "labels.work_mode");
  EXPECT_EQ(e->reason_class, "value_not_in_domain");
  EXPECT_THAT(e->reason, HasSubstr("'dance'"));
  EXPECT_THAT(e->reason, HasSubstr("build, fix, test, write"));
}

TEST_F(ValidatorTest, RejectsDerivedDimension) {
  auto obs = Valid();
  (*obs.mutable_labels())["month"] = "2026-01";
  auto e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "labels.month");
  EXPECT_EQ(e->reason_class, "derived_dimension");
}

TEST_F(ValidatorTest, RejectsOverlongOpenDomainValue) {
  auto obs = Valid();
  (*obs.mutable_labels())["task_topic"] = std::string(17, 'a');
  auto e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "labels.task_topic");
  EXPECT_EQ(e->reason_class, "value_too_long");
  EXPECT_THAT(e->reason, HasSubstr("at most 16"));
}

TEST_F(ValidatorTest, RejectsUnknownMeasure) {
  auto obs = Valid();
  (*obs.mutable_measures())["happiness"] = 3;
  auto e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "measures.happiness");
  EXPECT_THAT(e->reason, HasSubstr("lines_added"));
}

TEST_F(ValidatorTest, RejectsNonFiniteMeasures) {
  for (double bad : {std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()}) {
    auto obs = Valid();
    (*obs.mutable_measures())["lines_added"] = bad;
    auto e = ValidateObservation(dataset_, obs);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->field, "measures.lines_added");
    EXPECT_EQ(e->reason_class, "not_finite");
  }
}

TEST_F(ValidatorTest, RejectsOutOfValidityButAcceptsAboveClampingBound) {
  auto obs = Valid();
  // Above the clamping bound (200) but valid: kept, clamped at query time.
  (*obs.mutable_measures())["actions_per_prompt"] = 350;
  EXPECT_EQ(ValidateObservation(dataset_, obs), std::nullopt);

  (*obs.mutable_measures())["actions_per_prompt"] = -1;
  auto e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "measures.actions_per_prompt");
  EXPECT_EQ(e->reason_class, "out_of_range");
  EXPECT_THAT(e->reason, HasSubstr("[0, 100000]"));
}

TEST_F(ValidatorTest, ReportsProblemsInStableOrder) {
  auto obs = Valid();
  (*obs.mutable_labels())["zzz"] = "x";
  (*obs.mutable_labels())["aaa"] = "x";
  auto e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "labels.aaa");
}

TEST(MonthOfTest, UsesUtcCalendarMonth) {
  EXPECT_EQ(MonthOf(1767225600), "2026-01");      // 2026-01-01T00:00:00Z
  EXPECT_EQ(MonthOf(1767225600 - 1), "2025-12");  // one second earlier
}

}  // namespace
}  // namespace cohortd
