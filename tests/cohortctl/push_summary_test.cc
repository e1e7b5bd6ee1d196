#include "tools/cohortctl/push_summary.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cohortd::cohortctl {
namespace {

using ::testing::HasSubstr;

cohortd::v1::PushResponse Response(
    int accepted,
    std::vector<std::tuple<int, std::string, std::string>> rejections) {
  cohortd::v1::PushResponse response;
  response.set_accepted(accepted);
  for (const auto& [index, field, reason] : rejections) {
    auto* rejection = response.add_rejected();
    rejection->set_index(index);
    rejection->set_field(field);
    rejection->set_reason(reason);
  }
  return response;
}

TEST(ReasonClassTest, ReplacesValuesAndDropsTheAllowedList) {
  EXPECT_EQ(ReasonClass("'buidl' is not an allowed value; allowed: build, fix"),
            "'…' is not an allowed value");
  EXPECT_EQ(ReasonClass("250 is outside the valid range [0, 200]"),
            "N is outside the valid range [N, N]");
  EXPECT_EQ(ReasonClass("-1e+06 is outside the valid range [0, 200]"),
            "N is outside the valid range [N, N]");
  EXPECT_EQ(ReasonClass("is 80 bytes; at most 64 allowed"), "is N bytes");
  EXPECT_EQ(ReasonClass("is required"), "is required");
  // Digits inside a word are part of the word.
  EXPECT_EQ(ReasonClass("sha256 mismatch"), "sha256 mismatch");
}

TEST(PushSummaryTest, CountsAndMapsRejectionsToInputLines) {
  PushSummary summary(/*max_examples=*/2);
  summary.AddResponse({10, 11, 12},
                      Response(2, {{1, "labels.work_mode",
                                    "'buidl' is not an allowed value; "
                                    "allowed: build"}}));
  EXPECT_EQ(summary.accepted(), 2);
  EXPECT_EQ(summary.rejected(), 1);
  EXPECT_FALSE(summary.Clean());
  EXPECT_THAT(summary.Format(),
              HasSubstr("1 x labels.work_mode: '…' is not an allowed value\n"
                        "      line 11: labels.work_mode: 'buidl' is not"));
}

TEST(PushSummaryTest, GroupsByClassAndKeepsTheLowestLinesAcrossBatches) {
  PushSummary summary(/*max_examples=*/2);
  // A later batch answered first, as happens with several streams.
  summary.AddResponse({50, 51}, Response(0, {{0, "labels.client",
                                              "'x' is not an "
                                              "allowed value"},
                                             {1, "labels.client",
                                              "'y' is not an "
                                              "allowed value"}}));
  summary.AddResponse(
      {7}, Response(0, {{0, "labels.client", "'z' is not an allowed value"}}));
  summary.AddResponse({8}, Response(0, {{0, "session_start", "is required"}}));
  const std::string text = summary.Format();
  EXPECT_THAT(text, HasSubstr("3 x labels.client: '…' is not an allowed "
                              "value\n      line 7: labels.client: 'z'"));
  EXPECT_THAT(text, HasSubstr("      line 50: labels.client: 'x'"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("line 51")));
  // Most frequent class first.
  EXPECT_LT(text.find("labels.client"), text.find("session_start"));
}

TEST(PushSummaryTest, MalformedAndUnconfirmedAreReported) {
  PushSummary summary(/*max_examples=*/1);
  summary.AddMalformed({3, "Unexpected token"});
  summary.AddMalformed({9, "Unexpected end"});
  summary.AddUnconfirmed(1000);
  summary.AddResponse({1}, Response(0, {{5, "x", "out of range index"}}));
  const std::string text = summary.Format();
  EXPECT_THAT(text, HasSubstr("malformed    2 lines, not sent"));
  EXPECT_THAT(text, HasSubstr("unconfirmed  1000 observations"));
  EXPECT_THAT(text, HasSubstr("line 3: Unexpected token\n  ... and 1 more"));
  // A rejection index the batch does not have is shown as line 0.
  EXPECT_THAT(text, HasSubstr("line 0: x: out of range index"));
}

TEST(PushSummaryTest, CleanWhenEverythingWasStored) {
  PushSummary summary;
  cohortd::v1::PushResponse response;
  response.set_accepted(3);
  response.set_unchanged(1);
  summary.AddResponse({1, 2, 3, 4}, response);
  EXPECT_TRUE(summary.Clean());
  EXPECT_EQ(summary.Format(),
            "accepted     3\nunchanged    1\nrejected     0\n");
}

}  // namespace
}  // namespace cohortd::cohortctl
