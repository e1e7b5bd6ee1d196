#include "tools/cohortctl/observation_wire.h"

#include <cmath>
#include <string>

#include "cohortd/v1/cohortd.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace cohortd::cohortctl {
namespace {

using ::google::protobuf::util::MessageDifferencer;

// One label and one measure, fields in number order: protobuf's own
// serializer then writes exactly these bytes (with several map entries its
// order would be unspecified).
TEST(ObservationWireWriterTest, WritesWhatProtobufWrites) {
  cohortd::v1::Observation expected;
  expected.set_session_id("s1");
  expected.set_account_id("a1");
  expected.mutable_session_start()->set_seconds(1767605400);
  expected.mutable_session_start()->set_nanos(250000000);
  expected.set_source("telemetry");
  (*expected.mutable_labels())["client"] = "cli";
  (*expected.mutable_measures())["prompts"] = 4.25;

  ObservationWireWriter writer;
  writer.SessionId("s1");
  writer.AccountId("a1");
  writer.SessionStart(1767605400, 250000000);
  writer.Source("telemetry");
  writer.Label("client", "cli");
  writer.Measure("prompts", 4.25);
  EXPECT_EQ(writer.body(), expected.SerializeAsString());
}

TEST(ObservationWireWriterTest, RequestsParseWithEveryObservation) {
  std::string wire;
  StartPushRequest("sessions", &wire);
  ObservationWireWriter writer;
  for (int i = 0; i < 3; ++i) {
    writer.Clear();
    // Labels and measures in any order, empty values, negative seconds,
    // measures that are not plain numbers and long values (multi-byte
    // lengths).
    writer.Source(std::string(200, 'x'));
    writer.Measure("m2", -0.0);
    writer.Label("b", "");
    writer.Label("a", std::string(300, 'v'));
    writer.SessionStart(-62135596800 + i, 0);
    writer.SessionId(i == 1 ? "" : "s");
    writer.Measure("m1", 1e300);
    writer.AppendTo(&wire);
  }
  cohortd::v1::PushRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  EXPECT_EQ(parsed.dataset(), "sessions");
  ASSERT_EQ(parsed.observations_size(), 3);
  for (int i = 0; i < 3; ++i) {
    cohortd::v1::Observation expected;
    expected.set_session_id(i == 1 ? "" : "s");
    expected.mutable_session_start()->set_seconds(-62135596800 + i);
    expected.set_source(std::string(200, 'x'));
    (*expected.mutable_labels())["a"] = std::string(300, 'v');
    (*expected.mutable_labels())["b"] = "";
    (*expected.mutable_measures())["m1"] = 1e300;
    (*expected.mutable_measures())["m2"] = -0.0;
    EXPECT_TRUE(MessageDifferencer::Equals(parsed.observations(i), expected))
        << parsed.observations(i).DebugString();
    EXPECT_TRUE(std::signbit(parsed.observations(i).measures().at("m2")));
  }
}

TEST(ObservationWireWriterTest, ZeroTimestampAndEmptyDatasetAreStillValid) {
  std::string wire = "stale bytes";
  StartPushRequest("", &wire);
  EXPECT_EQ(wire, "");
  ObservationWireWriter writer;
  writer.SessionStart(0, 0);
  writer.AppendTo(&wire);
  cohortd::v1::PushRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  ASSERT_EQ(parsed.observations_size(), 1);
  // Present but all-zero, as protobuf writes a set, empty Timestamp.
  EXPECT_TRUE(parsed.observations(0).has_session_start());
  EXPECT_EQ(parsed.observations(0).session_start().seconds(), 0);
}

}  // namespace
}  // namespace cohortd::cohortctl
