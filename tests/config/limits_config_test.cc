// server.limits (config.h LimitsSpec): defaults, parsing and the errors
// that name the key.
#include <string>

#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config/config.h"
#include "tests/common/status_matchers.h"
#include "tests/config/small_config.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

// The small config with each test's `limits:` block in `server:`.
std::string Yaml(const std::string& limits) {
  return testing::SmallConfigYaml(limits);
}

TEST(LimitsConfigTest, DefaultsWhenAbsent) {
  ASSERT_OK_AND_ASSIGN(Config c, ParseConfig(Yaml(""), "t.yaml", ""));
  const LimitsSpec defaults;
  EXPECT_EQ(c.limits.observation_bytes, defaults.observation_bytes);
  EXPECT_EQ(c.limits.max_streams, 256);
  EXPECT_EQ(c.limits.max_streams_per_principal, 32);
  EXPECT_EQ(c.limits.max_threads, 512);
  EXPECT_EQ(c.limits.keepalive_time, absl::Minutes(1));
  EXPECT_EQ(c.limits.max_connection_age, absl::Hours(1));
  EXPECT_EQ(c.limits.ingest_rate, 1000000);
  EXPECT_EQ(c.limits.query_rate, 50);
  // 500 observations * 2048 bytes + 64 KiB.
  EXPECT_EQ(MaxReceiveMessageBytes(c), 500 * 2048 + 65536);
}

TEST(LimitsConfigTest, ParsesEveryKey) {
  ASSERT_OK_AND_ASSIGN(Config c, ParseConfig(Yaml(R"(  limits:
    observation_bytes: 1024
    max_threads: 100
    max_streams: 50
    max_streams_per_principal: 5
    keepalive_time: 30s
    keepalive_timeout: 5s
    max_connection_age: 0s
    max_connection_age_grace: 1m
    ingest_rate: 0
    ingest_burst: 600
    query_rate: 2.5
    query_burst: 10
)"),
                                             "t.yaml", ""));
  EXPECT_EQ(c.limits.observation_bytes, 1024);
  EXPECT_EQ(c.limits.max_threads, 100);
  EXPECT_EQ(c.limits.max_streams, 50);
  EXPECT_EQ(c.limits.max_streams_per_principal, 5);
  EXPECT_EQ(c.limits.keepalive_time, absl::Seconds(30));
  EXPECT_EQ(c.limits.keepalive_timeout, absl::Seconds(5));
  EXPECT_EQ(c.limits.max_connection_age, absl::ZeroDuration());
  EXPECT_EQ(c.limits.max_connection_age_grace, absl::Minutes(1));
  EXPECT_EQ(c.limits.ingest_rate, 0);
  EXPECT_EQ(c.limits.ingest_burst, 600);
  EXPECT_EQ(c.limits.query_rate, 2.5);
  EXPECT_EQ(c.limits.query_burst, 10);
  EXPECT_EQ(MaxReceiveMessageBytes(c), 500 * 1024 + 65536);
}

TEST(LimitsConfigTest, DefaultIngestBurstGrowsToHoldABatch) {
  ASSERT_OK_AND_ASSIGN(
      Config c,
      ParseConfig(absl::StrReplaceAll(
                      Yaml("  limits: {ingest_rate: 10}"),
                      {{"max_batch_size: 500", "max_batch_size: 1000000"}}),
                  "t.yaml", ""));
  EXPECT_EQ(c.limits.ingest_burst, 2000000);
  ASSERT_OK_AND_ASSIGN(
      Config d, ParseConfig(Yaml("  limits: {ingest_rate: 10}"), "t.yaml", ""));
  EXPECT_GE(d.limits.ingest_burst, d.max_batch_size);
}

struct ErrorCase {
  std::string limits;
  std::string key_path;
  std::string problem;
};

class LimitsConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(LimitsConfigErrorTest, NamesTheKey) {
  EXPECT_THAT(
      ParseConfig(Yaml("  limits:\n" + GetParam().limits), "t.yaml", ""),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(GetParam().key_path),
                     HasSubstr(GetParam().problem))));
}

INSTANTIATE_TEST_SUITE_P(
    Errors, LimitsConfigErrorTest,
    ::testing::Values(
        ErrorCase{"    max_stream: 3\n", "server.limits.max_stream",
                  "unknown key"},
        ErrorCase{"    observation_bytes: 10\n",
                  "server.limits.observation_bytes", "must be an integer"},
        ErrorCase{"    max_threads: 100\n    max_streams: 100\n",
                  "server.limits.max_threads",
                  "must be at least max_streams + 2 (102)"},
        ErrorCase{"    max_threads: 101\n    max_streams: 100\n",
                  "server.limits.max_threads",
                  "queries need one while ingest streams are at their cap"},
        ErrorCase{"    max_streams: 10\n    max_streams_per_principal: 11\n",
                  "server.limits.max_streams_per_principal",
                  "at most max_streams"},
        ErrorCase{"    keepalive_time: soon\n", "server.limits.keepalive_time",
                  "must be a duration"},
        ErrorCase{"    max_connection_age: -5s\n",
                  "server.limits.max_connection_age", "must be a duration"},
        ErrorCase{"    ingest_rate: -1\n", "server.limits.ingest_rate",
                  "must be >= 0"},
        ErrorCase{"    ingest_burst: 499\n", "server.limits.ingest_burst",
                  "at least max_batch_size (500)"},
        ErrorCase{"    query_burst: 0.5\n", "server.limits.query_burst",
                  "must be >= 1"}));

}  // namespace
}  // namespace cohortd
