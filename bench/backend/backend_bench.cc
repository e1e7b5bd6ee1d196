// Both query backends at scale (issue 10, item 5): loads N synthetic
// sessions into the embedded columnar index and into a real
// clickhouse-server (started on free loopback ports in a temp dir, as the
// tests do), then times the "verified success rate by occupation" release
// and the expertise box plot (QUANTILES of actions_per_prompt) on each:
// statistics (backend) + release (privacy core), p50 of --runs. Prints
// ingest rates and the index's memory.
//
//   backend_bench --sessions=1000000 --runs=5
// CH_URL=http://127.0.0.1:8123 uses that server's "cohortd" database
// instead (the started one idles).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/backend/clickhouse_backend.h"
#include "server/crypto/csprng.h"
#include "server/engine/executor.h"
#include "tests/backend/clickhouse_server.h"

namespace cohortd {
namespace {

struct Mix {  // SplitMix64: synthetic data only
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

long MaxRssMb() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

int Run(int64_t sessions, int runs) {
  Config config;
  DatasetSpec ds;
  ds.name = "sessions";
  std::vector<std::string> occupations;
  for (int i = 0; i < 22; ++i) occupations.push_back(absl::StrCat("occ", i));
  ds.dimensions.push_back({"occupation", false, occupations, 0, false});
  ds.dimensions.push_back(
      {"verified_success", false, {"true", "false"}, 0, false});
  ds.dimensions.push_back(
      {"expertise",
       false,
       {"novice", "beginner", "intermediate", "advanced", "expert"},
       0,
       false});
  ds.dimensions.push_back({"month", false, {}, 0, true});
  ds.measures.push_back(
      {"actions_per_prompt", 0, 200, 0.0, std::nullopt, 0.01});
  ds.privacy.max_epsilon = 2;
  config.datasets.push_back(ds);
  const DatasetSpec& spec = config.datasets[0];

  auto server = testing::ClickHouseServer::Start();
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  ClickHouseOptions options;
  options.endpoint.url = (*server)->url();
  if (const char* url = getenv("CH_URL")) options.endpoint.url = url;
  options.endpoint.timeout = absl::Minutes(30);
  auto backend = ClickHouseBackend::Create(options);
  auto index = ColumnarIndex::Create({&spec}, ColumnarIndex::Options());
  if (!backend.ok() || !index.ok()) return 1;

  // 10 sessions per account on average; an account keeps its occupation
  // and expertise.
  const int64_t accounts = std::max<int64_t>(1, sessions / 10);
  Mix mix{1};
  absl::Duration embedded_load, clickhouse_load;
  const int64_t batch = 50000;
  for (int64_t begin = 0; begin < sessions; begin += batch) {
    std::vector<CommittedSession> part;
    for (int64_t i = begin; i < std::min(sessions, begin + batch); ++i) {
      const int64_t a = static_cast<int64_t>(mix.Next() % accounts);
      CommittedSession s;
      s.session_id = absl::StrCat("s", i);
      s.account_pseudonym =
          absl::StrCat("acct", a, std::string(32, '#')).substr(0, 32);
      s.session_start_unix_seconds = 1767225600 + (mix.Next() % (90 * 86400));
      s.labels.emplace_back("occupation", occupations[a % 22]);
      s.labels.emplace_back("expertise", spec.dimensions[2].values[a % 5]);
      s.labels.emplace_back("verified_success",
                            std::string(mix.Next() % 3 ? "true" : "false"));
      s.measures.emplace_back("actions_per_prompt",
                              (mix.Next() % 20000) / 100.0);
      part.push_back(std::move(s));
    }
    absl::Time t = absl::Now();
    (*index)->OnCommitted(spec, part);
    embedded_load += absl::Now() - t;
    t = absl::Now();
    absl::Status shipped = (*backend)->Ship(spec, part);
    clickhouse_load += absl::Now() - t;
    if (!shipped.ok()) {
      std::fprintf(stderr, "%s\n", shipped.ToString().c_str());
      return 1;
    }
  }
  std::printf("sessions %lld, accounts %lld\n",
              static_cast<long long>(sessions),
              static_cast<long long>(accounts));
  std::printf(
      "ingest  embedded index %.0f sessions/s, clickhouse %.0f "
      "sessions/s (one client, 50k-session inserts)\n",
      sessions / absl::ToDoubleSeconds(embedded_load),
      sessions / absl::ToDoubleSeconds(clickhouse_load));
  {
    auto view = (*index)->Read("sessions");
    std::printf(
        "memory  embedded index %.1f MB (%.1f B/session); process "
        "max RSS %ld MB\n",
        (*view)->MemoryBytes() / 1e6,
        static_cast<double>((*view)->MemoryBytes()) / sessions, MaxRssMb());
  }

  cohortd::v1::AggregateRequest rate;
  rate.set_dataset("sessions");
  rate.set_epsilon(1);
  rate.add_group_by("occupation");
  auto* r = rate.add_metrics();
  r->set_kind(cohortd::v1::Metric::RATE);
  r->mutable_rate_of()->set_dimension("verified_success");
  r->mutable_rate_of()->add_any_of("true");
  cohortd::v1::AggregateRequest box;
  box.set_dataset("sessions");
  box.set_epsilon(1);
  box.add_group_by("expertise");
  auto* q = box.add_metrics();
  q->set_kind(cohortd::v1::Metric::QUANTILES);
  q->set_measure("actions_per_prompt");

  if (runs == 0) return 0;  // load only
  const std::string key = "0123456789abcdef";
  for (const auto& [name, request] :
       {std::make_pair("rate by occupation", rate),
        std::make_pair("expertise box plot", box)}) {
    auto plan = PlanQuery(config, request);
    if (!plan.ok()) {
      std::fprintf(stderr, "%s\n", plan.status().ToString().c_str());
      return 1;
    }
    auto releaser = MakeReleaser(*plan);
    std::vector<double> embedded_ms, clickhouse_ms;
    for (int i = 0; i < runs; ++i) {
      absl::Time t = absl::Now();
      {
        auto view = (*index)->Read("sessions");
        auto stats = ComputeBoundedStatistics(*plan, **view, key);
        auto out =
            ReleaseStatistics(*plan, *stats, *releaser, SecureRandomWords());
        if (!out.ok()) return 1;
      }
      embedded_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
      t = absl::Now();
      auto stats = (*backend)->Compute(*plan, key);
      if (!stats.ok()) {
        std::fprintf(stderr, "%s\n", stats.status().ToString().c_str());
        return 1;
      }
      auto out =
          ReleaseStatistics(*plan, *stats, *releaser, SecureRandomWords());
      if (!out.ok()) return 1;
      clickhouse_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
    }
    std::sort(embedded_ms.begin(), embedded_ms.end());
    std::sort(clickhouse_ms.begin(), clickhouse_ms.end());
    std::printf("%-20s p50 embedded %.1f ms, clickhouse %.1f ms (%d runs)\n",
                name, embedded_ms[runs / 2], clickhouse_ms[runs / 2], runs);
  }
  return 0;
}

}  // namespace
}  // namespace cohortd

int main(int argc, char** argv) {
  int64_t sessions = 1000000;
  int runs = 5;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (absl::StartsWith(arg, "--sessions=")) {
      if (!absl::SimpleAtoi(arg.substr(11), &sessions)) return 2;
    } else if (absl::StartsWith(arg, "--runs=")) {
      if (!absl::SimpleAtoi(arg.substr(7), &runs) || runs < 0) return 2;
    } else {
      std::fprintf(stderr, "usage: backend_bench [--sessions=N] [--runs=R]\n");
      return 2;
    }
  }
  return cohortd::Run(sessions, runs);
}
