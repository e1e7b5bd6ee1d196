// QueryEngine: the query path's core, without gRPC types, so that the
// gRPC service and the publisher (dashboards) release through exactly the
// same steps:
//   plan (validate, canonicalise) -> release cache on the current sealed
//   snapshot (a hit is audited) -> budget pre-check -> execute over a view
//   of that snapshot -> charge, cache and audit in one synced write ->
//   answer.
// Nothing leaves before the charge is durable (invariant 4). Queries read
// sealed snapshots only (snapshot.h), so whether an answer is cached
// depends on the request, the config and the seal schedule, never on a
// record.
#ifndef COHORTD_SERVER_ENGINE_QUERY_ENGINE_H_
#define COHORTD_SERVER_ENGINE_QUERY_ENGINE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cohortd/v1/cohortd.pb.h"
#include "server/backend/query_backend.h"
#include "server/config/config.h"
#include "server/crypto/pseudonymizer.h"
#include "server/index/snapshot.h"
#include "server/ledger/release_journal.h"
#include "server/metrics/metrics.h"

namespace cohortd {

// Thread-safe; all pointers are borrowed and must outlive it.
class QueryEngine {
 public:
  // `bounding_hmac` keys contribution bounding (a key of its own, derived
  // from the server secret). `snapshots` is what queries read.
  QueryEngine(const Config* config, SnapshotIndex* snapshots,
              ReleaseJournal* journal,
              std::unique_ptr<HmacSha256> bounding_hmac,
              MetricsRegistry* metrics);

  // Computes the bounded statistics with `backend` (borrowed; must
  // outlive the engine) instead of the snapshot's columnar index, e.g.
  // ClickHouse (server/backend/). Call before the first Aggregate; null
  // (the default) = the embedded index.
  void UseBackend(const QueryBackend* backend) { backend_ = backend; }

  // One release for `principal`, computed on the latest sealed snapshot
  // (response.data_as_of = its seal time), or the stored release of the
  // identical request on that snapshot (from_cache, free, audited).
  // Errors: InvalidArgument (request), ResourceExhausted (budget),
  // FailedPrecondition (an accuracy-first request needing more epsilon
  // than max_epsilon or the remaining budget; names the epsilon),
  // Unavailable (storage), Internal.
  absl::StatusOr<cohortd::v1::AggregateResponse> Aggregate(
      const std::string& principal,
      const cohortd::v1::AggregateRequest& request);

 private:
  void CountCacheHit(const std::string& dataset);

  const Config* const config_;
  SnapshotIndex* const snapshots_;
  ReleaseJournal* const journal_;
  const std::unique_ptr<HmacSha256> bounding_hmac_;
  MetricsRegistry* const metrics_;
  const QueryBackend* backend_ = nullptr;
};

// The public description of `dataset` (schema and privacy parameters, all
// from the config). Errors: InvalidArgument for an unknown dataset.
absl::StatusOr<cohortd::v1::DatasetDescription> DescribeDataset(
    const Config& config, const std::string& dataset);

}  // namespace cohortd

#endif  // COHORTD_SERVER_ENGINE_QUERY_ENGINE_H_
