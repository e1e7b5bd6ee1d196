#include "server/service/push_wire_reader.h"

#include <cstdint>
#include <limits>
#include <string>

#include "cohortd/v1/cohortd.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/service/push_wire_equivalence.h"

namespace cohortd {
namespace {

using ::testing::HasSubstr;

// Raw protobuf encoding, to write what a generated serializer never does.
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string Key(uint32_t number, uint32_t wire_type) {
  return Varint(number << 3 | wire_type);
}
std::string Len(uint32_t number, const std::string& bytes) {
  return Key(number, 2) + Varint(bytes.size()) + bytes;
}
std::string Fixed64(uint32_t number, uint64_t v) {
  std::string out = Key(number, 1);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out;
}

cohortd::v1::PushRequest SampleRequest() {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int i = 0; i < 3; ++i) {
    cohortd::v1::Observation* obs = request.add_observations();
    obs->set_session_id("s" + std::to_string(i));
    obs->set_account_id("acct-é-" + std::to_string(i));
    obs->mutable_session_start()->set_seconds(1700000000 + i);
    obs->mutable_session_start()->set_nanos(123 * i);
    obs->set_source("classifier@3");
    (*obs->mutable_labels())["work_mode"] = "build";
    (*obs->mutable_labels())["task_topic"] = std::string(300, 't');
    (*obs->mutable_measures())["prompts"] = 1.5 * i;
    (*obs->mutable_measures())["tokens"] = -0.0;
  }
  request.add_observations();  // an empty one
  return request;
}

// Expects the reader and protobuf to agree on `bytes` and returns whether
// protobuf accepted them.
bool Agree(const std::string& bytes) {
  PushWireReader reader;
  bool accepted = false;
  EXPECT_EQ(DifferenceFromProtobuf(bytes, &reader, &accepted), "");
  return accepted;
}

TEST(PushWireReaderTest, ReadsASerializedRequest) {
  const std::string bytes = SampleRequest().SerializeAsString();
  PushWireReader reader;
  ASSERT_EQ(DifferenceFromProtobuf(bytes, &reader), "");
  ASSERT_EQ(reader.size(), 4);
  EXPECT_EQ(reader.dataset(), "sessions");
  const ObservationRef& obs = reader.observations()[2];
  EXPECT_EQ(obs.session_id, "s2");
  EXPECT_EQ(obs.account_id, "acct-é-2");
  EXPECT_TRUE(obs.has_session_start);
  EXPECT_EQ(obs.session_start_seconds, 1700000002);
  EXPECT_EQ(obs.session_start_nanos, 246);
  EXPECT_EQ(obs.labels.size(), 2u);
  EXPECT_EQ(obs.measures.size(), 2u);
  // Views into the bytes, not copies.
  EXPECT_GE(obs.session_id.data(), bytes.data());
  EXPECT_LT(obs.session_id.data(), bytes.data() + bytes.size());
  EXPECT_FALSE(reader.observations()[3].has_session_start);
  EXPECT_TRUE(reader.observations()[3].labels.empty());
}

TEST(PushWireReaderTest, EmptyInputIsAnEmptyRequest) {
  EXPECT_TRUE(Agree(""));
  PushWireReader reader;
  ASSERT_TRUE(reader.Read("").ok());
  EXPECT_EQ(reader.size(), 0);
  EXPECT_EQ(reader.dataset(), "");
}

TEST(PushWireReaderTest, ReuseForgetsThePreviousRequest) {
  PushWireReader reader;
  const std::string big = SampleRequest().SerializeAsString();
  ASSERT_TRUE(reader.Read(big).ok());
  cohortd::v1::PushRequest small;
  small.add_observations()->set_session_id("only");
  const std::string bytes = small.SerializeAsString();
  ASSERT_EQ(DifferenceFromProtobuf(bytes, &reader), "");
  ASSERT_EQ(reader.size(), 1);
  EXPECT_TRUE(reader.observations()[0].labels.empty());
  EXPECT_FALSE(reader.observations()[0].has_session_start);
  EXPECT_EQ(reader.dataset(), "");
}

TEST(PushWireReaderTest, EveryTruncationAgreesWithProtobuf) {
  const std::string bytes = SampleRequest().SerializeAsString();
  int rejected = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    SCOPED_TRACE(n);
    if (!Agree(bytes.substr(0, n))) ++rejected;
  }
  // Most prefixes cut a field in two.
  EXPECT_GT(rejected, static_cast<int>(bytes.size() / 2));
}

TEST(PushWireReaderTest, SkipsUnknownFieldsOfEveryWireType) {
  const std::string unknown = Key(15, 0) + Varint(1ull << 63) + Fixed64(16, 7) +
                              Len(17, "xyz") + Key(18, 5) + "abcd" +
                              Key(19, 3) + Key(1, 0) + Varint(5) + Key(2, 3) +
                              Key(2, 4) + Key(19, 4);
  const std::string timestamp = Len(3, unknown + Key(1, 0) + Varint(1234));
  const std::string label = Len(5, Len(1, "k") + unknown + Len(2, "v"));
  const std::string measure = Len(6, unknown + Len(1, "m") + Fixed64(2, 0));
  const std::string obs = Len(1, "s") + unknown + timestamp + label + measure;
  const std::string bytes = unknown + Len(1, "d") + Len(2, obs) + unknown;
  ASSERT_TRUE(Agree(bytes));
  PushWireReader reader;
  ASSERT_TRUE(reader.Read(bytes).ok());
  ASSERT_EQ(reader.size(), 1);
  EXPECT_EQ(reader.observations()[0].session_start_seconds, 1234);
  EXPECT_EQ(reader.observations()[0].labels[0].second, "v");
}

TEST(PushWireReaderTest, KnownFieldsWithAnotherWireTypeAreSkipped) {
  // session_id as a varint, the measure value as a fixed32, seconds as a
  // length-delimited field: protobuf keeps them as unknown fields.
  const std::string obs =
      Key(1, 0) + Varint(9) + Len(6, Key(2, 5) + "abcd") + Len(3, Len(1, "x"));
  ASSERT_TRUE(Agree(Len(2, obs)));
  PushWireReader reader;
  ASSERT_TRUE(reader.Read(Len(2, obs)).ok());
  EXPECT_EQ(reader.observations()[0].session_id, "");
  EXPECT_EQ(reader.observations()[0].measures[0].second, 0.0);
  EXPECT_TRUE(reader.observations()[0].has_session_start);
}

TEST(PushWireReaderTest, LastScalarWinsAndTimestampsMerge) {
  const std::string obs =
      Len(1, "first") + Len(1, "second") +
      Len(3, Key(1, 0) + Varint(100) + Key(2, 0) + Varint(7)) +
      Len(3, Key(1, 0) + Varint(200)) + Len(5, Len(1, "a") + Len(2, "1")) +
      Len(5, Len(1, "a") + Len(2, "2"));
  const std::string bytes = Len(1, "x") + Len(2, obs) + Len(1, "y");
  ASSERT_TRUE(Agree(bytes));
  PushWireReader reader;
  ASSERT_TRUE(reader.Read(bytes).ok());
  const ObservationRef& o = reader.observations()[0];
  EXPECT_EQ(reader.dataset(), "y");
  EXPECT_EQ(o.session_id, "second");
  EXPECT_EQ(o.session_start_seconds, 200);
  EXPECT_EQ(o.session_start_nanos, 7);
  // Both label entries, in wire order (SortNames keeps the last).
  ASSERT_EQ(o.labels.size(), 2u);
  EXPECT_EQ(o.labels[1].second, "2");
}

TEST(PushWireReaderTest, IntegersWrapAsProtobufDoes) {
  // nanos is int32: the low 32 bits of a 10-byte varint; seconds negative.
  const std::string ts = Key(1, 0) + Varint(static_cast<uint64_t>(-5)) +
                         Key(2, 0) + Varint(0xFFFFFFFF00000003ull);
  ASSERT_TRUE(Agree(Len(2, Len(3, ts))));
  // A varint of 10 bytes whose last byte has high bits: accepted, dropped.
  EXPECT_TRUE(Agree(Key(9, 0) + std::string(9, '\xff') + "\x7f"));
  // Eleven bytes: rejected.
  EXPECT_FALSE(Agree(Key(9, 0) + std::string(10, '\xff') + "\x01"));
  // A tag padded to 5 bytes (its bits above 32 dropped) is accepted.
  EXPECT_TRUE(Agree(std::string("\x8a\x80\x80\x80\x00", 5) + Varint(1) + "d"));
  EXPECT_FALSE(Agree(std::string("\x8a\x80\x80\x80\x80\x00", 6)));
}

TEST(PushWireReaderTest, RejectsWhatProtobufRejects) {
  EXPECT_FALSE(Agree(std::string("\0", 1)));   // zero tag
  EXPECT_FALSE(Agree(Key(3, 4)));              // end group outside a group
  EXPECT_FALSE(Agree(Key(3, 6) + "x"));        // wire type 6
  EXPECT_FALSE(Agree(Key(3, 7) + "x"));        // wire type 7
  EXPECT_FALSE(Agree(Key(0, 0) + Varint(1)));  // field number 0
  EXPECT_FALSE(Agree(Key(3, 3) + Key(4, 4)));  // mismatched end group
  EXPECT_FALSE(Agree(Key(3, 3)));              // unterminated group
  EXPECT_FALSE(Agree(Len(2, Key(3, 4))));      // end group in a message
  EXPECT_FALSE(Agree(Len(2, std::string("\0", 1))));
  EXPECT_FALSE(Agree(Key(1, 2) + Varint(5) + "abc"));  // runs past the end
  // A length of 2 GiB or more, and one 6 bytes long.
  EXPECT_FALSE(Agree(Key(1, 2) + std::string("\xff\xff\xff\xff\x0f", 5)));
  EXPECT_FALSE(Agree(Key(1, 2) + std::string("\x80\x80\x80\x80\x80\x00", 6)));
  EXPECT_FALSE(Agree(Key(2, 2) + Varint(3) + Len(1, "toolong")));
}

TEST(PushWireReaderTest, NestingLimitIsProtobufs) {
  for (int depth : {98, 99, 100, 101, 102}) {
    SCOPED_TRACE(depth);
    std::string groups;
    for (int i = 0; i < depth; ++i) groups += Key(7, 3);
    for (int i = 0; i < depth; ++i) groups += Key(7, 4);
    Agree(groups);
    Agree(Len(2, groups));
    Agree(Len(2, Len(5, groups)));
  }
}

TEST(PushWireReaderTest, ErrorNamesTheObservationAndByte) {
  const std::string bytes = SampleRequest().SerializeAsString();
  const std::string second =
      Len(2, Len(1, "ok")) + Len(2, Len(1, "s") + Key(3, 7));
  PushWireReader reader;
  absl::Status status = reader.Read(second);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("not a cohortd.v1.PushRequest (the bytes do not "
                        "parse: observation 1: invalid wire type 7 at byte "
                        "11)"));
  status = reader.Read(bytes.substr(0, bytes.size() - 1));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cohortd
