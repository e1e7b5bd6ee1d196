#include "tests/fault/outage_drill.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "server/backend/clickhouse_client.h"
#include "tests/backend/clickhouse_server.h"
#include "tests/common/exposition.h"
#include "tests/integration/server_process.h"

namespace cohortd::testing {
namespace {

constexpr int64_t kJan2026 = 1767225600;
constexpr int kAccounts = 4000;

const char* const kOccupations[] = {"legal", "management", "sales",
                                    "computer_mathematical"};

// utime + stime of `pid`, in seconds (/proc/PID/stat fields 14 and 15,
// after the parenthesised command name).
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::atof(field.c_str());
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

absl::Duration Percentile(std::vector<absl::Duration> v, double q) {
  if (v.empty()) return absl::ZeroDuration();
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  return v[i];
}

std::unique_ptr<grpc::ClientContext> Context(const std::string& token,
                                             absl::Duration deadline) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", "Bearer " + token);
  context->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  return context;
}

// What the pushers record, under one lock (a few hundred pushes a second).
struct Ledger {
  absl::Mutex mu;
  std::vector<std::string> acknowledged ABSL_GUARDED_BY(mu);
  std::vector<std::string> refused ABSL_GUARDED_BY(mu);
  int64_t pushed ABSL_GUARDED_BY(mu) = 0;
  int64_t acknowledged_in_outage ABSL_GUARDED_BY(mu) = 0;
  int64_t failed ABSL_GUARDED_BY(mu) = 0;
  std::string first_failure ABSL_GUARDED_BY(mu);
  std::vector<absl::Duration> outage_latency ABSL_GUARDED_BY(mu);
  std::vector<absl::Duration> normal_latency ABSL_GUARDED_BY(mu);
};

}  // namespace

const char* FaultName(OutageDrillOptions::Fault fault) {
  return fault == OutageDrillOptions::Fault::kPause ? "pause" : "kill";
}

absl::StatusOr<OutageDrillResult> RunOutageDrill(
    const OutageDrillOptions& options) {
  if (ClickHouseServerBinary().empty()) {
    return absl::UnavailableError("clickhouse-server is not installed");
  }
  auto ch_or = ClickHouseServer::Start();
  if (!ch_or.ok()) return ch_or.status();
  std::unique_ptr<ClickHouseServer> ch = std::move(*ch_or);
  const std::string dir = MakeTempDir();
  const std::string storage = absl::StrCat(
      "storage:\n  engine: clickhouse\n  clickhouse:\n    url: ", ch->url(),
      "\n    database: drill\n    max_outbox_bytes: ", options.max_outbox_bytes,
      "\n");
  ServerProcess server(dir, storage);
  server.DropPublications();
  if (absl::Status s = server.Start(); !s.ok()) return s;
  auto channel = server.Channel();
  auto ingest = cohortd::v1::Ingest::NewStub(channel);
  auto query = cohortd::v1::Query::NewStub(channel);
  auto admin = cohortd::v1::Admin::NewStub(channel);
  const std::string metrics_url = absl::StrCat(
      "http://127.0.0.1:", server.operator_metrics_port(), "/metrics");

  OutageDrillResult result;
  Ledger ledger;
  std::atomic<bool> stop_load{false};
  std::atomic<bool> away{false};
  // Nanoseconds since the epoch of ClickHouse's return; 0 before.
  std::atomic<int64_t> back_ns{0};

  // The outbox, as an operator sees it.
  std::atomic<bool> stop_monitor{false};
  std::atomic<int64_t> drain_ns{0};
  absl::Mutex monitor_mu;
  std::thread monitor([&] {
    while (!stop_monitor.load()) {
      const HttpResponse r = CurlGet(metrics_url);
      const double batches =
          ExpositionSample(r.body, "cohortd_clickhouse_outbox_batches");
      const double bytes =
          ExpositionSample(r.body, "cohortd_clickhouse_outbox_bytes");
      {
        absl::MutexLock lock(&monitor_mu);
        result.peak_outbox_batches = std::max<int64_t>(
            result.peak_outbox_batches, static_cast<int64_t>(batches));
        result.peak_outbox_bytes = std::max<int64_t>(
            result.peak_outbox_bytes, static_cast<int64_t>(bytes));
      }
      const int64_t back = back_ns.load();
      if (back != 0 && batches == 0 && drain_ns.load() == 0) {
        drain_ns.store(absl::GetCurrentTimeNanos() - back);
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  });

  // Pushers: each its own session ids, paced to its share of the load.
  std::vector<std::thread> pushers;
  for (int p = 0; p < options.pushers; ++p) {
    pushers.emplace_back([&, p] {
      const absl::Duration every =
          options.sessions_per_second > 0
              ? absl::Seconds(options.batch * options.pushers /
                              options.sessions_per_second)
              : absl::ZeroDuration();
      absl::Time next = absl::Now();
      int64_t serial = 0;
      while (!stop_load.load()) {
        cohortd::v1::PushRequest request;
        request.set_dataset("sessions");
        std::vector<std::string> ids;
        for (int i = 0; i < options.batch; ++i, ++serial) {
          const int64_t n = serial * options.pushers + p;
          const int account = static_cast<int>(n % kAccounts);
          auto* obs = request.add_observations();
          ids.push_back(absl::StrCat("drill-", p, "-", serial));
          obs->set_session_id(ids.back());
          obs->set_account_id(absl::StrCat("drill-account-", account));
          obs->mutable_session_start()->set_seconds(kJan2026 + n % 86400);
          obs->set_source("drill@1");
          (*obs->mutable_labels())["occupation"] = kOccupations[account % 4];
          (*obs->mutable_labels())["verified_success"] =
              n % 3 == 0 ? "true" : "false";
          (*obs->mutable_labels())["work_mode"] = "fix";
        }
        const bool in_outage = away.load();
        cohortd::v1::PushResponse response;
        auto context = Context(server.tokens().ingest, options.push_deadline);
        const absl::Time sent = absl::Now();
        const grpc::Status status =
            ingest->Push(context.get(), request, &response);
        const absl::Duration latency = absl::Now() - sent;
        {
          absl::MutexLock lock(&ledger.mu);
          ledger.pushed += options.batch;
          if (status.ok() && response.rejected_size() == 0) {
            for (std::string& id : ids) {
              ledger.acknowledged.push_back(std::move(id));
            }
            if (in_outage) ledger.acknowledged_in_outage += options.batch;
            (in_outage ? ledger.outage_latency : ledger.normal_latency)
                .push_back(latency);
          } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
            for (std::string& id : ids) ledger.refused.push_back(std::move(id));
          } else {
            ledger.failed += options.batch;
            if (ledger.first_failure.empty()) {
              ledger.first_failure =
                  status.ok()
                      ? absl::StrCat(response.rejected_size(), " rejected: ",
                                     response.rejected(0).reason())
                      : absl::StrCat(status.error_code(), " ",
                                     status.error_message());
            }
          }
        }
        next += every;
        const absl::Time now = absl::Now();
        if (next > now) {
          absl::SleepFor(next - now);
        } else {
          next = now;  // behind: no burst to catch up
        }
      }
    });
  }

  // Queries of a snapshot sealed in the outage, one a second, until one is
  // answered after ClickHouse's return (or the prober is told to stop).
  std::atomic<bool> stop_queries{false};
  std::atomic<bool> sealed{false};
  std::atomic<int> queries_unavailable{0};
  std::atomic<int> queries_other_error{0};
  std::atomic<int64_t> answered_ns{0};  // after the return; 0: not yet
  std::thread prober([&] {
    while (!sealed.load() && !stop_queries.load()) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    while (!stop_queries.load()) {
      cohortd::v1::AggregateRequest request;
      request.set_dataset("sessions");
      request.add_group_by("occupation");
      request.set_epsilon(1.0);
      request.add_metrics()->set_kind(cohortd::v1::Metric::SESSIONS);
      cohortd::v1::AggregateResponse response;
      auto context = Context(server.tokens().analyst, absl::Minutes(2));
      const grpc::Status s =
          query->Aggregate(context.get(), request, &response);
      const int64_t back = back_ns.load();
      if (s.ok()) {
        if (back != 0) {
          answered_ns.store(
              std::max<int64_t>(1, absl::GetCurrentTimeNanos() - back));
          return;
        }
      } else if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
        ++queries_unavailable;
      } else {
        ++queries_other_error;
      }
      absl::SleepFor(absl::Seconds(1));
    }
  });

  absl::SleepFor(options.before);
  if (options.fault == OutageDrillOptions::Fault::kPause) {
    ch->Pause();
  } else {
    ch->Kill();
  }
  away.store(true);
  // Pushes acknowledged by now are in the snapshot sealed here, some of
  // them possibly not yet in ClickHouse: its queries must wait.
  {
    cohortd::v1::SealSnapshotRequest request;
    request.set_dataset("sessions");
    cohortd::v1::SealSnapshotResponse response;
    auto context = Context(server.tokens().admin, absl::Seconds(30));
    admin->SealSnapshot(context.get(), request, &response);
    sealed.store(true);
  }
  absl::SleepFor(options.outage);
  absl::Status back = absl::OkStatus();
  if (options.fault == OutageDrillOptions::Fault::kPause) {
    ch->Resume();
  } else {
    back = ch->Restart();
  }
  away.store(false);
  back_ns.store(absl::GetCurrentTimeNanos());
  absl::SleepFor(options.after);
  stop_load.store(true);
  for (std::thread& t : pushers) t.join();
  // The backlog after the load: wait until the outbox is empty.
  const absl::Time drain_deadline = absl::Now() + options.drain_timeout;
  while (absl::Now() < drain_deadline && back.ok()) {
    const double batches = ExpositionSample(
        CurlGet(metrics_url).body, "cohortd_clickhouse_outbox_batches");
    if (batches == 0) {
      result.drained = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  if (drain_ns.load() == 0 && result.drained) {
    drain_ns.store(absl::GetCurrentTimeNanos() - back_ns.load());
  }
  stop_monitor.store(true);
  monitor.join();
  // Give the prober its answer if it is still waiting (bounded by its own
  // deadline), then stop it.
  if (result.drained) {
    const absl::Time until = absl::Now() + absl::Minutes(2);
    while (answered_ns.load() == 0 && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(200));
    }
  }
  stop_queries.store(true);
  prober.join();
  result.queries_unavailable = queries_unavailable.load();
  result.queries_other_error = queries_other_error.load();
  result.query_answered_after = answered_ns.load() != 0;
  result.query_back_after = absl::Nanoseconds(answered_ns.load());
  result.drain = absl::Nanoseconds(drain_ns.load());
  // pid() is -1 once stopped; read the CPU time first.
  result.cohortd_cpu_seconds = CpuSeconds(server.pid());
  if (!back.ok()) return back;

  // Read back every session ClickHouse holds.
  ClickHouseEndpoint endpoint;
  endpoint.url = ch->url();
  auto client = ClickHouseClient::Create(endpoint);
  if (!client.ok()) return client.status();
  auto tsv = (*client)->Execute(
      "SELECT DISTINCT session FROM drill.observations WHERE name = '' "
      "FORMAT TabSeparated");
  if (!tsv.ok()) return tsv.status();
  absl::flat_hash_set<std::string> stored;
  for (const auto& row : ParseTsv(*tsv)) {
    if (!row.empty()) stored.insert(row[0]);
  }
  result.in_clickhouse = static_cast<int64_t>(stored.size());
  absl::MutexLock lock(&ledger.mu);
  result.pushed = ledger.pushed;
  result.acknowledged = static_cast<int64_t>(ledger.acknowledged.size());
  result.acknowledged_in_outage = ledger.acknowledged_in_outage;
  result.refused = static_cast<int64_t>(ledger.refused.size());
  result.failed = ledger.failed;
  result.first_failure = ledger.first_failure;
  for (const std::string& id : ledger.acknowledged) {
    if (!stored.contains(id)) ++result.lost;
  }
  for (const std::string& id : ledger.refused) {
    if (stored.contains(id)) ++result.refused_stored;
  }
  result.outage_push_p50 = Percentile(ledger.outage_latency, 0.5);
  result.outage_push_p99 = Percentile(ledger.outage_latency, 0.99);
  result.outage_push_max = Percentile(ledger.outage_latency, 1.0);
  result.normal_push_p50 = Percentile(ledger.normal_latency, 0.5);
  result.normal_push_p99 = Percentile(ledger.normal_latency, 0.99);
  return result;
}

}  // namespace cohortd::testing
