// The datasets[].bands key: derived band dimensions for adjust_for.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config/config.h"
#include "tests/common/status_matchers.h"
#include "tests/config/small_config.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;

// The small config with `bands` (lines inside the dataset) when given.
absl::StatusOr<Config> Parse(const std::string& bands) {
  return ParseConfig(testing::SmallConfigYaml("", bands), "test.yaml",
                     "/base");
}

TEST(ConfigBandsTest, AbsentMeansNone) {
  ASSERT_OK_AND_ASSIGN(Config config, Parse(""));
  EXPECT_TRUE(config.datasets[0].bands.empty());
}

TEST(ConfigBandsTest, ParsesEdgesAndNamesLevels) {
  ASSERT_OK_AND_ASSIGN(
      Config config,
      Parse("    bands:\n      - {name: task_value_band, measure: "
            "task_value_usd, edges: [50, 200, 1000]}"));
  const BandSpec* band = config.datasets[0].FindBand("task_value_band");
  ASSERT_NE(band, nullptr);
  EXPECT_THAT(band->levels,
              ::testing::ElementsAre("<50", "50-200", "200-1000", ">=1000"));
  EXPECT_EQ(band->LevelOf(0), 0);
  EXPECT_EQ(band->LevelOf(50), 1);  // e1 <= v < e2
  EXPECT_EQ(band->LevelOf(999.99), 2);
  EXPECT_EQ(band->LevelOf(5000), 3);
}

TEST(ConfigBandsTest, PreciseErrors) {
  EXPECT_THAT(Parse("    bands:\n      - {name: b, measure: nope, edges: [1]}")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown measure \"nope\"")));
  EXPECT_THAT(Parse("    bands:\n      - {name: b, measure: task_value_usd, "
                    "edges: [200, 50]}")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("edges must increase")));
  EXPECT_THAT(Parse("    bands:\n      - {name: b, measure: task_value_usd, "
                    "edges: [6000]}")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not inside the bounds")));
  EXPECT_THAT(
      Parse("    bands:\n      - {name: work_mode, measure: "
            "task_value_usd, edges: [1]}")
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("used twice")));
}

}  // namespace
}  // namespace cohortd
