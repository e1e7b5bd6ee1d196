#include "server/common/wire_encoding.h"

#include <cstdint>
#include <string>

#include "gtest/gtest.h"

namespace cohortd::wire {
namespace {

TEST(WireEncodingTest, VarintsRoundTripAndMatchTheirSize) {
  for (const uint64_t value :
       {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{300},
        uint64_t{16383}, uint64_t{16384}, uint64_t{0xffffffff},
        uint64_t{1} << 35, ~uint64_t{0}}) {
    std::string appended;
    AppendVarint(value, &appended);
    char buf[10];
    const size_t n = EncodeVarint(value, buf);
    EXPECT_EQ(std::string(buf, n), appended) << value;
    EXPECT_EQ(n, VarintSize(value)) << value;
    if (value <= 0xffffffff) {
      absl::string_view in = appended;
      uint32_t read = 0;
      ASSERT_TRUE(ConsumeVarint32(&in, &read)) << value;
      EXPECT_EQ(read, value);
      EXPECT_TRUE(in.empty());
    }
  }
  // 300 is 0xac 0x02 (protobuf encoding guide).
  std::string bytes;
  AppendVarint(300, &bytes);
  EXPECT_EQ(bytes, "\xac\x02");
}

TEST(WireEncodingTest, Varint32RefusesTruncatedAndOverlongInput) {
  uint32_t value = 7;
  absl::string_view truncated = "\xac";
  EXPECT_FALSE(ConsumeVarint32(&truncated, &value));
  absl::string_view empty;
  EXPECT_FALSE(ConsumeVarint32(&empty, &value));
  absl::string_view six_bytes = "\x80\x80\x80\x80\x80\x01";
  EXPECT_FALSE(ConsumeVarint32(&six_bytes, &value));
  EXPECT_EQ(value, 7u);  // untouched on failure
}

TEST(WireEncodingTest, LengthPrefixedSlicesAreViewsAndMustFit) {
  std::string bytes;
  AppendLengthDelimited(0x0a, "key", &bytes);  // tag, length, bytes
  bytes += "rest";
  absl::string_view in = absl::string_view(bytes).substr(1);  // past the tag
  absl::string_view out;
  ASSERT_TRUE(ConsumeLengthPrefixed(&in, &out));
  EXPECT_EQ(out, "key");
  EXPECT_EQ(out.data(), bytes.data() + 2);
  EXPECT_EQ(in, "rest");

  absl::string_view too_short =
      "\x05"
      "abc";
  EXPECT_FALSE(ConsumeLengthPrefixed(&too_short, &out));
}

TEST(WireEncodingTest, MapEntriesAreAsLongAsTheirSizesSay) {
  std::string out;
  AppendStringMapEntry(0x2a, "work_mode", "fix", &out);
  EXPECT_EQ(out, std::string("\x2a\x10\x0a\x09work_mode\x12\x03"
                             "fix"));
  EXPECT_EQ(out.size(), StringMapEntryBytes("work_mode", "fix"));
  out.clear();
  AppendDoubleMapEntry(0x32, "lines", 1.0, &out);
  // 1.0 is 0x3ff0000000000000, written little-endian.
  EXPECT_EQ(out,
            std::string("\x32\x10\x0a\x05lines\x11\0\0\0\0\0\0\xf0\x3f", 18));
  EXPECT_EQ(out.size(), DoubleMapEntryBytes("lines"));
}

}  // namespace
}  // namespace cohortd::wire
