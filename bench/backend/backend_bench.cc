// Both query backends at scale (issue 10, item 5): loads N synthetic
// sessions into the embedded columnar index and into a real
// clickhouse-server (started on free loopback ports in a temp dir, as the
// tests do), then times the "verified success rate by occupation" release
// and the expertise box plot (QUANTILES of actions_per_prompt) on each:
// statistics (backend) + release (privacy core), p50 of --runs. Prints a
// table: wall time next to CPU time (this process's for the embedded
// index; clickhouse-server's, from /proc, for ClickHouse, whose push-down
// is nearly all server work), ingest rates, and memory (the index's heap
// and this process's RSS; clickhouse-server's RSS and bytes on disk).
// Pseudonyms are 32 random bytes per account, like the HMAC pseudonyms
// cohortd stores, 10 sessions per account on average.
//
// Loading here is a bulk path for both backends (ColumnarIndex::OnCommitted
// and ClickHouseBackend::Ship, 50k sessions per call), not cohortd's push
// path; bench/backend/push_path.sh measures that on a sample.
//
//   backend_bench --sessions=10000000 --runs=3
// CH_URL=http://127.0.0.1:8123 (and CH_PID=<its pid> for its CPU/RSS)
// uses that server's "cohortd" database instead (the started one idles).
// --runs=0 loads only.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
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

// CPU seconds (user + system) of this process.
double SelfCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU seconds (user + system) of process `pid` from /proc, or 0.
double ProcCpuSeconds(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces): state is 3rd,
  // utime 14th and stime 15th of the whole line.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i >= 14) ticks += std::atof(field.c_str());
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// VmRSS or VmHWM (`key`) of process `pid` in MB, or 0.
double ProcMemoryMb(pid_t pid, const std::string& key) {
  if (pid <= 0) return 0;
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, key + ":")) {
      return std::atof(line.c_str() + key.size() + 1) / 1024;
    }
  }
  return 0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
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
  pid_t ch_pid = (*server)->pid();
  if (const char* url = getenv("CH_URL")) {
    options.endpoint.url = url;
    const char* pid = getenv("CH_PID");
    ch_pid = pid == nullptr ? 0 : std::atoi(pid);
  }
  options.endpoint.timeout = absl::Minutes(30);
  auto backend = ClickHouseBackend::Create(options);
  auto index = ColumnarIndex::Create({&spec}, ColumnarIndex::Options());
  if (!backend.ok() || !index.ok()) return 1;

  // 10 sessions per account on average; an account keeps its occupation
  // and expertise; its pseudonym is 32 random bytes.
  const int64_t accounts = std::max<int64_t>(1, sessions / 10);
  Mix mix{1};
  absl::Duration embedded_load, clickhouse_load;
  double embedded_load_cpu = 0, clickhouse_client_cpu = 0;
  const double ch_cpu_before_load = ProcCpuSeconds(ch_pid);
  const int64_t batch = 50000;
  for (int64_t begin = 0; begin < sessions; begin += batch) {
    std::vector<CommittedSession> part;
    for (int64_t i = begin; i < std::min(sessions, begin + batch); ++i) {
      const int64_t a = static_cast<int64_t>(mix.Next() % accounts);
      CommittedSession s;
      s.session_id = absl::StrCat("s", i);
      Mix pseudonym{static_cast<uint64_t>(a) * 0x2545f4914f6cdd1dULL};
      for (int w = 0; w < 4; ++w) {
        const uint64_t word = pseudonym.Next();
        s.account_pseudonym.append(reinterpret_cast<const char*>(&word), 8);
      }
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
    double c = SelfCpuSeconds();
    (*index)->OnCommitted(spec, part);
    embedded_load += absl::Now() - t;
    embedded_load_cpu += SelfCpuSeconds() - c;
    t = absl::Now();
    c = SelfCpuSeconds();
    absl::Status shipped = (*backend)->Ship(spec, part);
    clickhouse_load += absl::Now() - t;
    clickhouse_client_cpu += SelfCpuSeconds() - c;
    if (!shipped.ok()) {
      std::fprintf(stderr, "%s\n", shipped.ToString().c_str());
      return 1;
    }
  }
  const double clickhouse_load_cpu =
      ProcCpuSeconds(ch_pid) - ch_cpu_before_load;
  size_t index_bytes = 0;
  {
    auto view = (*index)->Read("sessions");
    index_bytes = (*view)->MemoryBytes();
  }
  std::string disk = "?";
  if (auto out = (*backend)->client().Execute(absl::StrCat(
          "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND "
          "database = 'cohortd' AND table = 'observations'"));
      out.ok()) {
    disk = std::string(absl::StripAsciiWhitespace(*out));
  }
  std::printf(
      "sessions %lld, accounts %lld, 5 rows per session in ClickHouse\n",
      static_cast<long long>(sessions), static_cast<long long>(accounts));
  std::printf("%-34s %18s %18s\n", "", "embedded index", "clickhouse");
  std::printf("%-34s %18.0f %18.0f\n", "ingest, sessions/s (wall)",
              sessions / absl::ToDoubleSeconds(embedded_load),
              sessions / absl::ToDoubleSeconds(clickhouse_load));
  std::printf("%-34s %18.2f %18.2f\n", "ingest CPU, us/session",
              embedded_load_cpu * 1e6 / sessions,
              (clickhouse_client_cpu + clickhouse_load_cpu) * 1e6 / sessions);
  std::printf("%-34s %18.1f %18s\n", "index heap, MB", index_bytes / 1e6, "-");
  std::printf("%-34s %18ld %18.0f\n", "RSS after load, MB (bench | server)",
              MaxRssMb(), ProcMemoryMb(ch_pid, "VmRSS"));
  std::printf("%-34s %18s %18.1f\n", "on disk, MB", "-",
              std::atof(disk.c_str()) / 1e6);
  if (runs == 0) return 0;  // load only

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
    std::vector<double> embedded_ms, clickhouse_ms, embedded_cpu_ms,
        clickhouse_cpu_ms;
    for (int i = 0; i < runs; ++i) {
      absl::Time t = absl::Now();
      double c = SelfCpuSeconds();
      {
        auto view = (*index)->Read("sessions");
        auto stats = ComputeBoundedStatistics(*plan, **view, key);
        auto out =
            ReleaseStatistics(*plan, *stats, *releaser, SecureRandomWords());
        if (!out.ok()) return 1;
      }
      embedded_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
      embedded_cpu_ms.push_back((SelfCpuSeconds() - c) * 1e3);
      t = absl::Now();
      c = SelfCpuSeconds() + ProcCpuSeconds(ch_pid);
      auto stats = (*backend)->Compute(*plan, key);
      if (!stats.ok()) {
        std::fprintf(stderr, "%s\n", stats.status().ToString().c_str());
        return 1;
      }
      auto out =
          ReleaseStatistics(*plan, *stats, *releaser, SecureRandomWords());
      if (!out.ok()) return 1;
      clickhouse_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
      clickhouse_cpu_ms.push_back(
          (SelfCpuSeconds() + ProcCpuSeconds(ch_pid) - c) * 1e3);
    }
    std::printf("%-34s %18.1f %18.1f\n", absl::StrCat(name, " p50 ms").c_str(),
                Median(embedded_ms), Median(clickhouse_ms));
    std::printf("%-34s %18.1f %18.1f\n",
                absl::StrCat(name, " p50 CPU ms").c_str(),
                Median(embedded_cpu_ms), Median(clickhouse_cpu_ms));
  }
  std::printf("%-34s %18ld %18.0f\n", "peak RSS, MB (bench | server)",
              MaxRssMb(), ProcMemoryMb(ch_pid, "VmHWM"));
  std::printf(
      "(%d runs; CPU of clickhouse: the server's plus this "
      "client's)\n",
      runs);
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
