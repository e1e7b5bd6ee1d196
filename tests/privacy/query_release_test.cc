#include "server/privacy/query_release.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;
using ::cohortd::testing::StatusIs;

std::vector<MetricRequest> AllMetrics() {
  const MeasureDomain domain = *MeasureDomain::Create(0, 200, 1);
  return {{MetricKind::kSessions, {}, {}},
          {MetricKind::kAccounts, {}, {}},
          {MetricKind::kSum, domain, {}},
          {MetricKind::kMean, domain, {}},
          {MetricKind::kRate, {}, {}},
          {MetricKind::kQuantiles, domain, {0.25, 0.5, 0.75}}};
}

TEST(QueryReleaserTest, PlansOneSharePerNoisyMetric) {
  ASSERT_OK_AND_ASSIGN(
      QueryReleaser r,
      QueryReleaser::Create(QueryPrivacyParams{}, AllMetrics()));
  // Five noisy metrics + partition selection = six equal shares.
  EXPECT_NEAR(r.budget().rho_per_metric, r.budget().rho_total / 6,
              1e-6 * r.budget().rho_total);
  EXPECT_LE(r.partition_selector().rho(),
            r.budget().rho_partition_selection * (1 + 1e-8));
  EXPECT_LE(r.partition_selector().delta(),
            r.budget().delta_partition_selection);
}

TEST(QueryReleaserTest, KMinusOneAccountsNeverReleasedWhateverTheSessions) {
  QueryPrivacyParams params;
  params.epsilon = 50;  // little noise: only the pre-threshold protects
  ASSERT_OK_AND_ASSIGN(QueryReleaser r,
                       QueryReleaser::Create(params, AllMetrics()));
  const std::vector<int64_t> values(100000, 7);
  std::vector<MetricInput> inputs(6);
  for (MetricInput& in : inputs) {
    in.sessions = 1000000;
    in.sum_fp = 7000000;
    in.matching = 500000;
    in.values_fp = values;
  }
  DeterministicRandom source(31);
  RandomWords rng(&source);
  for (int i = 0; i < 20000; ++i) {
    ASSERT_OK_AND_ASSIGN(CohortRelease c, r.ReleaseCohort(9, inputs, rng));
    ASSERT_FALSE(c.released);
    ASSERT_TRUE(c.metrics.empty());
  }
  // The control: the same cohort with 200 accounts is released.
  ASSERT_OK_AND_ASSIGN(CohortRelease big, r.ReleaseCohort(200, inputs, rng));
  EXPECT_TRUE(big.released);
}

TEST(QueryReleaserTest, ReleasedCohortHasEveryMetricInOrder) {
  ASSERT_OK_AND_ASSIGN(
      QueryReleaser r,
      QueryReleaser::Create(QueryPrivacyParams{}, AllMetrics()));
  std::vector<int64_t> values;
  for (int i = 0; i < 5000; ++i) values.push_back(i % 200);
  std::vector<MetricInput> inputs(6);
  for (MetricInput& in : inputs) {
    in.sessions = 5000;
    in.sum_fp = 497500;
    in.matching = 1000;
    in.values_fp = values;
  }
  DeterministicRandom source(32);
  RandomWords rng(&source);
  ASSERT_OK_AND_ASSIGN(CohortRelease c, r.ReleaseCohort(2000, inputs, rng));
  ASSERT_TRUE(c.released);
  ASSERT_EQ(c.metrics.size(), 6u);
  // Accuracy is tested per mechanism; here: the right metric in the right
  // slot. ACCOUNTS (sigma ~ 17) is within 12 sigma of 2000; the others lie
  // in their own intervals and domains.
  EXPECT_NEAR(c.metrics[1].estimate.value, 2000, 200);
  for (int i : {0, 1, 2, 3, 4}) {
    EXPECT_LE(c.metrics[i].estimate.ci_low, c.metrics[i].estimate.value);
    EXPECT_LE(c.metrics[i].estimate.value, c.metrics[i].estimate.ci_high);
  }
  EXPECT_GE(c.metrics[3].estimate.value, 0);
  EXPECT_LE(c.metrics[3].estimate.value, 200);
  EXPECT_GE(c.metrics[4].estimate.value, 0);
  EXPECT_LE(c.metrics[4].estimate.value, 1);
  ASSERT_EQ(c.metrics[5].quantiles.size(), 3u);
  EXPECT_EQ(c.metrics[5].quantiles[1].q, 0.5);
  EXPECT_LE(c.metrics[5].quantiles[0].estimate.value,
            c.metrics[5].quantiles[0].estimate.ci_high);
}

TEST(QueryReleaserTest, RejectsBadInput) {
  QueryPrivacyParams bad;
  bad.k = 0;
  EXPECT_THAT(QueryReleaser::Create(bad, AllMetrics()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  bad = QueryPrivacyParams{};
  bad.epsilon = 0;
  EXPECT_THAT(QueryReleaser::Create(bad, AllMetrics()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(
      QueryReleaser r,
      QueryReleaser::Create(QueryPrivacyParams{}, AllMetrics()));
  DeterministicRandom source(33);
  RandomWords rng(&source);
  std::vector<MetricInput> too_few(2);
  EXPECT_THAT(r.ReleaseCohort(100, too_few, rng),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace cohortd::privacy
