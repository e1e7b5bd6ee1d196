// Query execution: one differentially private release over a consistent
// view of the columnar index.
//
// For each account the executor collects its sessions that pass the
// filters and carry every group-by label, groups them into cohorts, and
// keeps at most L0 cohorts and Linf sessions per cohort through the
// privacy core's ContributionBounder (keyed, deterministic). It
// accumulates exact bounded statistics per cohort, then releases each
// cohort through PartitionSelector (k pre-threshold + DP threshold) and
// each metric's noisy value and interval through server/privacy/. A
// metric read from sessions that carry its measure (SUM, MEAN, QUANTILES)
// or its label (RATE) also passes its contributor gate: the k + DP
// threshold on the number of accounts it is drawn from.
// Nothing un-noised leaves this module: the only outputs are released
// cohorts with noisy estimates.
#ifndef COHORTD_SERVER_ENGINE_EXECUTOR_H_
#define COHORTD_SERVER_ENGINE_EXECUTOR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cohortd/v1/cohortd.pb.h"
#include "server/backend/bounded_statistics.h"
#include "server/crypto/csprng.h"
#include "server/privacy/query_release.h"
#include "server/index/columnar_index.h"
#include "server/engine/query_plan.h"

namespace cohortd {

struct ExecutionResult {
  // Released cohorts, sorted by their key values. Each carries the
  // estimates of plan.canonical.metrics, in that order, except a metric
  // whose contributor gate failed in that cohort: it has no Estimate at
  // all (the API's "suppressed estimate"), so no number drawn from fewer
  // than k accounts, nor a placeholder, is returned.
  std::vector<cohortd::v1::Cohort> cohorts;
  // Cohorts that had at least one account before partition selection.
  // Internal diagnostics only: never returned to a client or logged.
  size_t candidate_cohorts = 0;
};

// The privacy core's releaser for `plan`: its budget split (Charge() for
// the ledger, Reported() for the API) and one mechanism per metric.
// Errors: InvalidArgument for parameters the core refuses.
absl::StatusOr<privacy::QueryReleaser> MakeReleaser(const QueryPlan& plan);

// Each metric's predicted interval half-width (privacy/query_release.h
// PredictedHalfWidth) for a cohort of `cohort_sessions` sessions if
// `plan` ran at `epsilon`: data-independent, from the releaser the plan
// would get (whatever its mechanisms and budget split). Not memoised.
// Errors: InvalidArgument when the core refuses the parameters or a
// metric has no data-independent half-width (QUANTILES).
absl::StatusOr<std::vector<double>> PredictHalfWidths(const QueryPlan& plan,
                                                      double epsilon,
                                                      int64_t cohort_sessions);

// Accuracy-first: the smallest epsilon (to 4 significant digits, rounded
// up) at which every metric's predicted half-width for a cohort of
// accuracy.cohort_sessions sessions is <= accuracy.half_width, found by a
// bracketing search on log(epsilon) (false position with bisection steps)
// over PredictHalfWidths, which does not increase with epsilon; at least
// max_epsilon / 10^6. Depends only on the plan and the config.
// Errors: FailedPrecondition naming the epsilon needed when it exceeds the
// dataset's max_epsilon (or that none up to 2^20 max_epsilon suffices);
// InvalidArgument for a QUANTILES metric.
absl::StatusOr<double> ChooseEpsilonForAccuracy(
    const QueryPlan& plan, const cohortd::v1::Accuracy& accuracy);

// The exact bounded statistics of `plan` over `view` (the embedded
// backend's half of a query, server/backend/query_backend.h): for each
// account, its sessions that pass the filters and carry every group-by
// label, at most L0 cohorts and Linf sessions per cohort kept by the
// ContributionBounder keyed with `bounding_key` (16 bytes). Un-noised:
// hand the result only to ReleaseStatistics. Errors: InvalidArgument for
// bounds or a key the bounder refuses; Internal for a plan that does not
// fit the view. Thread-compatible: reads `view` only.
absl::StatusOr<BoundedStatistics> ComputeBoundedStatistics(
    const QueryPlan& plan, const DatasetView& view,
    absl::string_view bounding_key);

// Releases `stats` (any backend's statistics of `plan`) through
// `releaser` (MakeReleaser of the same plan), cohort by cohort in key
// order: k + partition selection, gates, then each metric's noise from
// `rng`. Errors: Internal when the statistics do not fit the plan or
// randomness fails (nothing is released then).
absl::StatusOr<ExecutionResult> ReleaseStatistics(
    const QueryPlan& plan, const BoundedStatistics& stats,
    const privacy::QueryReleaser& releaser, RandomWords& rng);

// ComputeBoundedStatistics then ReleaseStatistics: runs `plan` over
// `view`, releasing through `releaser` (MakeReleaser of
// the same plan), which guards every cohort with k + partition selection.
// `bounding_key` (16 secret bytes) keys the contribution bounder; derive it
// from a server secret and plan.canonical_bytes so the same query on the
// same data bounds the same way. `rng` supplies every noise draw.
// Errors: InvalidArgument for privacy parameters the core refuses;
// Internal when randomness fails (nothing is released then).
// Thread-compatible: reads `view` only.
absl::StatusOr<ExecutionResult> ExecuteQuery(
    const QueryPlan& plan, const DatasetView& view,
    const privacy::QueryReleaser& releaser, absl::string_view bounding_key,
    RandomWords& rng);

}  // namespace cohortd

#endif  // COHORTD_SERVER_ENGINE_EXECUTOR_H_
