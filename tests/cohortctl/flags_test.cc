#include "tools/cohortctl/flags.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<FlagSpec> kSpecs = {
    {"batch", "N", "batch size"},
    {"metric", "SPEC", "a metric", true},
    {"quiet", "", "no progress"},
};

TEST(FlagsTest, ParsesSeparateAndInlineValues) {
  ASSERT_OK_AND_ASSIGN(
      ParsedFlags flags,
      ParseFlags({"--batch", "10", "--metric=sessions", "--metric", "a=b:c",
                  "--quiet", "file.jsonl"},
                 kSpecs, ParseMode::kAll));
  EXPECT_EQ(flags.Get("batch"), "10");
  EXPECT_THAT(flags.GetAll("metric"), ElementsAre("sessions", "a=b:c"));
  EXPECT_TRUE(flags.Has("quiet"));
  EXPECT_THAT(flags.positional(), ElementsAre("file.jsonl"));
  ASSERT_OK_AND_ASSIGN(int64_t batch, flags.GetInt("batch", 1));
  EXPECT_EQ(batch, 10);
}

TEST(FlagsTest, DashIsPositionalAndDoubleDashEndsFlags) {
  ASSERT_OK_AND_ASSIGN(ParsedFlags flags, ParseFlags({"-", "--", "--quiet"},
                                                     kSpecs, ParseMode::kAll));
  EXPECT_FALSE(flags.Has("quiet"));
  EXPECT_THAT(flags.positional(), ElementsAre("-", "--quiet"));
}

TEST(FlagsTest, StopAtPositionalLeavesTheRestUnparsed) {
  ASSERT_OK_AND_ASSIGN(ParsedFlags flags,
                       ParseFlags({"--batch", "5", "push", "--unknown", "x"},
                                  kSpecs, ParseMode::kStopAtPositional));
  EXPECT_EQ(flags.Get("batch"), "5");
  EXPECT_THAT(flags.positional(), ElementsAre("push", "--unknown", "x"));
}

TEST(FlagsTest, RejectsUnknownMissingDuplicateAndValuedSwitch) {
  EXPECT_THAT(ParseFlags({"--nope"}, kSpecs, ParseMode::kAll),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown flag --nope")));
  EXPECT_THAT(
      ParseFlags({"--batch"}, kSpecs, ParseMode::kAll),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a value")));
  EXPECT_THAT(ParseFlags({"--batch=1", "--batch=2"}, kSpecs, ParseMode::kAll),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("more than once")));
  EXPECT_THAT(ParseFlags({"--quiet=yes"}, kSpecs, ParseMode::kAll),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("takes no value")));
}

TEST(FlagsTest, TypedGettersNameTheFlag) {
  ASSERT_OK_AND_ASSIGN(ParsedFlags flags,
                       ParseFlags({"--batch=ten"}, kSpecs, ParseMode::kAll));
  EXPECT_THAT(flags.GetInt("batch", 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--batch needs an integer")));
  ASSERT_OK_AND_ASSIGN(double fallback, flags.GetDouble("missing", 2.5));
  EXPECT_EQ(fallback, 2.5);
}

TEST(FlagsTest, MergeKeepsTheFlagsAlreadyThere) {
  ASSERT_OK_AND_ASSIGN(ParsedFlags local,
                       ParseFlags({"--batch=1"}, kSpecs, ParseMode::kAll));
  ASSERT_OK_AND_ASSIGN(ParsedFlags global, ParseFlags({"--batch=2", "--quiet"},
                                                      kSpecs, ParseMode::kAll));
  local.MergeFrom(global);
  EXPECT_EQ(local.Get("batch"), "1");
  EXPECT_TRUE(local.Has("quiet"));
}

TEST(FlagsTest, HelpListsFlagsAligned) {
  EXPECT_EQ(FormatFlagHelp(kSpecs),
            "  --batch N      batch size\n"
            "  --metric SPEC  a metric (repeatable)\n"
            "  --quiet        no progress\n");
}

}  // namespace
}  // namespace cohortd::cohortctl
