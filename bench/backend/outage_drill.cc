// The ClickHouse outage drill of issue 10's "Done when", 30 s by default:
// cohortd on a real clickhouse-server (both started here on free loopback
// ports in temp dirs, as the tests do) under push load; ClickHouse paused
// (SIGSTOP: hung, connections open) or killed (SIGKILL, then restarted on
// its data) for --outage seconds; then the load goes on for --after
// seconds, the outbox drains, and every session id ClickHouse holds is
// read back and compared with what cohortd acknowledged. Prints one table
// row per scenario: pushed, acknowledged (and of them sent in the outage,
// i.e. queued in the outbox), refused (UNAVAILABLE: the outbox bound),
// lost (acknowledged, absent from ClickHouse: must be 0), refused but
// stored (must be 0), peak outbox, drain time, push latency in and out of
// the outage, queries answered UNAVAILABLE in the outage and when they
// were answered again, and cohortd's CPU time. Exit status 1 if anything
// acknowledged was lost or refused was stored.
//
//   outage_drill [--outage=30] [--before=5] [--after=10] [--rate=2000]
//                [--pushers=4] [--batch=100] [--bound=4194304]
//                [--only=pause|kill|pause-bounded|kill-bounded]
// Scenarios: pause and kill with no outbox bound, and both again with
// storage.clickhouse.max_outbox_bytes = --bound (small enough that the
// outage fills it). The short asserted version is
// tests/fault/clickhouse_outage_fault_test.
#include "tests/fault/outage_drill.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace {

using cohortd::testing::OutageDrillOptions;
using cohortd::testing::OutageDrillResult;

struct Scenario {
  std::string name;
  OutageDrillOptions::Fault fault;
  bool bounded;
};

std::string Ms(absl::Duration d) {
  return absl::StrFormat("%.0f", absl::ToDoubleMilliseconds(d));
}

}  // namespace

int main(int argc, char** argv) {
  OutageDrillOptions base;
  int64_t bound = 4 << 20;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    const std::string key = arg.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    double number = 0;
    const bool numeric = absl::SimpleAtod(value, &number);
    if (key == "--only") {
      only = value;
    } else if (numeric && key == "--outage") {
      base.outage = absl::Seconds(number);
    } else if (numeric && key == "--before") {
      base.before = absl::Seconds(number);
    } else if (numeric && key == "--after") {
      base.after = absl::Seconds(number);
    } else if (numeric && key == "--rate") {
      base.sessions_per_second = number;
    } else if (numeric && key == "--pushers" && number >= 1) {
      base.pushers = static_cast<int>(number);
    } else if (numeric && key == "--batch" && number >= 1) {
      base.batch = static_cast<int>(number);
    } else if (numeric && key == "--bound" && number >= 1) {
      bound = static_cast<int64_t>(number);
    } else {
      std::fprintf(stderr,
                   "usage: outage_drill [--outage=S] [--before=S] [--after=S] "
                   "[--rate=SESSIONS_PER_S] [--pushers=N] [--batch=N] "
                   "[--bound=BYTES] [--only=pause|kill|pause-bounded|"
                   "kill-bounded]\n");
      return 2;
    }
  }
  const std::vector<Scenario> scenarios = {
      {"pause", OutageDrillOptions::Fault::kPause, false},
      {"kill", OutageDrillOptions::Fault::kKill, false},
      {"pause-bounded", OutageDrillOptions::Fault::kPause, true},
      {"kill-bounded", OutageDrillOptions::Fault::kKill, true},
  };
  std::printf(
      "outage %.0f s, load %.0f sessions/s (%d pushers x %d sessions per "
      "push), %.0f s before, %.0f s after; bound for *-bounded: %lld bytes\n",
      absl::ToDoubleSeconds(base.outage), base.sessions_per_second,
      base.pushers, base.batch, absl::ToDoubleSeconds(base.before),
      absl::ToDoubleSeconds(base.after), static_cast<long long>(bound));
  // Before any fork (the servers'), or the child re-flushes it.
  std::fflush(stdout);
  std::vector<std::string> rows;
  bool bad = false;
  for (const Scenario& s : scenarios) {
    if (!only.empty() && only != s.name) continue;
    OutageDrillOptions options = base;
    options.fault = s.fault;
    options.max_outbox_bytes = s.bounded ? bound : 0;
    std::fprintf(stderr, "outage_drill: %s ...\n", s.name.c_str());
    absl::StatusOr<OutageDrillResult> r =
        cohortd::testing::RunOutageDrill(options);
    if (!r.ok()) {
      std::fprintf(stderr, "outage_drill: %s: %s\n", s.name.c_str(),
                   r.status().ToString().c_str());
      return 1;
    }
    if (r->lost != 0 || r->refused_stored != 0 || r->failed != 0) bad = true;
    rows.push_back(absl::StrFormat(
        "%-13s %8d %8d %8d %7d %5d %5d %6d %6d/%-9d %7s %12s %16s %5d/%-7s "
        "%6.1f",
        s.name, r->pushed, r->acknowledged, r->acknowledged_in_outage,
        r->refused, r->failed, r->lost, r->refused_stored,
        r->peak_outbox_batches, r->peak_outbox_bytes,
        r->drained ? absl::StrFormat("%.1f", absl::ToDoubleSeconds(r->drain))
                   : std::string("never"),
        absl::StrCat(Ms(r->normal_push_p50), "/", Ms(r->normal_push_p99)),
        absl::StrCat(Ms(r->outage_push_p50), "/", Ms(r->outage_push_p99), "/",
                     Ms(r->outage_push_max)),
        r->queries_unavailable,
        r->query_answered_after
            ? absl::StrFormat("%.1fs",
                              absl::ToDoubleSeconds(r->query_back_after))
            : std::string("never"),
        r->cohortd_cpu_seconds));
    if (!r->first_failure.empty()) {
      rows.back() += "  first failure: " + r->first_failure;
    }
  }
  std::printf("%-13s %8s %8s %8s %7s %5s %5s %6s %16s %7s %12s %16s %13s %6s\n",
              "scenario", "pushed", "acked", "queued", "refused", "fail",
              "lost", "r.stor", "peak outbox b/B", "drain s", "push ms p50/99",
              "outage p50/99/max", "q unavail/ok", "cpu s");
  for (const std::string& row : rows) std::printf("%s\n", row.c_str());
  std::printf(
      "acked: sessions acknowledged; queued: of them, pushed while "
      "ClickHouse was away (held in the synced outbox); refused: "
      "UNAVAILABLE (outbox full); lost: acknowledged but absent from "
      "ClickHouse afterwards; r.stor: refused but found in ClickHouse; "
      "drain: ClickHouse back -> outbox empty; q unavail/ok: queries of the "
      "snapshot sealed in the outage answered UNAVAILABLE / first answer "
      "after the return.\n");
  return bad ? 1 : 0;
}
