#include "server/privacy/query_release.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <type_traits>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace cohortd::privacy {

template <typename T>
absl::Status QueryReleaser::Append(absl::StatusOr<T> mechanism,
                                   std::vector<Mechanism>* out) {
  if (!mechanism.ok()) return mechanism.status();
  out->emplace_back(std::move(*mechanism));
  return absl::OkStatus();
}

absl::StatusOr<QueryReleaser> QueryReleaser::Create(
    const QueryPrivacyParams& params, std::vector<MetricRequest> metrics,
    int gates) {
  absl::Status status = ValidateBounds(params.bounds);
  if (!status.ok()) return status;
  if (gates < 0) return absl::InvalidArgumentError("gates must be >= 0");
  int noisy = 0;
  std::vector<int> metric_gate;
  std::vector<bool> gate_used(gates, false);
  for (size_t i = 0; i < metrics.size(); ++i) {
    const MetricRequest& m = metrics[i];
    noisy += m.kind != MetricKind::kAccounts;
    if (m.adjusted &&
        ((m.kind != MetricKind::kRate && m.kind != MetricKind::kMean) ||
         m.sampling_interval)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "metric %d: only RATE and MEAN with noise intervals can be "
          "adjusted",
          i));
    }
    if (m.sampling_interval) {
      if (m.kind == MetricKind::kAccounts || m.kind == MetricKind::kQuantiles) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "metric %d: sampling intervals cover SESSIONS, SUM, MEAN, RATE "
            "and GEOMETRIC_MEAN only",
            i));
      }
      ++noisy;  // its private variance estimate
    }
    const bool needs_gate = m.kind == MetricKind::kSum ||
                            m.kind == MetricKind::kMean ||
                            m.kind == MetricKind::kQuantiles ||
                            m.kind == MetricKind::kGeometricMean;
    const bool may_gate = needs_gate || m.kind == MetricKind::kRate;
    if (m.gate == MetricRequest::kNoGate
            ? needs_gate
            : !may_gate || m.gate < 0 || m.gate >= gates) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "metric %d: SUM, MEAN and QUANTILES need a contributor gate, RATE "
          "may have one, others none; gate %d of %d",
          i, m.gate, gates));
    }
    if (m.gate >= 0) gate_used[m.gate] = true;
    metric_gate.push_back(m.gate);
  }
  for (int g = 0; g < gates; ++g) {
    if (!gate_used[g]) {
      // An unused gate would be charged for nothing.
      return absl::InvalidArgumentError(
          absl::StrFormat("contributor gate %d is named by no metric", g));
    }
  }
  absl::StatusOr<QueryBudget> budget =
      PlanQueryBudget(params.epsilon, params.delta, noisy, gates);
  if (!budget.ok()) return budget.status();
  absl::StatusOr<PartitionSelector> selector = PartitionSelector::Create(
      params.k, params.bounds.max_cohorts_per_account,
      budget->rho_partition_selection, budget->delta_partition_selection,
      params.confidence);
  if (!selector.ok()) return selector.status();
  std::vector<PartitionSelector> gate_selectors;
  for (int g = 0; g < gates; ++g) {
    // Same construction as the cohort's selection, on the metric's own
    // contributing-account count (sensitivity 1 in each of <= L0 cohorts).
    absl::StatusOr<PartitionSelector> gate = PartitionSelector::Create(
        params.k, params.bounds.max_cohorts_per_account, budget->rho_per_gate,
        budget->delta_per_gate, params.confidence);
    if (!gate.ok()) return gate.status();
    gate_selectors.push_back(*gate);
  }

  std::vector<Mechanism> mechanisms;
  const double rho = budget->rho_per_metric;
  const double conf = params.confidence;
  std::vector<SamplingSpec> sampling(metrics.size());
  for (size_t i = 0; i < metrics.size(); ++i) {
    const MetricRequest& m = metrics[i];
    if (!m.sampling_interval) continue;
    SamplingSpec& spec = sampling[i];
    SamplingTarget target = SamplingTarget::kTotal;
    double bound = 1;  // kSessions, kRate: one session, one match
    spec.lo = 0;
    spec.hi = HUGE_VAL;
    switch (m.kind) {
      case MetricKind::kSum:
        bound = static_cast<double>(
            std::max(std::abs(m.domain.lower_fp), std::abs(m.domain.upper_fp)));
        spec.scale = m.domain.granularity;
        spec.lo = -HUGE_VAL;
        break;
      case MetricKind::kMean:
        target = SamplingTarget::kRatio;
        bound = static_cast<double>(m.domain.upper_fp - m.domain.lower_fp);
        spec.scale = m.domain.granularity;
        spec.lo = m.domain.ToValue(static_cast<double>(m.domain.lower_fp));
        spec.hi = m.domain.ToValue(static_cast<double>(m.domain.upper_fp));
        break;
      case MetricKind::kRate:
        target = SamplingTarget::kRatio;
        spec.hi = 1;
        break;
      case MetricKind::kGeometricMean: {
        // The mean of ln values (account totals are sums of LogFixedPoint).
        absl::StatusOr<GeometricMeanMetric> g =
            GeometricMeanMetric::Create(params.bounds, m.domain, rho, conf);
        if (!g.ok()) return g.status();
        const MeasureDomain& log_domain = g->log_domain();
        target = SamplingTarget::kRatio;
        bound = static_cast<double>(log_domain.upper_fp - log_domain.lower_fp);
        spec.scale = log_domain.granularity;
        spec.lo = log_domain.ToValue(static_cast<double>(log_domain.lower_fp));
        spec.hi = log_domain.ToValue(static_cast<double>(log_domain.upper_fp));
        spec.log = true;
        break;
      }
      default:
        break;
    }
    absl::StatusOr<ClusteredSamplingVariance> variance =
        ClusteredSamplingVariance::Create(params.bounds, target, bound,
                                          params.k, rho, conf);
    if (!variance.ok()) return variance.status();
    spec.variance = *variance;
  }
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
      case MetricKind::kGeometricMean:
        status = Append(
            GeometricMeanMetric::Create(params.bounds, m.domain, rho, conf),
            &mechanisms);
        break;
      case MetricKind::kQuantiles:
        status = Append(QuantileTree::Create(params.bounds, m.domain,
                                             std::move(m.quantiles), rho, conf),
                        &mechanisms);
        break;
    }
    if (!status.ok()) return status;
  }
  QueryReleaser releaser(*budget, *selector, std::move(gate_selectors),
                         std::move(mechanisms), std::move(metric_gate),
                         std::move(sampling));
  releaser.confidence_ = conf;
  for (const MetricRequest& m : metrics)
    releaser.adjusted_.push_back(m.adjusted);
  return releaser;
}

absl::StatusOr<Estimate> QueryReleaser::AddSampling(size_t i,
                                                    const MetricInput& in,
                                                    const Estimate& estimate,
                                                    RandomWords& rng) const {
  const SamplingSpec& spec = sampling_[i];
  // GEOMETRIC_MEAN: back to the mean of ln values (value and bounds are
  // exp of the log mean's, all positive).
  const Estimate base =
      spec.log ? Estimate{std::log(estimate.value), std::log(estimate.ci_low),
                          std::log(estimate.ci_high)}
               : estimate;
  // The released ratio in y-per-session units (fixed point for a mean).
  const double ratio = base.value / spec.scale;
  absl::StatusOr<double> se =
      spec.variance->ReleaseStandardError(in.account_totals, ratio, rng);
  if (!se.ok()) return se.status();
  const Estimate combined = CombineNoiseAndSampling(
      base, *se * spec.scale, confidence_, spec.lo, spec.hi);
  if (!spec.log) return combined;
  return Estimate{estimate.value, std::exp(combined.ci_low),
                  std::exp(combined.ci_high)};
}

absl::StatusOr<CohortRelease> QueryReleaser::ReleaseCohort(
    int64_t distinct_accounts, absl::Span<const int64_t> gate_accounts,
    absl::Span<const MetricInput> inputs, RandomWords& rng) const {
  if (inputs.size() != mechanisms_.size() ||
      gate_accounts.size() != gates_.size()) {
    return absl::InvalidArgumentError(
        "ReleaseCohort: one input per metric and one count per gate are "
        "required");
  }
  for (int64_t n : gate_accounts) {
    if (n < 0 || n > distinct_accounts) {
      return absl::InvalidArgumentError(
          "ReleaseCohort: a gate's accounts are a subset of the cohort's");
    }
  }
  CohortRelease release;
  absl::StatusOr<PartitionSelector::Decision> decision =
      selector_.Decide(distinct_accounts, rng);
  if (!decision.ok()) return decision.status();
  if (!decision->released) return release;
  // Every gate decides (and draws its noise, also below k) before any
  // metric, whatever the outcome, so that the work per released cohort
  // does not depend on how many gates fail by the exact k test.
  absl::InlinedVector<bool, 8> passed(gates_.size(), false);
  for (size_t g = 0; g < gates_.size(); ++g) {
    absl::StatusOr<PartitionSelector::Decision> gate =
        gates_[g].Decide(gate_accounts[g], rng);
    if (!gate.ok()) return gate.status();
    passed[g] = gate->released;
  }
  release.metrics.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const MetricInput& in = inputs[i];
    MetricOutput& out = release.metrics[i];
    if (metric_gate_[i] != MetricRequest::kNoGate && !passed[metric_gate_[i]]) {
      out.suppressed = true;
      continue;
    }
    if (adjusted_[i]) {
      out.deferred = true;
      continue;
    }
    absl::StatusOr<Estimate> estimate = decision->accounts;
    if (const auto* m = std::get_if<SessionCountMetric>(&mechanisms_[i])) {
      estimate = m->Release(in.sessions, rng);
    } else if (const auto* m = std::get_if<SumMetric>(&mechanisms_[i])) {
      estimate = m->Release(in.sum_fp, rng);
    } else if (const auto* m = std::get_if<MeanMetric>(&mechanisms_[i])) {
      estimate = m->Release(in.sum_fp, in.sessions, rng);
    } else if (const auto* m = std::get_if<RateMetric>(&mechanisms_[i])) {
      estimate = m->Release(in.matching, in.sessions, rng);
    } else if (const auto* m =
                   std::get_if<GeometricMeanMetric>(&mechanisms_[i])) {
      estimate = m->Release(in.sum_fp, in.sessions, rng);
    } else if (const auto* m = std::get_if<QuantileTree>(&mechanisms_[i])) {
      absl::StatusOr<std::vector<QuantileEstimate>> q =
          in.leaf_counts.empty() ? m->Release(in.values_fp, rng)
                                 : m->ReleaseLeafCounts(in.leaf_counts, rng);
      if (!q.ok()) return q.status();
      out.quantiles = std::move(*q);
      continue;
    }
    if (!estimate.ok()) return estimate.status();
    if (sampling_[i].variance.has_value()) {
      estimate = AddSampling(i, in, *estimate, rng);
      if (!estimate.ok()) return estimate.status();
    }
    out.estimate = *estimate;
  }
  release.released = true;
  return release;
}

absl::StatusOr<double> QueryReleaser::PredictedHalfWidth(
    size_t metric, int64_t cohort_sessions) const {
  if (metric >= mechanisms_.size()) {
    return absl::OutOfRangeError(
        absl::StrFormat("metric %d of %d", metric, mechanisms_.size()));
  }
  const Mechanism& m = mechanisms_[metric];
  if (std::holds_alternative<std::monostate>(m)) {
    return static_cast<double>(selector_.AccountsHalfWidth());
  }
  if (std::holds_alternative<QuantileTree>(m)) {
    return absl::InvalidArgumentError(
        "QUANTILES has no data-independent interval width in measure units");
  }
  return std::visit(
      [&](const auto& mechanism) -> double {
        using T = std::decay_t<decltype(mechanism)>;
        if constexpr (std::is_same_v<T, std::monostate> ||
                      std::is_same_v<T, QuantileTree>) {
          return 0;  // handled above
        } else {
          return mechanism.PredictedHalfWidth(cohort_sessions);
        }
      },
      m);
}

}  // namespace cohortd::privacy
