#include "server/common/token_bucket.h"

#include "gtest/gtest.h"
#include "server/common/clock.h"

namespace cohortd {
namespace {

class TokenBucketTest : public ::testing::Test {
 protected:
  FakeClock clock_{absl::FromUnixSeconds(1767225600)};
};

TEST_F(TokenBucketTest, StartsFullAndAllowsABurst) {
  TokenBucket bucket(/*rate=*/10, /*burst=*/100, &clock_);
  EXPECT_EQ(bucket.TryTake(60), absl::ZeroDuration());
  EXPECT_EQ(bucket.TryTake(40), absl::ZeroDuration());
  EXPECT_DOUBLE_EQ(bucket.Available(), 0);
}

TEST_F(TokenBucketTest, RefusesWithTheTimeUntilEnoughTokens) {
  TokenBucket bucket(10, 100, &clock_);
  ASSERT_EQ(bucket.TryTake(100), absl::ZeroDuration());
  // 25 tokens at 10/s: 2.5 s.
  EXPECT_EQ(bucket.TryTake(25), absl::Milliseconds(2500));
  // A refusal takes nothing.
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(bucket.TryTake(25), absl::Milliseconds(1500));
  clock_.Advance(absl::Milliseconds(1500));
  EXPECT_EQ(bucket.TryTake(25), absl::ZeroDuration());
  EXPECT_DOUBLE_EQ(bucket.Available(), 0);
}

TEST_F(TokenBucketTest, RefillStopsAtBurst) {
  TokenBucket bucket(10, 100, &clock_);
  ASSERT_EQ(bucket.TryTake(100), absl::ZeroDuration());
  clock_.Advance(absl::Hours(1));
  EXPECT_DOUBLE_EQ(bucket.Available(), 100);
  EXPECT_EQ(bucket.TryTake(100), absl::ZeroDuration());
  EXPECT_GT(bucket.TryTake(1), absl::ZeroDuration());
}

TEST_F(TokenBucketTest, MoreThanBurstNeverPasses) {
  TokenBucket bucket(10, 100, &clock_);
  EXPECT_EQ(bucket.TryTake(101), absl::InfiniteDuration());
  EXPECT_DOUBLE_EQ(bucket.Available(), 100);
}

TEST_F(TokenBucketTest, ClockSteppingBackTakesNothingAway) {
  TokenBucket bucket(10, 100, &clock_);
  ASSERT_EQ(bucket.TryTake(50), absl::ZeroDuration());
  clock_.Advance(absl::Seconds(-30));
  EXPECT_DOUBLE_EQ(bucket.Available(), 50);
}

TEST_F(TokenBucketTest, SustainedRateMatchesTheConfiguredRate) {
  // One token every 125 ms at 4/s (binary-exact steps): every other
  // attempt passes.
  TokenBucket bucket(4, 1, &clock_);
  int passed = 0;
  for (int i = 0; i < 100; ++i) {
    clock_.Advance(absl::Milliseconds(125));
    if (bucket.TryTake(1) == absl::ZeroDuration()) ++passed;
  }
  EXPECT_EQ(passed, 50);
}

}  // namespace
}  // namespace cohortd
