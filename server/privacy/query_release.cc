#include "server/privacy/query_release.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
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

namespace {

bool LaplaceCapable(MetricKind kind) {
  return kind == MetricKind::kSessions || kind == MetricKind::kSum ||
         kind == MetricKind::kAccounts;
}

// The L1 sensitivity of a Laplace-capable metric (0 if too large).
int64_t L1Of(const QueryPrivacyParams& p, const MetricRequest& m) {
  const __int128 l0 = p.bounds.max_cohorts_per_account;
  const __int128 linf = p.bounds.max_sessions_per_cohort;
  __int128 l1 = l0;
  if (m.kind == MetricKind::kSessions) l1 = l0 * linf;
  if (m.kind == MetricKind::kSum) l1 = l0 * linf * m.domain.MaxAbs();
  return l1 > (static_cast<__int128>(1) << 40) ? 0 : static_cast<int64_t>(l1);
}

// Accounts above k - 1 the optimal selection keeps with p >= 0.95.
absl::StatusOr<double> OptimalSelectionWidth(const QueryPrivacyParams& p,
                                             double epsilon, double delta) {
  absl::StatusOr<PartitionSelector> s = PartitionSelector::CreateOptimal(
      p.k, p.bounds.max_cohorts_per_account, epsilon, delta);
  if (!s.ok()) return s.status();
  return static_cast<double>(s->MinCohortSizeReleasedWith(0.95) - (p.k - 1));
}

// The Laplace family's selection share: minimises the largest width ratio
// (class comment) on a grid of 0.01. Errors: none fits.
absl::StatusOr<double> ChooseSelectionShare(
    const QueryPrivacyParams& p, const std::vector<MetricRequest>& metrics,
    int noisy, int gates) {
  const double delta_share = gates > 0 ? p.delta / (gates + 1) : p.delta;
  absl::StatusOr<double> full_selection =
      OptimalSelectionWidth(p, p.epsilon, delta_share);
  if (!full_selection.ok()) return full_selection.status();
  std::vector<int64_t> l1s;
  std::vector<double> full_widths;
  for (const MetricRequest& m : metrics) {
    const int64_t l1 = L1Of(p, m);
    l1s.push_back(l1);
    full_widths.push_back(
        DiscreteLaplaceHalfWidth(static_cast<double>(l1) / p.epsilon,
                                 p.confidence) +
        1.0);
  }
  double best_share = -1, best = std::numeric_limits<double>::infinity();
  for (int i = 1; i < 100; ++i) {
    const double s = i / 100.0;
    const double metric_share = (1 - (1 + gates) * s) / noisy;
    if (!(metric_share > 0)) break;
    absl::StatusOr<double> selection =
        OptimalSelectionWidth(p, s * p.epsilon, delta_share);
    if (!selection.ok()) continue;
    double worst = *selection / *full_selection;
    for (size_t j = 0; j < metrics.size(); ++j) {
      const double b = static_cast<double>(l1s[j]) / (metric_share * p.epsilon);
      if (!(b < 2147483648.0)) {
        worst = std::numeric_limits<double>::infinity();
        break;
      }
      worst = std::max(worst, (DiscreteLaplaceHalfWidth(b, p.confidence) + 1) /
                                  full_widths[j]);
    }
    if (worst < best) {
      best = worst;
      best_share = s;
    }
  }
  if (best_share < 0) {
    return absl::InvalidArgumentError("no Laplace plan fits this budget");
  }
  return best_share;
}

}  // namespace

absl::StatusOr<QueryReleaser> QueryReleaser::Create(
    const QueryPrivacyParams& params, std::vector<MetricRequest> metrics,
    int gates) {
  absl::Status status = ValidateBounds(params.bounds);
  if (!status.ok()) return status;
  if (gates < 0) return absl::InvalidArgumentError("gates must be >= 0");
  int noisy = 0;
  bool laplace_capable = true;
  std::vector<int> metric_gate;
  std::vector<bool> gate_used(gates, false);
  for (size_t i = 0; i < metrics.size(); ++i) {
    const MetricRequest& m = metrics[i];
    noisy += m.kind != MetricKind::kAccounts;
    // Sampling intervals and adjusted metrics spend rho (their private
    // variance, their regression): the Gaussian family only.
    laplace_capable = laplace_capable && LaplaceCapable(m.kind) &&
                      L1Of(params, m) > 0 && !m.sampling_interval &&
                      !m.adjusted;
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
  using Family = QueryPrivacyParams::Family;
  std::optional<QueryReleaser> gaussian;
  if (params.family != Family::kLaplace) {
    absl::StatusOr<QueryBudget> budget =
        PlanQueryBudget(params.epsilon, params.delta, noisy, gates);
    if (!budget.ok()) return budget.status();
    absl::StatusOr<QueryReleaser> built =
        Build(params, metrics, metric_gate, *budget, noisy);
    if (!built.ok()) return built.status();
    if (params.family == Family::kGaussian || !laplace_capable ||
        metrics.empty()) {
      return built;
    }
    gaussian = *std::move(built);
  } else if (!laplace_capable || metrics.empty()) {
    return absl::InvalidArgumentError(
        "the Laplace family needs only SESSIONS, SUM and ACCOUNTS metrics");
  }
  // The Laplace family: ACCOUNTS needs its own noise there.
  const int laplace_noisy = static_cast<int>(metrics.size());
  absl::StatusOr<QueryReleaser> laplace =
      [&]() -> absl::StatusOr<QueryReleaser> {
    absl::StatusOr<double> share =
        ChooseSelectionShare(params, metrics, laplace_noisy, gates);
    if (!share.ok()) return share.status();
    absl::StatusOr<QueryBudget> budget = PlanLaplaceBudget(
        params.epsilon, params.delta, laplace_noisy, gates, *share);
    if (!budget.ok()) return budget.status();
    return Build(params, metrics, metric_gate, *budget, laplace_noisy);
  }();
  if (!gaussian.has_value()) return laplace;
  if (!laplace.ok()) return *std::move(gaussian);
  // Narrower everywhere, and no fewer queries in the reference budget.
  const std::vector<double> g = gaussian->Widths(), l = laplace->Widths();
  bool narrower = g.size() == l.size();
  for (size_t i = 0; narrower && i < g.size(); ++i) {
    narrower = l[i] < g[i];
  }
  if (narrower && params.reference_budget_epsilon > 0) {
    narrower = RepetitionsAffordable(laplace->budget().Charge(),
                                     params.reference_budget_epsilon,
                                     params.reference_budget_delta) >=
               RepetitionsAffordable(gaussian->budget().Charge(),
                                     params.reference_budget_epsilon,
                                     params.reference_budget_delta);
  }
  return narrower ? *std::move(laplace) : *std::move(gaussian);
}

absl::StatusOr<QueryReleaser> QueryReleaser::Build(
    const QueryPrivacyParams& params, std::vector<MetricRequest> metrics,
    std::vector<int> metric_gate, QueryBudget budget, int noisy) {
  const bool laplace = budget.family == NoiseFamily::kLaplace;
  const int l0 = params.bounds.max_cohorts_per_account;
  const int gates = budget.gates;
  auto make_selector = [&](double rho, double epsilon, double delta) {
    return laplace
               ? PartitionSelector::CreateOptimal(params.k, l0, epsilon, delta)
               : PartitionSelector::Create(params.k, l0, rho, delta,
                                           params.confidence);
  };
  absl::StatusOr<PartitionSelector> selector = make_selector(
      budget.rho_partition_selection, budget.epsilon_partition_selection,
      budget.delta_partition_selection);
  if (!selector.ok()) return selector.status();
  std::vector<PartitionSelector> gate_selectors;
  PrivacyCharge charge = selector->Charge();
  for (int g = 0; g < gates; ++g) {
    // Same construction as the cohort's selection, on the metric's own
    // contributing-account count (sensitivity 1 in each of <= L0 cohorts).
    absl::StatusOr<PartitionSelector> gate = make_selector(
        budget.rho_per_gate, budget.epsilon_per_gate, budget.delta_per_gate);
    if (!gate.ok()) return gate.status();
    charge = Compose(charge, gate->Charge());
    gate_selectors.push_back(*gate);
  }

  std::vector<Mechanism> mechanisms;
  const double rho = budget.rho_per_metric;
  const double eps = budget.epsilon_per_metric;
  const double conf = params.confidence;
  absl::Status status;
  // Sampling intervals (Gaussian family only; Create() keeps such queries
  // there).
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
        if (laplace) {
          absl::StatusOr<LaplaceMechanism> noise =
              LaplaceMechanism::Create(l0, eps, conf);
          status = Append(std::move(noise), &mechanisms);
        } else {
          mechanisms.emplace_back(std::monostate{});
        }
        break;
      case MetricKind::kSessions:
        status = Append(
            laplace
                ? SessionCountMetric::CreateLaplace(params.bounds, eps, conf)
                : SessionCountMetric::Create(params.bounds, rho, conf),
            &mechanisms);
        break;
      case MetricKind::kSum:
        status = Append(
            laplace
                ? SumMetric::CreateLaplace(params.bounds, m.domain, eps, conf)
                : SumMetric::Create(params.bounds, m.domain, rho, conf),
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
  if (laplace) {
    // The exact curves of every part; the basic bound is the plan's.
    for (const Mechanism& mech : mechanisms) {
      PrivacyCharge part;
      if (const auto* a = std::get_if<LaplaceMechanism>(&mech)) {
        part.rdp = a->Curve();
      } else if (const auto* c = std::get_if<SessionCountMetric>(&mech)) {
        part.rdp = c->noise().Curve();
      } else if (const auto* sum = std::get_if<SumMetric>(&mech)) {
        part.rdp = sum->noise().Curve();
      }
      part.dp_epsilon = 0;
      charge = Compose(charge, part);
    }
    charge.dp_epsilon = budget.reported.epsilon;
    charge.dp_delta = budget.reported.delta;
    // The RDP view may not beat the basic one at the query's own delta
    // (its approximate part is all of it), so `rho` reports the curve only.
    budget.reported.rho = charge.Rho();
    budget.charge = charge;
  }
  (void)noisy;
  QueryReleaser releaser(budget, *selector, std::move(gate_selectors),
                         std::move(mechanisms), std::move(metric_gate),
                         std::move(sampling));
  releaser.confidence_ = conf;
  for (const MetricRequest& m : metrics) {
    releaser.adjusted_.push_back(m.adjusted);
  }
  return releaser;
}

std::vector<double> QueryReleaser::Widths() const {
  // +1 so that a zero-width interval still compares.
  std::vector<double> widths;
  auto selection_width = [](const PartitionSelector& s) {
    return static_cast<double>(s.MinCohortSizeReleasedWith(0.95) - (s.k() - 1));
  };
  widths.push_back(selection_width(selector_));
  for (const PartitionSelector& g : gates_)
    widths.push_back(selection_width(g));
  for (const Mechanism& mech : mechanisms_) {
    double w = 0;
    if (std::holds_alternative<std::monostate>(mech)) {
      w = static_cast<double>(selector_.HalfWidth());
    } else if (const auto* a = std::get_if<LaplaceMechanism>(&mech)) {
      w = static_cast<double>(a->HalfWidth());
    } else if (const auto* c = std::get_if<SessionCountMetric>(&mech)) {
      w = static_cast<double>(c->noise().HalfWidth());
    } else if (const auto* sum = std::get_if<SumMetric>(&mech)) {
      w = static_cast<double>(sum->noise().HalfWidth());
    } else {
      continue;  // not compared (only the Gaussian family has them)
    }
    widths.push_back(w + 1);
  }
  return widths;
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
    if (const auto* a = std::get_if<LaplaceMechanism>(&mechanisms_[i])) {
      // ACCOUNTS with its own noise; the cohort has >= k accounts.
      absl::StatusOr<int64_t> noisy = a->AddNoise(distinct_accounts, rng);
      if (!noisy.ok()) return noisy.status();
      const int64_t c = a->HalfWidth();
      const int64_t k = selector_.k();
      estimate =
          Estimate{static_cast<double>(std::max<int64_t>(*noisy, k)),
                   static_cast<double>(std::max<int64_t>(*noisy - c, k)),
                   static_cast<double>(std::max<int64_t>(*noisy + c, k))};
    } else if (const auto* m =
                   std::get_if<SessionCountMetric>(&mechanisms_[i])) {
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
        } else if constexpr (std::is_same_v<T, LaplaceMechanism>) {
          // ACCOUNTS with its own noise: the noise's half-width.
          return static_cast<double>(mechanism.HalfWidth());
        } else {
          return mechanism.PredictedHalfWidth(cohort_sessions);
        }
      },
      m);
}

}  // namespace cohortd::privacy
