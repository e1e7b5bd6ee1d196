#include "tools/cohortctl/progress_bar.h"

#include "gtest/gtest.h"

namespace cohortd::cohortctl {
namespace {

TEST(ProgressBarTest, WithKnownSize) {
  PushProgress progress;
  progress.confirmed = 140000;
  progress.rejected = 3;
  progress.fraction = 0.35;
  progress.elapsed = absl::Seconds(2);
  EXPECT_EQ(RenderProgress(progress),
            "[#######.............]  35%  140,000 obs  70,000 obs/s  "
            "rejected 3");
}

TEST(ProgressBarTest, WithoutSizeAndWithMalformedLines) {
  PushProgress progress;
  progress.confirmed = 10;
  progress.malformed = 2;
  EXPECT_EQ(RenderProgress(progress),
            "10 obs  0 obs/s  rejected 0  malformed 2");
}

TEST(ProgressBarTest, Thousands) {
  EXPECT_EQ(WithThousands(0), "0");
  EXPECT_EQ(WithThousands(999), "999");
  EXPECT_EQ(WithThousands(1000), "1,000");
  EXPECT_EQ(WithThousands(-1234567), "-1,234,567");
}

}  // namespace
}  // namespace cohortd::cohortctl
