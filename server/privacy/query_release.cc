#include "server/privacy/query_release.h"

#include <utility>

#include "absl/status/status.h"

namespace cohortd::privacy {

template <typename T>
absl::Status QueryReleaser::Append(absl::StatusOr<T> mechanism,
                                   std::vector<Mechanism>* out) {
  if (!mechanism.ok()) return mechanism.status();
  out->emplace_back(std::move(*mechanism));
  return absl::OkStatus();
}

absl::StatusOr<QueryReleaser> QueryReleaser::Create(
    const QueryPrivacyParams& params, std::vector<MetricRequest> metrics) {
  absl::Status status = ValidateBounds(params.bounds);
  if (!status.ok()) return status;
  int noisy = 0;
  for (const MetricRequest& m : metrics)
    noisy += m.kind != MetricKind::kAccounts;
  absl::StatusOr<QueryBudget> budget =
      PlanQueryBudget(params.epsilon, params.delta, noisy);
  if (!budget.ok()) return budget.status();
  absl::StatusOr<PartitionSelector> selector = PartitionSelector::Create(
      params.k, params.bounds.max_cohorts_per_account,
      budget->rho_partition_selection, budget->delta_partition_selection,
      params.confidence);
  if (!selector.ok()) return selector.status();

  std::vector<Mechanism> mechanisms;
  const double rho = budget->rho_per_metric;
  const double conf = params.confidence;
  for (MetricRequest& m : metrics) {
    switch (m.kind) {
      case MetricKind::kAccounts:
        mechanisms.emplace_back(std::monostate{});
        break;
      case MetricKind::kSessions:
        status = Append(SessionCountMetric::Create(params.bounds, rho, conf),
                        &mechanisms);
        break;
      case MetricKind::kSum:
        status = Append(SumMetric::Create(params.bounds, m.domain, rho, conf),
                        &mechanisms);
        break;
      case MetricKind::kMean:
        status = Append(MeanMetric::Create(params.bounds, m.domain, rho, conf),
                        &mechanisms);
        break;
      case MetricKind::kRate:
        status =
            Append(RateMetric::Create(params.bounds, rho, conf), &mechanisms);
        break;
      case MetricKind::kQuantiles:
        status = Append(QuantileTree::Create(params.bounds, m.domain,
                                             std::move(m.quantiles), rho, conf),
                        &mechanisms);
        break;
    }
    if (!status.ok()) return status;
  }
  return QueryReleaser(*budget, *selector, std::move(mechanisms));
}

absl::StatusOr<CohortRelease> QueryReleaser::ReleaseCohort(
    int64_t distinct_accounts, absl::Span<const MetricInput> inputs,
    RandomWords& rng) const {
  if (inputs.size() != mechanisms_.size()) {
    return absl::InvalidArgumentError(
        "ReleaseCohort: one input per metric is required");
  }
  CohortRelease release;
  absl::StatusOr<PartitionSelector::Decision> decision =
      selector_.Decide(distinct_accounts, rng);
  if (!decision.ok()) return decision.status();
  if (!decision->released) return release;
  release.metrics.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const MetricInput& in = inputs[i];
    MetricOutput& out = release.metrics[i];
    absl::StatusOr<Estimate> estimate = decision->accounts;
    if (const auto* m = std::get_if<SessionCountMetric>(&mechanisms_[i])) {
      estimate = m->Release(in.sessions, rng);
    } else if (const auto* m = std::get_if<SumMetric>(&mechanisms_[i])) {
      estimate = m->Release(in.sum_fp, rng);
    } else if (const auto* m = std::get_if<MeanMetric>(&mechanisms_[i])) {
      estimate = m->Release(in.sum_fp, in.sessions, rng);
    } else if (const auto* m = std::get_if<RateMetric>(&mechanisms_[i])) {
      estimate = m->Release(in.matching, in.sessions, rng);
    } else if (const auto* m = std::get_if<QuantileTree>(&mechanisms_[i])) {
      absl::StatusOr<std::vector<QuantileEstimate>> q =
          m->Release(in.values_fp, rng);
      if (!q.ok()) return q.status();
      out.quantiles = std::move(*q);
      continue;
    }
    if (!estimate.ok()) return estimate.status();
    out.estimate = *estimate;
  }
  release.released = true;
  return release;
}

}  // namespace cohortd::privacy
