#include "server/privacy/samplers.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"
#include "tests/privacy/stat_checks.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;
using ::cohortd::testing::ExpectBinomial;
using ::cohortd::testing::ExpectMatchesPmf;
using ::cohortd::testing::StatusIs;

constexpr int kSamples = 200000;

class BrokenSource : public RandomSource {
 public:
  absl::Status Fill(uint64_t*, size_t) override {
    return absl::InternalError("entropy gone");
  }
};

struct BernoulliCase {
  uint64_t num, den;
};
class BernoulliExpTest : public ::testing::TestWithParam<BernoulliCase> {};

TEST_P(BernoulliExpTest, FrequencyMatchesExpMinusGamma) {
  DeterministicRandom source(1);
  RandomWords rng(&source);
  const auto [num, den] = GetParam();
  int64_t ones = 0;
  for (int i = 0; i < kSamples; ++i) {
    ASSERT_OK_AND_ASSIGN(bool b, SampleBernoulliExp(rng, num, den));
    ones += b;
  }
  ExpectBinomial(ones, kSamples, std::exp(-static_cast<double>(num) / den));
}

INSTANTIATE_TEST_SUITE_P(Gammas, BernoulliExpTest,
                         ::testing::Values(BernoulliCase{0, 1},
                                           BernoulliCase{1, 3},
                                           BernoulliCase{1, 1},
                                           BernoulliCase{5, 2},
                                           BernoulliCase{7, 1}));

TEST(BernoulliExpTest, RejectsBadRationals) {
  DeterministicRandom source(1);
  RandomWords rng(&source);
  EXPECT_THAT(SampleBernoulliExp(rng, 1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SampleBernoulliExp(rng, 1ULL << 40, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

struct LaplaceCase {
  uint64_t t, s;
};
class DiscreteLaplaceTest : public ::testing::TestWithParam<LaplaceCase> {};

TEST_P(DiscreteLaplaceTest, MatchesExactPmfAndMoments) {
  const auto [t, s] = GetParam();
  DeterministicRandom source(t * 1000 + s);
  RandomWords rng(&source);
  ASSERT_OK_AND_ASSIGN(DiscreteLaplace laplace, DiscreteLaplace::Create(t, s));
  std::vector<int64_t> samples(kSamples);
  for (int64_t& x : samples) {
    ASSERT_OK_AND_ASSIGN(x, laplace.Sample(rng));
  }
  // P[X = x] = (1 - q) / (1 + q) q^|x| with q = exp(-s/t).
  const double q = std::exp(-static_cast<double>(s) / t);
  auto pmf = [q](int64_t x) {
    return (1 - q) / (1 + q) * std::pow(q, std::abs(static_cast<double>(x)));
  };
  const int64_t radius = static_cast<int64_t>(40.0 * t / s) + 10;
  ExpectMatchesPmf(samples, pmf, radius);
}

INSTANTIATE_TEST_SUITE_P(Scales, DiscreteLaplaceTest,
                         ::testing::Values(LaplaceCase{1, 1},
                                           LaplaceCase{10, 1},
                                           LaplaceCase{7, 3},
                                           LaplaceCase{1000, 1}));

struct GaussianCase {
  uint64_t num, den;
};
class DiscreteGaussianTest : public ::testing::TestWithParam<GaussianCase> {};

TEST_P(DiscreteGaussianTest, MatchesExactPmfAndMoments) {
  const auto [num, den] = GetParam();
  DeterministicRandom source(num * 7 + den);
  RandomWords rng(&source);
  ASSERT_OK_AND_ASSIGN(DiscreteGaussian gauss,
                       DiscreteGaussian::Create(num, den));
  std::vector<int64_t> samples(kSamples);
  for (int64_t& x : samples) {
    ASSERT_OK_AND_ASSIGN(x, gauss.Sample(rng));
  }
  const double sigma2 = static_cast<double>(num) / den;
  const int64_t radius = static_cast<int64_t>(12 * std::sqrt(sigma2)) + 10;
  double normaliser = 0;
  for (int64_t x = -radius; x <= radius; ++x) {
    normaliser += std::exp(-static_cast<double>(x) * x / (2 * sigma2));
  }
  auto pmf = [&](int64_t x) {
    return std::exp(-static_cast<double>(x) * x / (2 * sigma2)) / normaliser;
  };
  ExpectMatchesPmf(samples, pmf, radius);
}

INSTANTIATE_TEST_SUITE_P(Sigmas, DiscreteGaussianTest,
                         ::testing::Values(GaussianCase{1, 1},
                                           GaussianCase{7, 3},
                                           GaussianCase{100, 1},
                                           GaussianCase{1000000, 1},
                                           GaussianCase{1, 4}));

TEST(DiscreteGaussianTest, CreateAtLeastRoundsSigma2Up) {
  ASSERT_OK_AND_ASSIGN(DiscreteGaussian g,
                       DiscreteGaussian::CreateAtLeast(0.1));
  EXPECT_GE(g.sigma2(), 0.1);
  EXPECT_LT(g.sigma2(), 0.1 + 1.0 / 65536);
  ASSERT_OK_AND_ASSIGN(DiscreteGaussian big,
                       DiscreteGaussian::CreateAtLeast(3e12 + 0.5));
  EXPECT_EQ(big.sigma2_den(), 1u);
  EXPECT_EQ(big.sigma2_num(), 3000000000001u);
}

TEST(DiscreteGaussianTest, RejectsBadParameters) {
  EXPECT_THAT(DiscreteGaussian::Create(0, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DiscreteGaussian::Create(1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DiscreteGaussian::CreateAtLeast(-1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DiscreteGaussian::CreateAtLeast(1e19),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SamplersTest, FailClosedWhenRandomnessFails) {
  BrokenSource broken;
  RandomWords rng(&broken);
  EXPECT_THAT(SampleBernoulliExp(rng, 1, 2),
              StatusIs(absl::StatusCode::kInternal));
  ASSERT_OK_AND_ASSIGN(DiscreteLaplace laplace, DiscreteLaplace::Create(10, 1));
  EXPECT_THAT(laplace.Sample(rng), StatusIs(absl::StatusCode::kInternal));
  ASSERT_OK_AND_ASSIGN(DiscreteGaussian gauss, DiscreteGaussian::Create(4, 1));
  EXPECT_THAT(gauss.Sample(rng), StatusIs(absl::StatusCode::kInternal));
}

TEST(SamplersTest, SameSeedSameSamples) {
  ASSERT_OK_AND_ASSIGN(DiscreteGaussian gauss, DiscreteGaussian::Create(50, 1));
  DeterministicRandom s1(9), s2(9);
  RandomWords r1(&s1), r2(&s2);
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK_AND_ASSIGN(int64_t a, gauss.Sample(r1));
    ASSERT_OK_AND_ASSIGN(int64_t b, gauss.Sample(r2));
    EXPECT_EQ(a, b);
  }
}

}  // namespace
}  // namespace cohortd::privacy
