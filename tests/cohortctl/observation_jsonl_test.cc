#include "tools/cohortctl/observation_jsonl.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"

namespace cohortd::cohortctl {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kGood[] =
    R"({"sessionId": "s1", "account_id": "a1", )"
    R"("sessionStart": "2026-01-05T09:30:00Z", "source": "telemetry", )"
    R"("labels": {"client": "cli"}, "measures": {"prompts": 4}})";

TEST(ObservationJsonlTest, ParsesTheProtobufJsonMapping) {
  ASSERT_OK_AND_ASSIGN(cohortd::v1::Observation observation,
                       ParseObservationJson(kGood));
  EXPECT_EQ(observation.session_id(), "s1");
  EXPECT_EQ(observation.account_id(), "a1");
  EXPECT_EQ(observation.session_start().seconds(), 1767605400);
  EXPECT_EQ(observation.labels().at("client"), "cli");
  EXPECT_EQ(observation.measures().at("prompts"), 4);
}

TEST(ObservationJsonlTest, UnknownFieldsAndBadTimesAreErrors) {
  EXPECT_THAT(
      ParseObservationJson(R"({"lables": {"client": "cli"}})"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lables")));
  EXPECT_THAT(ParseObservationJson(R"({"sessionStart": "yesterday"})"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // One line of message: the line number locates the problem.
  absl::StatusOr<cohortd::v1::Observation> broken =
      ParseObservationJson("{not json");
  EXPECT_THAT(broken, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(broken.status().message().find('\n'), absl::string_view::npos);
}

TEST(ObservationJsonlTest, ReaderBatchesSkipsBlankAndReportsMalformed) {
  std::stringstream in(
      absl::StrCat(kGood, "\n\n{oops\n", kGood, "\n", kGood, "\n"));
  ObservationReader reader(&in);
  ObservationBatch batch;
  std::vector<MalformedLine> malformed;

  ASSERT_TRUE(reader.ReadBatch("sessions", 2, &batch, &malformed));
  EXPECT_EQ(batch.request.dataset(), "sessions");
  EXPECT_EQ(batch.request.observations_size(), 2);
  EXPECT_THAT(batch.lines, ElementsAre(1, 4));
  ASSERT_EQ(malformed.size(), 1u);
  EXPECT_EQ(malformed[0].line, 3);
  EXPECT_FALSE(malformed[0].error.empty());

  ASSERT_TRUE(reader.ReadBatch("sessions", 2, &batch, &malformed));
  EXPECT_THAT(batch.lines, ElementsAre(5));
  EXPECT_FALSE(reader.ReadBatch("sessions", 2, &batch, &malformed));
  EXPECT_EQ(reader.lines_read(), 5);
  EXPECT_EQ(reader.bytes_read(), static_cast<int64_t>(in.str().size()));
}

}  // namespace
}  // namespace cohortd::cohortctl
