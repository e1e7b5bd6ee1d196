// Throughput of the privacy core with the production CSPRNG: exact sampler
// rates at several scales, the cost of releasing a 10,000-cohort group-by,
// and contribution bounding per session.
#include <cstdint>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "server/crypto/csprng.h"
#include "server/privacy/contribution_bounding.h"
#include "server/privacy/query_release.h"
#include "server/privacy/samplers.h"

namespace cohortd::privacy {
namespace {

void BM_DiscreteLaplace(benchmark::State& state) {
  const DiscreteLaplace laplace = *DiscreteLaplace::Create(state.range(0), 1);
  RandomWords& rng = SecureRandomWords();
  for (auto _ : state) {
    benchmark::DoNotOptimize(*laplace.Sample(rng));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DiscreteLaplace)->Arg(1)->Arg(10)->Arg(1000);

void BM_DiscreteGaussian(benchmark::State& state) {
  const int64_t sigma = state.range(0);
  const DiscreteGaussian gauss =
      *DiscreteGaussian::Create(static_cast<uint64_t>(sigma * sigma), 1);
  RandomWords& rng = SecureRandomWords();
  for (auto _ : state) {
    benchmark::DoNotOptimize(*gauss.Sample(rng));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DiscreteGaussian)->Arg(1)->Arg(10)->Arg(1000);

// A group-by of 10,000 cohorts sized like the study (400k sessions, 40 per
// cohort on average, skewed): defaults k = 10, epsilon 1, delta 1e-7,
// L0 = 4, Linf = 8, with sessions + accounts + mean + rate, and optionally
// a 5-point quantile box.
void BM_ReleaseGroupBy10k(benchmark::State& state) {
  const bool with_quantiles = state.range(0) != 0;
  const MeasureDomain domain = *MeasureDomain::Create(0, 200, 1);
  // Gate 0: accounts carrying the measure (mean, quantiles); gate 1:
  // accounts carrying the rate's label.
  std::vector<MetricRequest> metrics = {{MetricKind::kSessions, {}, {}},
                                        {MetricKind::kAccounts, {}, {}},
                                        {MetricKind::kMean, domain, {}, 0},
                                        {MetricKind::kRate, {}, {}, 1}};
  if (with_quantiles) {
    metrics.push_back(
        {MetricKind::kQuantiles, domain, {0.05, 0.25, 0.5, 0.75, 0.95}, 0});
  }
  const QueryReleaser releaser =
      *QueryReleaser::Create(QueryPrivacyParams{}, metrics, 2);
  constexpr int kCohorts = 10000;
  std::vector<int64_t> accounts(kCohorts), sessions(kCohorts);
  std::vector<std::vector<int64_t>> values(kCohorts);
  for (int c = 0; c < kCohorts; ++c) {
    sessions[c] = 5 + (c * 7919) % 71;  // 5..75, mean 40
    accounts[c] = (sessions[c] + 1) / 2 + 1;
    for (int s = 0; s < sessions[c]; ++s) values[c].push_back((s * 37) % 200);
  }
  std::vector<MetricInput> inputs(metrics.size());
  RandomWords& rng = SecureRandomWords();
  int64_t released = 0;
  for (auto _ : state) {
    for (int c = 0; c < kCohorts; ++c) {
      for (MetricInput& in : inputs) {
        in.sessions = sessions[c];
        in.sum_fp = sessions[c] * 100;
        in.matching = sessions[c] / 3;
        in.values_fp = values[c];
      }
      const int64_t gate_accounts[2] = {accounts[c], accounts[c] - 1};
      const CohortRelease r =
          *releaser.ReleaseCohort(accounts[c], gate_accounts, inputs, rng);
      released += r.released;
    }
  }
  state.counters["released_per_query"] =
      benchmark::Counter(static_cast<double>(released) / state.iterations());
  state.SetItemsProcessed(state.iterations() * kCohorts);
}
BENCHMARK(BM_ReleaseGroupBy10k)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// Same with every cohort large enough to be released, so every metric is
// computed: the worst case for release cost.
void BM_ReleaseGroupBy10kAllReleased(benchmark::State& state) {
  const MeasureDomain domain = *MeasureDomain::Create(0, 200, 1);
  // Gate 0: accounts carrying the measure (mean, quantiles); gate 1:
  // accounts carrying the rate's label.
  std::vector<MetricRequest> metrics = {{MetricKind::kSessions, {}, {}},
                                        {MetricKind::kAccounts, {}, {}},
                                        {MetricKind::kMean, domain, {}, 0},
                                        {MetricKind::kRate, {}, {}, 1}};
  if (state.range(0) != 0) {
    metrics.push_back(
        {MetricKind::kQuantiles, domain, {0.05, 0.25, 0.5, 0.75, 0.95}, 0});
  }
  const QueryReleaser releaser =
      *QueryReleaser::Create(QueryPrivacyParams{}, metrics, 2);
  std::vector<int64_t> values;
  for (int s = 0; s < 400; ++s) values.push_back((s * 37) % 200);
  std::vector<MetricInput> inputs(metrics.size());
  for (MetricInput& in : inputs) {
    in.sessions = 400;
    in.sum_fp = 40000;
    in.matching = 100;
    in.values_fp = values;
  }
  const int64_t gate_accounts[2] = {1000, 900};
  RandomWords& rng = SecureRandomWords();
  for (auto _ : state) {
    for (int c = 0; c < 10000; ++c) {
      benchmark::DoNotOptimize(
          *releaser.ReleaseCohort(1000, gate_accounts, inputs, rng));
    }
  }
  state.SetItemsProcessed(state.iterations() * 10000);
}
BENCHMARK(BM_ReleaseGroupBy10kAllReleased)
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond);

// Contribution bounding over 400k sessions of 235k accounts, grouped into
// cohorts: most accounts have 1-2 sessions (no hashing needed), 1% are
// heavy users with 60 sessions over 12 cohorts.
void BM_BoundSessions400k(benchmark::State& state) {
  const ContributionBounder bounder =
      *ContributionBounder::Create({4, 8}, std::string(16, 'k'));
  struct Account {
    std::vector<uint64_t> cohorts;
    std::vector<std::vector<uint64_t>> sessions;  // per cohort
  };
  std::vector<Account> accounts;
  int64_t total_sessions = 0;
  uint64_t next_session = 1;
  for (int a = 0; total_sessions < 400000; ++a) {
    Account acc;
    const bool heavy = a % 100 == 0;
    const int cohorts = heavy ? 12 : 1 + a % 2;
    const int per_cohort = heavy ? 5 : 1;
    for (int c = 0; c < cohorts; ++c) {
      acc.cohorts.push_back(1000003ULL * (a % 977) + c);
      acc.sessions.emplace_back();
      for (int s = 0; s < per_cohort; ++s) {
        acc.sessions.back().push_back(next_session++);
      }
      total_sessions += per_cohort;
    }
    accounts.push_back(std::move(acc));
  }
  std::vector<uint32_t> kept_cohorts, kept_sessions;
  for (auto _ : state) {
    int64_t kept = 0;
    for (size_t a = 0; a < accounts.size(); ++a) {
      bounder.SelectCohorts(a, accounts[a].cohorts, &kept_cohorts);
      for (uint32_t c : kept_cohorts) {
        bounder.SelectSessions(accounts[a].cohorts[c], accounts[a].sessions[c],
                               &kept_sessions);
        kept += kept_sessions.size();
      }
    }
    benchmark::DoNotOptimize(kept);
  }
  state.SetItemsProcessed(state.iterations() * total_sessions);
}
BENCHMARK(BM_BoundSessions400k)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cohortd::privacy

BENCHMARK_MAIN();
