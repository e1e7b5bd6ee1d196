// The retention keys: datasets[].retention and server.retention_interval.
#include <string>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config/config.h"
#include "tests/common/status_matchers.h"
#include "tests/config/small_config.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;

// The small config with a dataset retention and a server
// retention_interval when given.
std::string Yaml(const std::string& retention, const std::string& interval) {
  return testing::SmallConfigYaml(
      interval.empty() ? "" : "  retention_interval: " + interval,
      retention.empty() ? "" : "    retention: " + retention);
}

absl::StatusOr<Config> Parse(const std::string& retention,
                             const std::string& interval = "") {
  return ParseConfig(Yaml(retention, interval), "test.yaml", "/base");
}

TEST(ConfigRetentionTest, AbsentMeansForeverAndHourlyJob) {
  ASSERT_OK_AND_ASSIGN(Config config, Parse(""));
  EXPECT_EQ(config.datasets[0].retention, absl::ZeroDuration());
  EXPECT_EQ(config.retention_interval, absl::Hours(1));
}

TEST(ConfigRetentionTest, DaysAndAbslDurations) {
  ASSERT_OK_AND_ASSIGN(Config config, Parse("400d", "10m"));
  EXPECT_EQ(config.datasets[0].retention, absl::Hours(24 * 400));
  EXPECT_EQ(config.retention_interval, absl::Minutes(10));
  ASSERT_OK_AND_ASSIGN(config, Parse("36h"));
  EXPECT_EQ(config.datasets[0].retention, absl::Hours(36));
  ASSERT_OK_AND_ASSIGN(config, Parse("0"));
  EXPECT_EQ(config.datasets[0].retention, absl::ZeroDuration());
}

TEST(ConfigRetentionTest, PreciseErrors) {
  EXPECT_THAT(Parse("400"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("datasets[sessions].retention: \"400\" "
                                 "must be a duration such as 400d")));
  EXPECT_THAT(Parse("-3d"), StatusIs(absl::StatusCode::kInvalidArgument,
                                     HasSubstr("retention")));
  EXPECT_THAT(Parse("2h"), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("shorter than the minimum 24h")));
  EXPECT_THAT(Parse("[1d]"), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("retention")));
  EXPECT_THAT(Parse("", "0"), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("server.retention_interval")));
  EXPECT_THAT(Parse("", "soon"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("server.retention_interval: \"soon\"")));
}

}  // namespace
}  // namespace cohortd
