// QueryBackend: where a query's account-level work runs. Between the
// planner and the privacy core: given a canonical plan and the bounding
// key, a backend assembles sessions, applies the filters, bounds each
// account's contribution (L0 cohorts, Linf sessions per cohort, chosen by
// the keyed hash of privacy/contribution_bounding.h), clamps measures to
// fixed point and returns per candidate cohort the exact statistics the
// releaser consumes (bounded_statistics.h). Noise, partition selection,
// the ledger, the cache and the audit chain stay in cohortd, downstream
// (server/engine/executor.h ReleaseStatistics).
//
// Implementations: EmbeddedBackend (the in-memory columnar index, the
// default) and ClickHouseBackend (clickhouse_backend.h). For the same data
// and key both return identical statistics (clickhouse_equivalence_test).
#ifndef COHORTD_SERVER_BACKEND_QUERY_BACKEND_H_
#define COHORTD_SERVER_BACKEND_QUERY_BACKEND_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/backend/bounded_statistics.h"
#include "server/engine/query_plan.h"
#include "server/index/columnar_index.h"

namespace cohortd {

class QueryBackend {
 public:
  virtual ~QueryBackend() = default;

  // The exact bounded statistics of `plan` (from PlanQuery) with the
  // bounder keyed by `bounding_key` (16 secret bytes), cohorts sorted by
  // key. The result is un-noised: pass it only to ReleaseStatistics.
  // Errors: InvalidArgument for a key or bounds the bounder refuses;
  // Unavailable when the backend's store cannot be reached;
  // FailedPrecondition for a request feature the backend cannot compute
  // exactly as the embedded index does (never answered differently);
  // Internal for a plan that does not fit the stored schema. Thread-safe
  // unless an
  // implementation says otherwise.
  virtual absl::StatusOr<BoundedStatistics> Compute(
      const QueryPlan& plan, absl::string_view bounding_key) const = 0;
  // Compute as of snapshot `snapshot_id` of the plan's dataset (the one
  // the query is labelled with). Default: Compute, for a backend that is
  // built over that snapshot's view (EmbeddedBackend). Errors: as
  // Compute; Unavailable while the snapshot cannot be read yet.
  virtual absl::StatusOr<BoundedStatistics> ComputeSealed(
      const QueryPlan& plan, absl::string_view bounding_key,
      absl::string_view snapshot_id) const {
    return Compute(plan, bounding_key);
  }
};

// The embedded backend: scans one consistent view of the columnar index
// (executor.h ComputeBoundedStatistics). Borrows `view`, which must
// outlive it; use it for the one query the view was opened for.
class EmbeddedBackend : public QueryBackend {
 public:
  explicit EmbeddedBackend(const DatasetView* view) : view_(view) {}

  absl::StatusOr<BoundedStatistics> Compute(
      const QueryPlan& plan, absl::string_view bounding_key) const override;

 private:
  const DatasetView* const view_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_BACKEND_QUERY_BACKEND_H_
