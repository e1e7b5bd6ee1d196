// The ClickHouse outage drill (issue 10, "Done when"): the real cohortd
// binary on a real clickhouse-server (both on free loopback ports in temp
// dirs), pushers that record every session cohortd acknowledged, and
// ClickHouse taken away for a while under that load: paused (SIGSTOP, a
// hung server or a partition: connections open, nothing answers) or
// killed (SIGKILL, connections refused) and restarted on the same data.
// Afterwards it waits for the outbox to drain and reads back from
// ClickHouse every session id it holds: an acknowledged session missing
// there is lost, and that must never happen; a refused one found there
// was stored although refused.
//
// Used by bench/backend/outage_drill (the 30 s drill, printed as a table)
// and tests/fault/clickhouse_outage_fault_test (a few seconds, asserted).
#ifndef COHORTD_TESTS_FAULT_OUTAGE_DRILL_H_
#define COHORTD_TESTS_FAULT_OUTAGE_DRILL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cohortd::testing {

struct OutageDrillOptions {
  enum class Fault { kPause, kKill };
  Fault fault = Fault::kPause;
  // Load before the outage, the outage, load after ClickHouse is back.
  absl::Duration before = absl::Seconds(5);
  absl::Duration outage = absl::Seconds(30);
  absl::Duration after = absl::Seconds(10);
  // Concurrent pushers (unary Push), sessions per push (one observation
  // each), and the offered load in sessions/s over all pushers (0: as
  // fast as cohortd answers).
  int pushers = 4;
  int batch = 100;
  double sessions_per_second = 2000;
  // storage.clickhouse.max_outbox_bytes; 0 = no bound.
  int64_t max_outbox_bytes = 0;
  // How long to wait, after the load stops, for the outbox to empty.
  absl::Duration drain_timeout = absl::Minutes(5);
  // Per-push deadline: longer than any outage, so a push that waits is
  // measured as waiting rather than as failed.
  absl::Duration push_deadline = absl::Minutes(2);
};

struct OutageDrillResult {
  // Sessions, summed over every push.
  int64_t pushed = 0;
  int64_t acknowledged = 0;
  // Acknowledged by a push sent while ClickHouse was away: queued in the
  // outbox (synced in data_dir) rather than in ClickHouse.
  int64_t acknowledged_in_outage = 0;
  // Refused with UNAVAILABLE (the bounded outbox was full).
  int64_t refused = 0;
  // Any other failure (deadline, another code): counted, never expected.
  int64_t failed = 0;
  std::string first_failure;
  // Acknowledged but absent from ClickHouse after the drain: must be 0.
  int64_t lost = 0;
  // Refused but present in ClickHouse: must be 0 (a refusal stores nothing).
  int64_t refused_stored = 0;
  // Sessions ClickHouse holds after the drain.
  int64_t in_clickhouse = 0;
  // The operator endpoint's cohortd_clickhouse_outbox_{batches,bytes},
  // largest seen (polled every 200 ms).
  int64_t peak_outbox_batches = 0;
  int64_t peak_outbox_bytes = 0;
  // From ClickHouse's return until the outbox was first seen empty.
  absl::Duration drain = absl::ZeroDuration();
  bool drained = false;
  // Latency of acknowledged pushes sent during the outage / outside it.
  absl::Duration outage_push_p50, outage_push_p99, outage_push_max;
  absl::Duration normal_push_p50, normal_push_p99;
  // Queries of a snapshot sealed during the outage (one a second): answered
  // UNAVAILABLE while away / answered after the return, and the time from
  // the return to the first answer.
  int queries_unavailable = 0;
  int queries_other_error = 0;
  bool query_answered_after = false;
  absl::Duration query_back_after = absl::ZeroDuration();
  // CPU seconds cohortd used over the whole drill (/proc/PID/stat).
  double cohortd_cpu_seconds = 0;
};

// Runs one drill. Errors: Unavailable when clickhouse-server is not
// installed or a server does not start; Internal when ClickHouse cannot
// be read back. A lost session is a result (lost > 0), not an error.
absl::StatusOr<OutageDrillResult> RunOutageDrill(
    const OutageDrillOptions& options);

// "pause" / "kill".
const char* FaultName(OutageDrillOptions::Fault fault);

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_FAULT_OUTAGE_DRILL_H_
