#include "server/service/rate_limiter.h"

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "tests/common/status_matchers.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;

class RateLimiterTest : public ::testing::Test {
 protected:
  RateLimiterTest() {
    limits_.max_streams = 3;
    limits_.max_streams_per_principal = 2;
    limits_.ingest_rate = 100;
    limits_.ingest_burst = 1000;
    limits_.query_rate = 1;
    limits_.query_burst = 2;
  }
  std::unique_ptr<RateLimiter> Make() {
    return std::make_unique<RateLimiter>(limits_, 12345, &clock_,
                                         metrics_.get());
  }

  LimitsSpec limits_;
  FakeClock clock_{absl::FromUnixSeconds(1767225600)};
  std::unique_ptr<InMemoryMetrics> metrics_ = NewInMemoryMetrics();
};

TEST_F(RateLimiterTest, CapsStreamsPerPrincipalAndInAll) {
  auto limiter = Make();
  std::vector<RateLimiter::StreamSlot> held(4);
  EXPECT_TRUE(limiter->AcquireStream("a", &held[0]).ok());
  EXPECT_TRUE(limiter->AcquireStream("a", &held[1]).ok());
  LimitDecision third_a = limiter->AcquireStream("a", &held[2]);
  EXPECT_THAT(third_a.status, StatusIs(absl::StatusCode::kResourceExhausted,
                                       HasSubstr("retry after 1000 ms")));
  EXPECT_EQ(third_a.retry_after, absl::Seconds(1));
  EXPECT_TRUE(limiter->AcquireStream("b", &held[2]).ok());
  // Three open in all.
  EXPECT_FALSE(limiter->AcquireStream("c", &held[3]).ok());
  EXPECT_EQ(metrics_->Value("cohortd_limit_open_streams", {}), 3);
  EXPECT_EQ(metrics_->Value("cohortd_limit_rejections_total",
                            {{"limit", "streams"}, {"principal", "a"}}),
            1);

  // Releasing a slot (destroying or overwriting it) frees it.
  held[0] = RateLimiter::StreamSlot();
  EXPECT_EQ(metrics_->Value("cohortd_limit_open_streams", {}), 2);
  EXPECT_TRUE(limiter->AcquireStream("c", &held[3]).ok());
  held.clear();
  EXPECT_EQ(metrics_->Value("cohortd_limit_open_streams", {}), 0);
  RateLimiter::StreamSlot again;
  EXPECT_TRUE(limiter->AcquireStream("a", &again).ok());
}

TEST_F(RateLimiterTest, IngestRateIsPerPrincipalWithARetryHint) {
  auto limiter = Make();
  EXPECT_TRUE(limiter->ChargeIngest("a", 1000).ok());
  LimitDecision d = limiter->ChargeIngest("a", 500);
  EXPECT_THAT(d.status, StatusIs(absl::StatusCode::kResourceExhausted,
                                 HasSubstr("retry after 5000 ms")));
  EXPECT_EQ(d.retry_after, absl::Seconds(5));
  EXPECT_TRUE(limiter->ChargeIngest("b", 1000).ok());  // its own bucket
  clock_.Advance(absl::Seconds(5));
  EXPECT_TRUE(limiter->ChargeIngest("a", 500).ok());
  EXPECT_EQ(metrics_->Value("cohortd_limit_rejections_total",
                            {{"limit", "ingest_rate"}, {"principal", "a"}}),
            1);
}

TEST_F(RateLimiterTest, QueryRate) {
  auto limiter = Make();
  EXPECT_TRUE(limiter->ChargeQuery("a").ok());
  EXPECT_TRUE(limiter->ChargeQuery("a").ok());
  LimitDecision d = limiter->ChargeQuery("a");
  EXPECT_THAT(d.status, StatusIs(absl::StatusCode::kResourceExhausted,
                                 HasSubstr("query rate limit")));
  EXPECT_EQ(d.retry_after, absl::Seconds(1));
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(limiter->ChargeQuery("a").ok());
}

TEST_F(RateLimiterTest, ZeroRateIsUnlimited) {
  limits_.ingest_rate = 0;
  limits_.query_rate = 0;
  auto limiter = Make();
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(limiter->ChargeIngest("a", 1000000).ok());
    EXPECT_TRUE(limiter->ChargeQuery("a").ok());
  }
}

TEST_F(RateLimiterTest, PublishesTheSettings) {
  auto limiter = Make();
  EXPECT_EQ(metrics_->Value("cohortd_limit_setting",
                            {{"limit", "max_receive_bytes"}}),
            12345);
  EXPECT_EQ(
      metrics_->Value("cohortd_limit_setting", {{"limit", "max_streams"}}), 3);
  EXPECT_EQ(metrics_->Value("cohortd_limit_setting", {{"limit", "query_rate"}}),
            1);
}

}  // namespace
}  // namespace cohortd
