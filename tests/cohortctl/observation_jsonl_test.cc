#include "tools/cohortctl/observation_jsonl.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
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

// What protobuf's own JSON parser makes of `line`, or nullopt.
absl::optional<cohortd::v1::Observation> ProtobufParse(absl::string_view line) {
  cohortd::v1::Observation observation;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(line.data(), line.size()),
           &observation, options)
           .ok()) {
    return absl::nullopt;
  }
  return observation;
}

TEST(ObservationJsonlTest, FastPathTakesTheCommonShapeAndAgreesWithProtobuf) {
  const std::vector<std::string> common = {
      kGood,
      R"({"session_id":"s\"1\\\/","account_id":"a","session_start":)"
      R"("2024-02-29T23:59:59.123Z","source":"t@1","labels":{},)"
      R"("measures":{"x":-0.5e-3,"y":0,"z":12345678901234567890}})",
      R"( { "source" : "x" , "sessionStart":"0001-01-01T00:00:00.000000001Z" } )",
      R"({"sessionStart":"9999-12-31T23:59:59.999999Z"})",
      "{}",
  };
  for (const std::string& line : common) {
    cohortd::v1::Observation fast;
    ASSERT_TRUE(FastParseObservationJson(line, &fast)) << line;
    absl::optional<cohortd::v1::Observation> slow = ProtobufParse(line);
    ASSERT_TRUE(slow.has_value()) << line;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(fast, *slow))
        << line << "\nfast: " << fast.DebugString()
        << "\nprotobuf: " << slow->DebugString();
  }
}

TEST(ObservationJsonlTest, FastPathLeavesEverythingElseToProtobuf) {
  // Each is either an error or a shape the fast path does not read; in
  // both cases ParseObservationJson gives exactly protobuf's answer.
  const std::vector<std::string> others = {
      R"({"lables": {}})",
      R"({"source": "café"})",
      "{\"source\": \"caf\xc3\xa9\"}",
      R"({"measures": {"x": "Infinity"}})",
      R"({"measures": {"x": 1e999}})",
      R"({"measures": {"x": 01}})",
      R"({"measures": {"x": 1.}})",
      R"({"labels": {"a": "b", "a": "c"}})",
      R"({"source": "a", "source": "b"})",
      R"({"session_id": "a", "sessionId": "b"})",
      R"({"sessionStart": "2026-02-30T00:00:00Z"})",
      R"({"sessionStart": "2026-01-05T09:30:00+01:00"})",
      R"({"sessionStart": "2026-01-05T09:30:00.5Z"})",
      R"({"sessionStart": "2026-01-05T24:00:00Z"})",
      R"({"source": null})",
      R"({"source": "x"} trailing)",
      R"({"source": "x",})",
      "{\"source\": \"tab\there\"}",
      "{not json",
      "",
  };
  for (const std::string& line : others) {
    cohortd::v1::Observation fast;
    EXPECT_FALSE(FastParseObservationJson(line, &fast)) << line;
    absl::StatusOr<cohortd::v1::Observation> parsed =
        ParseObservationJson(line);
    absl::optional<cohortd::v1::Observation> slow = ProtobufParse(line);
    ASSERT_EQ(parsed.ok(), slow.has_value()) << line;
    if (parsed.ok()) {
      EXPECT_TRUE(
          google::protobuf::util::MessageDifferencer::Equals(*parsed, *slow))
          << line;
    }
  }
}

// The Observation that `wire` (a PushRequest's bytes) holds at `i`.
cohortd::v1::Observation WireObservation(const std::string& wire, int i) {
  cohortd::v1::PushRequest request;
  EXPECT_TRUE(request.ParseFromString(wire));
  EXPECT_LT(i, request.observations_size());
  return i < request.observations_size() ? request.observations(i)
                                         : cohortd::v1::Observation();
}

TEST(ObservationJsonlTest, WireBytesParseToWhatProtobufsJsonParserGives) {
  // Fast-path shapes (escapes, numbers, times, empty fields and maps) and
  // shapes only protobuf's parser reads (unicode, \u escapes, numbers as
  // strings): either way the wire bytes are the same observation.
  const std::vector<std::string> lines = {
      kGood,
      R"({"session_id":"s\"1\\\/\b\f\n\r\t","account_id":"a"})",
      R"({"measures":{"int":7,"neg":-3.25,"exp":1E+2,"tiny":5e-324,)"
      R"("big":1.7976931348623157e308,"zero":-0,"long":12345678901234567890}})",
      R"({"sessionStart":"1970-01-01T00:00:00Z"})",
      R"({"sessionStart":"1969-12-31T23:59:59.999Z"})",
      R"({"sessionStart":"2026-01-05T09:30:00.000000001Z"})",
      R"({"source":"","labels":{"empty":""},"measures":{}})",
      R"({"labels":{"a":"1","b":"2"},"measures":{"a":1,"b":2}})",
      "{\"source\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
      R"({"source": "caf\u00e9 \ud83d\ude00"})",
      R"({"measures": {"x": "2.5"}})",
      R"({"measures": {"x": "-Infinity"}})",
      R"({"sessionStart": "2026-01-05T09:30:00.5Z"})",
  };
  for (const std::string& line : lines) {
    absl::optional<cohortd::v1::Observation> expected = ProtobufParse(line);
    ASSERT_TRUE(expected.has_value()) << line;
    std::string wire;
    StartPushRequest("sessions", &wire);
    ASSERT_OK(AppendObservationJson(line, &wire)) << line;
    ASSERT_OK(AppendObservationJson(line, &wire)) << line;
    cohortd::v1::PushRequest request;
    ASSERT_TRUE(request.ParseFromString(wire)) << line;
    EXPECT_EQ(request.dataset(), "sessions");
    ASSERT_EQ(request.observations_size(), 2) << line;
    for (int i = 0; i < 2; ++i) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
          request.observations(i), *expected))
          << line << "\nwire: " << request.observations(i).DebugString()
          << "\nprotobuf: " << expected->DebugString();
    }
  }
}

TEST(ObservationJsonlTest, MalformedLinesLeaveTheWireBytesAsTheyWere) {
  // (Protobuf's parser, the judge of what the fast path declines, accepts
  // a trailing comma, unknown escapes, raw control characters and text
  // after the object.)
  const std::vector<std::string> malformed = {
      R"({"lables": {}})",
      R"({"labels": {"a": "b", "a": "c"}})",
      R"({"measures": {"a": 1, "a": 2}})",
      R"({"measures": {"x": 1e999}})",
      R"({"measures": {"x": 01}})",
      R"({"measures": {"x": .5}})",
      R"({"measures": {"x": true}})",
      R"({"labels": {"a": 1}})",
      R"({"source": "unterminated})",
      R"({"sessionStart": "2026-13-01T00:00:00Z"})",
      R"({"source": ["x"]})",
      "{",
  };
  for (const std::string& line : malformed) {
    std::string wire;
    StartPushRequest("sessions", &wire);
    ASSERT_OK(AppendObservationJson(kGood, &wire));
    const std::string before = wire;
    EXPECT_THAT(AppendObservationJson(line, &wire),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << line;
    EXPECT_EQ(wire, before) << line;
    ASSERT_OK_AND_ASSIGN(cohortd::v1::Observation good,
                         ParseObservationJson(kGood));
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
        WireObservation(wire, 0), good));
  }
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
  cohortd::v1::PushRequest request;
  ASSERT_TRUE(request.ParseFromString(batch.wire));
  EXPECT_EQ(request.dataset(), "sessions");
  ASSERT_EQ(request.observations_size(), 2);
  ASSERT_OK_AND_ASSIGN(cohortd::v1::Observation good,
                       ParseObservationJson(kGood));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      request.observations(1), good));
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
