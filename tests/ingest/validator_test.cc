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

TEST_F(ValidatorTest, EchoesLongClientNamesTruncated) {
  auto obs = Valid();
  const std::string long_name(10000, 'd');
  (*obs.mutable_labels())[long_name] = "x";
  auto e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field,
            "labels." + std::string(kMaxEchoedNameBytes, 'd') + "...");
  EXPECT_LT(e->reason.size(), 400u);

  obs = Valid();
  (*obs.mutable_labels())["work_mode"] = std::string(5000, 'v');
  e = ValidateObservation(dataset_, obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_THAT(e->reason, HasSubstr(std::string(kMaxEchoedNameBytes, 'v') +
                                   "...' is not an allowed value"));
  EXPECT_LT(e->reason.size(), 400u);
}

// ---- UTF-8 of untrusted bytes.

TEST(FindInvalidUtf8Test, AcceptsValidUtf8) {
  EXPECT_EQ(FindInvalidUtf8(""), absl::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("plain ascii"), absl::string_view::npos);
  // 2-, 3- and 4-byte characters, including the extremes U+0080, U+FFFF
  // (excluding surrogates) and U+10FFFF.
  EXPECT_EQ(FindInvalidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            absl::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("\xC2\x80\xEF\xBF\xBF\xF4\x8F\xBF\xBF"),
            absl::string_view::npos);
}

TEST(FindInvalidUtf8Test, ReportsTheOffsetOfTheFirstBadSequence) {
  EXPECT_EQ(FindInvalidUtf8("ab\xFF"), 2u);            // never valid
  EXPECT_EQ(FindInvalidUtf8("abc\xC3"), 3u);           // truncated
  EXPECT_EQ(FindInvalidUtf8("\xC3("), 0u);             // bad continuation
  EXPECT_EQ(FindInvalidUtf8("x\xC0\xAF"), 1u);         // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("\xE0\x80\xAF"), 0u);      // overlong
  EXPECT_EQ(FindInvalidUtf8("\xED\xA0\x80"), 0u);      // surrogate U+D800
  EXPECT_EQ(FindInvalidUtf8("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("ok\xE2\x82"), 2u);        // truncated 3-byte
  EXPECT_EQ(FindInvalidUtf8("\x80"), 0u);              // lone continuation
}

cohortd::internal::WireObservation ValidWire() {
  cohortd::internal::WireObservation obs;
  obs.set_session_id("s-1");
  obs.set_account_id("acct-1");
  obs.mutable_session_start()->set_seconds(1767225600);
  obs.set_source("telemetry");
  auto* label = obs.add_labels();
  label->set_key("work_mode");
  label->set_value("fix");
  auto* measure = obs.add_measures();
  measure->set_key("actions_per_prompt");
  measure->set_value(3);
  return obs;
}

TEST(ValidateUtf8Test, AcceptsValidObservation) {
  EXPECT_EQ(ValidateUtf8(ValidWire()), std::nullopt);
}

TEST(ValidateUtf8Test, NamesTheFieldAndByte) {
  auto obs = ValidWire();
  obs.set_session_id("s-\xFF");
  auto e = ValidateUtf8(obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "session_id");
  EXPECT_EQ(e->reason, "is not valid UTF-8 at byte 2");
  EXPECT_EQ(e->reason_class, "invalid_utf8");

  obs = ValidWire();
  obs.set_account_id("\xC3");
  e = ValidateUtf8(obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "account_id");

  obs = ValidWire();
  obs.set_source("tele\xED\xA0\x80");
  e = ValidateUtf8(obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "source");
  EXPECT_EQ(e->reason, "is not valid UTF-8 at byte 4");

  obs = ValidWire();
  obs.mutable_labels(0)->set_value("fi\x80x");
  e = ValidateUtf8(obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "labels.work_mode");
  EXPECT_EQ(e->reason, "value is not valid UTF-8 at byte 2");

  obs = ValidWire();
  obs.mutable_labels(0)->set_key("work\xFFmode");
  e = ValidateUtf8(obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "labels");
  EXPECT_EQ(e->reason, "a dimension name is not valid UTF-8 at byte 4");

  obs = ValidWire();
  obs.mutable_measures(0)->set_key("\xFE");
  e = ValidateUtf8(obs);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->field, "measures");
}

TEST(EchoNameTest, KeepsShortValidNames) {
  EXPECT_EQ(EchoName("sessions"), "sessions");
  EXPECT_EQ(EchoName(""), "");
}

TEST(EchoNameTest, TruncatesAtACharacterBoundary) {
  EXPECT_EQ(EchoName(std::string(100, 'a')),
            std::string(kMaxEchoedNameBytes, 'a') + "...");
  // 63 ASCII bytes, then a 2-byte character that would end at byte 65.
  const std::string name = std::string(63, 'a') + "\xC3\xA9" + "tail";
  const std::string echoed = EchoName(name);
  EXPECT_EQ(echoed, std::string(63, 'a') + "...");
  EXPECT_EQ(FindInvalidUtf8(echoed), absl::string_view::npos);
}

TEST(EchoNameTest, EscapesInvalidBytes) {
  const std::string echoed = EchoName("ab\xFF\xC3");
  EXPECT_EQ(echoed, "ab\\xFF\\xC3");
  EXPECT_EQ(FindInvalidUtf8(echoed), absl::string_view::npos);
  EXPECT_LE(EchoName(std::string(1000, '\xFF')).size(),
            kMaxEchoedNameBytes + 3);
}

// ---- Bounded responses.

cohortd::v1::PushResponse ManyClosedDomainRejections(int n) {
  const DatasetSpec dataset = testing::TestDataset();
  cohortd::v1::PushResponse response;
  for (int i = 0; i < n; ++i) {
    auto obs = Valid();
    (*obs.mutable_labels())["work_mode"] = "juggling";
    auto e = ValidateObservation(dataset, obs);
    cohortd::v1::Rejection* r = response.add_rejected();
    r->set_index(i);
    r->set_field(e->field);
    r->set_reason(e->reason);
  }
  return response;
}

TEST(BoundPushResponseTest, NamesAllowedValuesOnlyOncePerResponse) {
  auto response = ManyClosedDomainRejections(3);
  BoundPushResponse(kMaxRejectionBytes, &response);
  ASSERT_EQ(response.rejected_size(), 3);
  EXPECT_THAT(response.rejected(0).reason(),
              HasSubstr("allowed: build, fix, test, write"));
  EXPECT_EQ(response.rejected(1).reason(),
            "'juggling' is not an allowed value; allowed: see index 0");
  EXPECT_EQ(response.rejected(2).reason(),
            "'juggling' is not an allowed value; allowed: see index 0");
  EXPECT_EQ(response.rejected_omitted(), 0);
}

TEST(BoundPushResponseTest, TruncatesWithACountPastTheByteBound) {
  auto response = ManyClosedDomainRejections(1000);
  BoundPushResponse(/*max_rejection_bytes=*/10000, &response);
  EXPECT_GT(response.rejected_size(), 10);
  EXPECT_LT(response.rejected_size(), 1000);
  EXPECT_EQ(response.rejected_size() + response.rejected_omitted(), 1000);
  EXPECT_LE(response.ByteSizeLong(), 10000u + 20);
  // The ones kept are the lowest indexes, in order.
  for (int i = 0; i < response.rejected_size(); ++i) {
    EXPECT_EQ(response.rejected(i).index(), i);
  }
}

TEST(BoundPushResponseTest, AMaximalBatchStaysUnderFourMebibytes) {
  // The worst case of issue 13: a legal batch whose every observation is
  // rejected with a long echoed value.
  const DatasetSpec dataset = testing::TestDataset();
  cohortd::v1::PushResponse response;
  for (int i = 0; i < 100000; ++i) {
    auto obs = Valid();
    (*obs.mutable_labels())["work_mode"] = std::string(300, 'z');
    auto e = ValidateObservation(dataset, obs);
    cohortd::v1::Rejection* r = response.add_rejected();
    r->set_index(i);
    r->set_field(e->field);
    r->set_reason(e->reason);
  }
  BoundPushResponse(kMaxRejectionBytes, &response);
  EXPECT_LT(response.ByteSizeLong(), size_t{4} << 20);
  EXPECT_GT(response.rejected_omitted(), 0);
}

TEST(MonthOfTest, UsesUtcCalendarMonth) {
  EXPECT_EQ(MonthOf(1767225600), "2026-01");      // 2026-01-01T00:00:00Z
  EXPECT_EQ(MonthOf(1767225600 - 1), "2025-12");  // one second earlier
}

}  // namespace
}  // namespace cohortd
