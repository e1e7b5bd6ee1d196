// Coverage of NOISE_AND_SAMPLING intervals (privacy/sampling_interval.h)
// against a simulated super-population with a known population value.
//
// Each replicate draws a Poisson number of accounts (mean lambda) from a
// known distribution: an account is of type A or B with probability 1/2,
// has n ~ uniform{1..8} sessions (already within Linf = 8), each matching
// the rate's predicate with probability 0.1 (A) or 0.5 (B), each with a
// value mu + uniform{-10..10}, mu = 10 (A) or 50 (B). Sessions of one
// account are correlated through its type: the clustered case. Population
// values: rate 0.3, mean 30, sessions 4.5 lambda, sum 135 lambda.
//
// Tolerance: with R replicates and nominal level 0.95 a correct interval
// misses at most Bin(R, 0.05) times in law (fewer when conservative); the
// test allows t misses, the smallest t with P[Bin(R, 0.05) > t] <= 1e-6,
// so a correct implementation fails with probability <= 1e-6 per check.
// Positive controls: the same replicates with the sampling part left out
// (noise-only interval) in a regime where sampling dominates, and with the
// noise part left out (v +- z SE) where noise dominates, must miss more
// than t times.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "server/privacy/aggregations.h"
#include "server/privacy/query_release.h"
#include "server/privacy/sampling_interval.h"
#include "tests/common/status_matchers.h"
#include "tests/privacy/deterministic_random.h"

namespace cohortd::privacy {
namespace {

using ::cohortd::testing::DeterministicRandom;

constexpr double kLevel = 0.95;
constexpr int kLinf = 8;

// The smallest t with P[Bin(n, p) > t] <= tail.
int BinomialUpperBound(int n, double p, double tail) {
  double cdf = 0;
  for (int t = 0; t <= n; ++t) {
    cdf += std::exp(std::lgamma(n + 1.0) - std::lgamma(t + 1.0) -
                    std::lgamma(n - t + 1.0) + t * std::log(p) +
                    (n - t) * std::log1p(-p));
    if (1 - cdf <= tail) return t;
  }
  return n;
}

// Simulation draws (data, not noise) from a seeded generator.
class Draws {
 public:
  explicit Draws(uint64_t seed) : source_(seed), rng_(&source_) {}
  double Uniform() {
    uint64_t w = 0;
    EXPECT_TRUE(rng_.Next(&w));
    return static_cast<double>(w >> 11) * 0x1.0p-53;
  }
  int UniformInt(int n) { return static_cast<int>(Uniform() * n); }
  // Poisson(lambda) as the arrivals of a rate-lambda process in [0, 1].
  int Poisson(double lambda) {
    int k = 0;
    double t = -std::log1p(-Uniform()) / lambda;
    while (t <= 1) {
      ++k;
      t += -std::log1p(-Uniform()) / lambda;
    }
    return k;
  }

 private:
  DeterministicRandom source_;
  RandomWords rng_;
};

// One cohort's exact bounded statistics and per-account totals.
struct Sample {
  std::vector<AccountTotal> rate, mean, sessions;
  int64_t matching = 0, total = 0, count = 0;
  __int128 sum = 0;
  int64_t accounts = 0;
};

Sample Draw(Draws& d, double lambda) {
  Sample s;
  const int m = d.Poisson(lambda);
  for (int i = 0; i < m; ++i) {
    const bool type_b = d.Uniform() < 0.5;
    const int n = 1 + d.UniformInt(kLinf);
    int64_t a = 0, y = 0;
    for (int j = 0; j < n; ++j) {
      a += d.Uniform() < (type_b ? 0.5 : 0.1) ? 1 : 0;
      y += (type_b ? 50 : 10) + d.UniformInt(21) - 10;
    }
    s.rate.push_back({a, n});
    s.mean.push_back({y, n});
    s.sessions.push_back({n, n});
    s.matching += a;
    s.total += n;
    s.count += n;
    s.sum += y;
    ++s.accounts;
  }
  return s;
}

bool Covers(const Estimate& e, double truth) {
  return e.ci_low <= truth && truth <= e.ci_high;
}

struct Misses {
  int combined = 0, noise_only = 0, sampling_only = 0;
};

// Component-level replicates of the RATE: the three intervals of the same
// release (rho per share as the releaser would grant it).
Misses RateReplicates(double lambda, double rho, int reps, uint64_t seed) {
  const ContributionBounds bounds{1, kLinf};
  auto rate = RateMetric::Create(bounds, rho, kLevel);
  auto variance = ClusteredSamplingVariance::Create(
      bounds, SamplingTarget::kRatio, 1, 10, rho, kLevel);
  EXPECT_TRUE(rate.ok() && variance.ok());
  Draws d(seed);
  DeterministicRandom noise_source(seed + 1);
  RandomWords noise(&noise_source);
  const double z = TwoSidedNormalQuantile(kLevel);
  Misses misses;
  for (int r = 0; r < reps; ++r) {
    const Sample s = Draw(d, lambda);
    const Estimate e = *rate->Release(s.matching, s.total, noise);
    const double se = *variance->ReleaseStandardError(s.rate, e.value, noise);
    const Estimate both = CombineNoiseAndSampling(e, se, kLevel, 0, 1);
    const Estimate sampling{e.value, e.value - z * se, e.value + z * se};
    misses.combined += !Covers(both, 0.3);
    misses.noise_only += !Covers(e, 0.3);
    misses.sampling_only += !Covers(sampling, 0.3);
  }
  return misses;
}

constexpr int kReps = 400;

TEST(SamplingIntervalCoverageTest, RateCoversWhenSamplingDominates) {
  const int t = BinomialUpperBound(kReps, 0.05, 1e-6);
  // 20,000 accounts, rho 0.2 per share: the noise is ~1/10 of the
  // sampling error.
  const Misses m = RateReplicates(20000, 0.2, kReps, 11);
  EXPECT_LE(m.combined, t);
  // Positive control: without the sampling part the interval fails.
  EXPECT_GT(m.noise_only, t);
  RecordProperty("misses_combined", m.combined);
  RecordProperty("misses_noise_only", m.noise_only);
}

TEST(SamplingIntervalCoverageTest, RateCoversWhenNoiseDominates) {
  const int t = BinomialUpperBound(kReps, 0.05, 1e-6);
  // 500 accounts at rho 0.0005 per share: noise ~10x the sampling error.
  const Misses m = RateReplicates(500, 0.0005, kReps, 12);
  EXPECT_LE(m.combined, t);
  // Positive control: without the noise part the interval fails.
  EXPECT_GT(m.sampling_only, t);
}

// Sampling and noise of similar size.
TEST(SamplingIntervalCoverageTest, RateCoversWhenBothMatter) {
  const int t = BinomialUpperBound(kReps, 0.05, 1e-6);
  const Misses m = RateReplicates(4000, 0.002, kReps, 13);
  std::printf(
      "both matter: misses %d combined, %d noise only, %d sampling "
      "only (allowed %d)\n",
      m.combined, m.noise_only, m.sampling_only, t);
  // Each part alone is conservative enough here to pass (the noise box
  // by its union bound, the SE by its upper confidence value of Q): the
  // positive controls are the two dominated regimes above.
  EXPECT_LE(m.combined, t);
}

// End to end through QueryReleaser: SESSIONS, SUM, MEAN and RATE with
// sampling intervals, one release per replicate, against the population
// values; and the same metrics with NOISE intervals miss the population
// value (positive control for the wiring).
TEST(SamplingIntervalCoverageTest, ReleaserCoversPopulationValues) {
  const double lambda = 20000;
  const MeasureDomain domain = *MeasureDomain::Create(0, 100, 1);
  auto make = [&](bool sampling) {
    std::vector<MetricRequest> metrics = {{MetricKind::kSessions, {}, {}},
                                          {MetricKind::kSum, domain, {}, 0},
                                          {MetricKind::kMean, domain, {}, 0},
                                          {MetricKind::kRate, {}, {}}};
    for (auto& m : metrics) m.sampling_interval = sampling;
    QueryPrivacyParams params;
    params.bounds = {1, kLinf};
    params.epsilon = 4;
    params.delta = 1e-10;
    params.confidence = kLevel;
    return QueryReleaser::Create(params, std::move(metrics), 1);
  };
  ASSERT_OK_AND_ASSIGN(QueryReleaser with, make(true));
  ASSERT_OK_AND_ASSIGN(QueryReleaser without, make(false));
  const double truth[] = {4.5 * lambda, 135 * lambda, 30, 0.3};
  const int reps = 300;
  const int t = BinomialUpperBound(reps, 0.05, 1e-6);
  Draws d(21);
  DeterministicRandom noise_source(22);
  RandomWords noise(&noise_source);
  int misses[4] = {0, 0, 0, 0}, noise_misses[4] = {0, 0, 0, 0};
  for (int r = 0; r < reps; ++r) {
    const Sample s = Draw(d, lambda);
    std::vector<MetricInput> in(4);
    in[0].sessions = s.total;
    in[0].account_totals = s.sessions;
    in[1].sum_fp = s.sum;
    in[1].account_totals = s.mean;
    in[2].sum_fp = s.sum;
    in[2].sessions = s.count;
    in[2].account_totals = s.mean;
    in[3].matching = s.matching;
    in[3].sessions = s.total;
    in[3].account_totals = s.rate;
    const std::vector<int64_t> gates = {s.accounts};
    ASSERT_OK_AND_ASSIGN(CohortRelease a,
                         with.ReleaseCohort(s.accounts, gates, in, noise));
    ASSERT_OK_AND_ASSIGN(CohortRelease b,
                         without.ReleaseCohort(s.accounts, gates, in, noise));
    ASSERT_TRUE(a.released && b.released);
    for (int i = 0; i < 4; ++i) {
      misses[i] += !Covers(a.metrics[i].estimate, truth[i]);
      noise_misses[i] += !Covers(b.metrics[i].estimate, truth[i]);
    }
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_LE(misses[i], t) << "metric " << i;
    EXPECT_GT(noise_misses[i], t) << "metric " << i;
  }
}

}  // namespace
}  // namespace cohortd::privacy
