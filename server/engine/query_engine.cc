#include "server/engine/query_engine.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/crypto/csprng.h"
#include "server/engine/executor.h"
#include "server/engine/query_plan.h"

namespace cohortd {

QueryEngine::QueryEngine(const Config* config, SnapshotIndex* snapshots,
                         ReleaseJournal* journal,
                         std::unique_ptr<HmacSha256> bounding_hmac,
                         MetricsRegistry* metrics)
    : config_(config),
      snapshots_(snapshots),
      journal_(journal),
      bounding_hmac_(std::move(bounding_hmac)),
      metrics_(metrics) {}

void QueryEngine::CountCacheHit(const std::string& dataset) {
  metrics_
      ->GetCounter("cohortd_query_cache_hits_total",
                   "Aggregate calls answered from the release cache.",
                   {{"dataset", dataset}})
      ->Increment();
}

absl::StatusOr<cohortd::v1::AggregateResponse> QueryEngine::Aggregate(
    const std::string& principal,
    const cohortd::v1::AggregateRequest& request) {
  ASSIGN_OR_RETURN(QueryPlan plan, PlanQuery(*config_, request, principal));
  const std::string& dataset = plan.dataset->name;
  const MetricLabels labels = {{"dataset", dataset}};

  // The cache is looked up on the current snapshot without holding a view,
  // so a hit never waits for a seal.
  ASSIGN_OR_RETURN(const Snapshot current, snapshots_->Current(dataset));
  ASSIGN_OR_RETURN(
      std::optional<cohortd::v1::AggregateResponse> cached,
      journal_->ServeCached(principal, dataset, plan.canonical_bytes,
                            plan.canonical_json, current.id));
  if (cached.has_value()) {
    CountCacheHit(dataset);
    return *std::move(cached);
  }
  // A seal may have come in between: the release is then computed on, and
  // labelled with, the newer snapshot the view shows (CommitRelease still
  // finds a release of it committed meanwhile).
  ASSIGN_OR_RETURN(SnapshotRead read, snapshots_->Read(dataset));
  std::unique_ptr<DatasetView> view = std::move(read.view);
  const Snapshot snapshot = std::move(read.snapshot);

  ASSIGN_OR_RETURN(privacy::QueryReleaser releaser, MakeReleaser(plan));
  const privacy::PrivacyCharge charge = releaser.budget().Charge();
  const privacy::ReportedCost cost = releaser.budget().Reported();
  absl::Status affordable =
      journal_->CheckAffordable(principal, dataset, charge, cost);
  if (plan.accuracy_first && absl::IsResourceExhausted(affordable)) {
    // API.md: an accuracy the remaining budget cannot pay for is a
    // precondition the analyst must change, naming the epsilon needed.
    return absl::FailedPreconditionError(absl::StrCat(
        "accuracy: needs epsilon ", plan.epsilon,
        ", more than the remaining budget: ", affordable.message()));
  }
  RETURN_IF_ERROR(affordable);

  // The bounding key depends on the canonical request only, so the same
  // question bounds the same way whenever it is recomputed.
  const Digest256 key = bounding_hmac_->Mac(plan.canonical_bytes);
  const absl::Time start = absl::Now();
  const absl::string_view key16(reinterpret_cast<const char*>(key.data()), 16);
  ExecutionResult result;
  if (backend_ != nullptr) {
    // Another backend holds the sessions (issue 10): it returns the exact
    // bounded statistics, released here as the embedded ones would be.
    view.reset();
    ASSIGN_OR_RETURN(BoundedStatistics stats,
                     backend_->ComputeSealed(plan, key16, snapshot.id));
    ASSIGN_OR_RETURN(
        result, ReleaseStatistics(plan, stats, releaser, SecureRandomWords()));
  } else {
    ASSIGN_OR_RETURN(result, ExecuteQuery(plan, *view, releaser, key16,
                                          SecureRandomWords()));
  }
  view.reset();  // let ingest proceed while the release is written
  metrics_
      ->GetHistogram("cohortd_query_execute_seconds",
                     "Time to scan the index and draw the noise of one "
                     "release.",
                     labels, LatencyBucketsSeconds())
      ->Observe(absl::ToDoubleSeconds(absl::Now() - start));

  cohortd::v1::AggregateResponse response;
  for (auto& cohort : result.cohorts) {
    *response.add_cohorts() = std::move(cohort);
  }
  RETURN_IF_ERROR(journal_->CommitRelease(
      principal, dataset, plan.canonical_bytes, plan.canonical_json,
      snapshot.id, snapshot.sealed_at, charge, cost, &response));
  if (response.from_cache()) {
    // An identical request committed first while this one computed: the
    // journal answered with that release, uncharged, and this noise is
    // discarded unseen.
    CountCacheHit(dataset);
    return response;
  }
  metrics_
      ->GetCounter("cohortd_query_releases_total",
                   "Releases computed and charged.", labels)
      ->Increment();
  LogInfo("query", "release %s for '%s' on %s: %d cohort(s), epsilon %.4g",
          response.release_id(), principal, dataset, response.cohorts_size(),
          response.cost().epsilon());
  return response;
}

absl::StatusOr<cohortd::v1::DatasetDescription> DescribeDataset(
    const Config& config, const std::string& name) {
  const DatasetSpec* ds = config.FindDataset(name);
  if (ds == nullptr) {
    std::vector<std::string> names;
    for (const auto& d : config.datasets) names.push_back(d.name);
    return absl::InvalidArgumentError(
        absl::StrCat("dataset: unknown dataset '", name,
                     "'; datasets: ", absl::StrJoin(names, ", ")));
  }
  cohortd::v1::DatasetDescription out;
  out.set_name(ds->name);
  out.set_description(ds->description);
  for (const DimensionSpec& d : ds->dimensions) {
    auto* dim = out.add_dimensions();
    dim->set_name(d.name);
    for (const auto& v : d.values) dim->add_values(v);
    dim->set_open_domain(d.open_domain);
    dim->set_max_length(d.max_length);
    dim->set_derived(d.derived);
  }
  for (const MeasureSpec& m : ds->measures) {
    auto* measure = out.add_measures();
    measure->set_name(m.name);
    measure->set_lower(m.lower);
    measure->set_upper(m.upper);
    measure->set_granularity(m.granularity);
  }
  auto* p = out.mutable_privacy();
  p->set_k(ds->privacy.k);
  p->set_default_epsilon(ds->privacy.default_epsilon);
  p->set_max_epsilon(ds->privacy.max_epsilon);
  p->set_delta(ds->privacy.delta);
  p->set_max_cohorts_per_account(ds->privacy.max_cohorts_per_account);
  p->set_max_sessions_per_cohort(ds->privacy.max_sessions_per_cohort);
  return out;
}

}  // namespace cohortd
