#include "server/privacy/contribution_bounding.h"

#include <cmath>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/stat_checks.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::ExpectBinomial;
using ::cohortd::testing::StatusIs;
using ::testing::ElementsAre;

const std::string kKey = "0123456789abcdef";

TEST(SipHashTest, MatchesReferenceVector) {
  // Aumasson & Bernstein's reference: key 00 01 .. 0f, message 00 01 .. 0f
  // (16 bytes) => 0x3f2acc7f57c29bdb (vectors.h, entry 16).
  const uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
  EXPECT_EQ(SipHash24(k0, k1, 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL),
            0x3f2acc7f57c29bdbULL);
}

TEST(MeasureDomainTest, FixedPointClampsAndRounds) {
  ASSERT_OK_AND_ASSIGN(MeasureDomain d, MeasureDomain::Create(0, 1, 0.01));
  EXPECT_EQ(d.lower_fp, 0);
  EXPECT_EQ(d.upper_fp, 100);
  EXPECT_EQ(d.ToFixedPoint(0.704), 70);
  EXPECT_EQ(d.ToFixedPoint(0.706), 71);
  EXPECT_EQ(d.ToFixedPoint(-5), 0);
  EXPECT_EQ(d.ToFixedPoint(7), 100);
  EXPECT_EQ(d.ToFixedPoint(std::nan("")), 0);
  EXPECT_DOUBLE_EQ(d.ToValue(70), 0.7);
  ASSERT_OK_AND_ASSIGN(MeasureDomain s, MeasureDomain::Create(-3, 5, 1));
  EXPECT_EQ(s.MaxAbs(), 5);
  EXPECT_THAT(MeasureDomain::Create(1, 1, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MeasureDomain::Create(0, 1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MeasureDomain::Create(0.2, 0.7, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SensitivityTest, FollowsFromTheBounds) {
  const ContributionBounds b{4, 8};
  ASSERT_OK_AND_ASSIGN(MeasureDomain d, MeasureDomain::Create(-10, 200, 1));
  EXPECT_EQ(AccountCountL2Squared(4), 4);
  EXPECT_EQ(SessionCountL2Squared(b), 4 * 64);
  EXPECT_EQ(SumL2Squared(b, d), 4 * std::pow(8 * 200, 2));
  EXPECT_EQ(CenteredSumL2Squared(b, d), 4 * std::pow(8 * 210, 2));
  EXPECT_EQ(RatePairL2Squared(b), 4 * 64);
  EXPECT_EQ(HistogramL2Squared(b, 3), 3 * 4 * 64);
}

TEST(ContributionBounderTest, KeepsEverythingUnderTheLimits) {
  ASSERT_OK_AND_ASSIGN(ContributionBounder bounder,
                       ContributionBounder::Create({4, 8}, kKey));
  std::vector<uint32_t> selected;
  const uint64_t cohorts[] = {10, 20, 30};
  bounder.SelectCohorts(7, cohorts, &selected);
  EXPECT_THAT(selected, ElementsAre(0, 1, 2));
}

TEST(ContributionBounderTest, KeepsExactlyTheLimitDeterministically) {
  ASSERT_OK_AND_ASSIGN(ContributionBounder bounder,
                       ContributionBounder::Create({4, 8}, kKey));
  std::vector<uint64_t> sessions(50);
  for (size_t i = 0; i < sessions.size(); ++i) sessions[i] = 1000 + i * 17;
  std::vector<uint32_t> first, second;
  bounder.SelectSessions(99, sessions, &first);
  bounder.SelectSessions(99, sessions, &second);
  EXPECT_EQ(first.size(), 8u);
  EXPECT_EQ(first, second);
  EXPECT_TRUE(std::is_sorted(first.begin(), first.end()));
  // Another key picks another subset (2^-?? chance of equality).
  ASSERT_OK_AND_ASSIGN(ContributionBounder other,
                       ContributionBounder::Create({4, 8}, "fedcba9876543210"));
  std::vector<uint32_t> third;
  other.SelectSessions(99, sessions, &third);
  EXPECT_NE(first, third);
}

TEST(ContributionBounderTest, SelectionDoesNotDependOnInputOrder) {
  ASSERT_OK_AND_ASSIGN(ContributionBounder bounder,
                       ContributionBounder::Create({2, 8}, kKey));
  const std::vector<uint64_t> a = {5, 6, 7, 8, 9};
  const std::vector<uint64_t> b = {9, 8, 7, 6, 5};
  std::vector<uint32_t> sa, sb;
  bounder.SelectCohorts(1, a, &sa);
  bounder.SelectCohorts(1, b, &sb);
  ASSERT_EQ(sa.size(), 2u);
  std::vector<uint64_t> fa = {a[sa[0]], a[sa[1]]};
  std::vector<uint64_t> fb = {b[sb[1]], b[sb[0]]};
  EXPECT_EQ(fa, fb);
}

TEST(ContributionBounderTest, EachCohortIsKeptAboutEquallyOften) {
  // 20000 accounts with the same 8 cohorts, L0 = 2: each cohort is kept by
  // each account with probability 1/4 if the keyed hash is unbiased.
  ASSERT_OK_AND_ASSIGN(ContributionBounder bounder,
                       ContributionBounder::Create({2, 8}, kKey));
  const std::vector<uint64_t> cohorts = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<int64_t> kept(8, 0);
  std::vector<uint32_t> selected;
  constexpr int kAccounts = 20000;
  for (uint64_t account = 0; account < kAccounts; ++account) {
    bounder.SelectCohorts(account, cohorts, &selected);
    ASSERT_EQ(selected.size(), 2u);
    for (uint32_t i : selected) ++kept[i];
  }
  for (int64_t k : kept) ExpectBinomial(k, kAccounts, 0.25);
}

TEST(ContributionBounderTest, RejectsBadKeyAndBounds) {
  EXPECT_THAT(ContributionBounder::Create({4, 8}, "short"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ContributionBounder::Create({0, 8}, kKey),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ContributionBounder::Create({4, 0}, kKey),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace cohortd::privacy
