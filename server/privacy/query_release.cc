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
         kind == MetricKind::kAccounts || kind == MetricKind::kRate ||
         kind == MetricKind::kMean;
}

// The L1 sensitivity of a Laplace-capable metric (0 if too large): a
// rate's pair moves by Linf sessions per cohort; a mean's is its centred
// sum's (its count's is smaller).
int64_t L1Of(const QueryPrivacyParams& p, const MetricRequest& m) {
  const __int128 l0 = p.bounds.max_cohorts_per_account;
  const __int128 linf = p.bounds.max_sessions_per_cohort;
  __int128 l1 = l0;
  if (m.kind == MetricKind::kSessions || m.kind == MetricKind::kRate) {
    l1 = l0 * linf;
  }
  if (m.kind == MetricKind::kSum) l1 = l0 * linf * m.domain.MaxAbs();
  if (m.kind == MetricKind::kMean) {
    l1 = l0 * linf * (m.domain.upper_fp - m.domain.lower_fp);
  }
  return l1 > (static_cast<__int128>(1) << 40) ? 0 : static_cast<int64_t>(l1);
}

// The standard normal quantile at p in (0.5, 1), by bisection on erfc
// (used only to choose a plan, never for an interval).
double NormalQuantile(double p) {
  double low = 0, high = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = (low + high) / 2;
    (0.5 * std::erfc(mid / std::sqrt(2.0)) > 1 - p ? low : high) = mid;
  }
  return high;
}

// The per-metric chooser's width model (docs/privacy.md "Choosing the
// noise"): a metric's interval is proportional to its noise scale, sigma
// = sqrt(Delta_2^2 / (2 rho)) for the discrete Gaussian, b = Delta_1 /
// epsilon for the discrete Laplace, times a constant per kind and
// family; Delta_1 / Delta_2 = sqrt(L0') for every kind. Returns
// gamma_Laplace / gamma_Gaussian (alpha = 1 - confidence, z its two-sided
// normal quantile):
//  * SESSIONS, SUM: half-widths z sigma and b ln(1 / alpha);
//  * RATE: the Fieller threshold at r = 1/2, z sigma / sqrt(2) and
//    kappa b / 2, kappa solving e^-kappa (1 + kappa / 2) = alpha (the tail
//    of the mean of two Laplaces);
//  * MEAN: z times the root mean square over theta of the pivot's sd at
//    the best split, (1 + 1/sqrt(3)) sigma_n W and sqrt(2) (1 +
//    3^(-1/3))^(3/2) b_n W (normal approximation for the Laplace pair).
double LaplaceToGaussianWidth(MetricKind kind, double confidence) {
  const double alpha = 1 - confidence;
  const double z = NormalQuantile(1 - alpha / 2);
  switch (kind) {
    case MetricKind::kRate: {
      double lo = 0, hi = 200;
      for (int i = 0; i < 200; ++i) {
        const double mid = (lo + hi) / 2;
        (std::exp(-mid) * (1 + mid / 2) > alpha ? lo : hi) = mid;
      }
      return (hi / 2) / (z / std::sqrt(2.0));
    }
    case MetricKind::kMean:
      return std::sqrt(2.0) * std::pow(1 + std::cbrt(1.0 / 3), 1.5) /
             (1 + 1 / std::sqrt(3.0));
    default:
      return std::log(1 / alpha) / z;
  }
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
// (class comment) on a grid of 0.01. Errors: none fits; FailedPrecondition
// when even the whole epsilon gives a selection wider than `max_width`
// (the plan could not be admissible; the grid costs milliseconds).
absl::StatusOr<double> ChooseSelectionShare(
    const QueryPrivacyParams& p, const std::vector<MetricRequest>& metrics,
    int noisy, int gates, double max_width) {
  const double delta_share = gates > 0 ? p.delta / (gates + 1) : p.delta;
  absl::StatusOr<double> full_selection =
      OptimalSelectionWidth(p, p.epsilon, delta_share);
  if (!full_selection.ok()) return full_selection.status();
  if (*full_selection > max_width) {
    return absl::FailedPreconditionError(
        "the Laplace plan's selection is wider");
  }
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
  // Share i / 100; each evaluation builds an optimal selection (~0.1 ms):
  // a grid of 0.05, then 0.01 around its best. The largest ratio is
  // unimodal in s (the selection's width falls, the metrics' rise), so
  // this finds the 0.01 grid's minimum.
  auto consider = [&](int i) {
    const double s = i / 100.0;
    const double metric_share = (1 - (1 + gates) * s) / noisy;
    if (!(metric_share > 0)) return;
    absl::StatusOr<double> selection =
        OptimalSelectionWidth(p, s * p.epsilon, delta_share);
    if (!selection.ok()) return;
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
    if (worst < best || (worst == best && s < best_share)) {
      best = worst;
      best_share = s;
    }
  };
  for (int i = 5; i < 100; i += 5) consider(i);
  if (best_share < 0) {
    for (int i = 1; i < 5; ++i) consider(i);
  } else {
    const int center = static_cast<int>(std::lround(best_share * 100));
    for (int i = std::max(1, center - 4); i <= std::min(99, center + 4); ++i) {
      if (i != center) consider(i);
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
  // The per-metric plan keeps one rho per Gaussian metric, which sampling
  // intervals (two shares) and adjusted metrics (spent later at
  // rho_per_metric) rely on: they stay in the Gaussian family.
  bool mixed_capable = false;
  bool mixed_blocked = false;
  for (const MetricRequest& m : metrics) {
    mixed_blocked = mixed_blocked || m.sampling_interval || m.adjusted;
    mixed_capable =
        mixed_capable || (m.kind != MetricKind::kAccounts &&
                          LaplaceCapable(m.kind) && L1Of(params, m) > 0);
  }
  mixed_capable = mixed_capable && !mixed_blocked;
  for (int g = 0; g < gates; ++g) {
    if (!gate_used[g]) {
      // An unused gate would be charged for nothing.
      return absl::InvalidArgumentError(
          absl::StrFormat("contributor gate %d is named by no metric", g));
    }
  }
  using Family = QueryPrivacyParams::Family;
  // The Gaussian plan: always built (the others are compared with it),
  // except when the Laplace family is forced.
  std::optional<QueryReleaser> gaussian;
  if (params.family != Family::kLaplace) {
    absl::StatusOr<QueryBudget> budget =
        PlanQueryBudget(params.epsilon, params.delta, noisy, gates);
    if (!budget.ok()) return budget.status();
    absl::StatusOr<QueryReleaser> built =
        Build(params, metrics, metric_gate, *budget);
    if (!built.ok()) return built.status();
    if (params.family == Family::kGaussian || metrics.empty()) return built;
    gaussian = *std::move(built);
  } else if (!laplace_capable || metrics.empty()) {
    return absl::InvalidArgumentError(
        "the Laplace family needs only SESSIONS, SUM, ACCOUNTS, RATE and "
        "MEAN metrics without sampling intervals or adjustment");
  }
  // The Laplace family: ACCOUNTS needs its own noise there.
  std::vector<absl::StatusOr<QueryReleaser>> candidates;
  if (laplace_capable && params.family != Family::kMixed) {
    const int laplace_noisy = static_cast<int>(metrics.size());
    candidates.push_back([&]() -> absl::StatusOr<QueryReleaser> {
      absl::StatusOr<double> share = ChooseSelectionShare(
          params, metrics, laplace_noisy, gates,
          gaussian.has_value() ? gaussian->Widths()[0] : HUGE_VAL);
      if (!share.ok()) return share.status();
      if (gaussian.has_value()) {
        // Building the metrics' intervals costs milliseconds: skip a plan
        // whose selection is already wider than the Gaussian plan's (it
        // cannot be admissible below).
        absl::StatusOr<double> selection = OptimalSelectionWidth(
            params, RoundRemaining(*share * params.epsilon),
            gates > 0 ? RoundRemaining(params.delta / (gates + 1))
                      : params.delta);
        if (!selection.ok()) return selection.status();
        if (*selection > gaussian->Widths()[0]) {
          return absl::FailedPreconditionError(
              "the Laplace plan's selection is wider");
        }
      }
      absl::StatusOr<QueryBudget> budget = PlanLaplaceBudget(
          params.epsilon, params.delta, laplace_noisy, gates, *share);
      if (!budget.ok()) return budget.status();
      return Build(params, metrics, metric_gate, *budget);
    }());
    if (params.family == Family::kLaplace) return std::move(candidates[0]);
  }
  if (mixed_capable) {
    candidates.push_back(PlanMixed(params, metrics, metric_gate,
                                   gaussian->budget(),
                                   params.family == Family::kMixed));
    if (params.family == Family::kMixed) return std::move(candidates.back());
  } else if (params.family == Family::kMixed) {
    return absl::InvalidArgumentError(
        "the per-metric plan needs no sampling interval, no adjusted metric "
        "and a SESSIONS, SUM, RATE or MEAN metric");
  }
  // A candidate is admissible when no width is wider than the Gaussian
  // plan's and one is narrower, and (with a reference budget) that budget
  // affords at least as many such queries: one query's width is never
  // bought with the analyst's number of queries. The admissible one with
  // the least largest ratio to the Gaussian widths wins.
  const std::vector<double> g = gaussian->Widths();
  const int64_t gaussian_repetitions =
      params.reference_budget_epsilon > 0
          ? RepetitionsAffordable(gaussian->budget().Charge(),
                                  params.reference_budget_epsilon,
                                  params.reference_budget_delta)
          : 0;
  int best = -1;
  double best_ratio = 1;
  for (size_t c = 0; c < candidates.size(); ++c) {
    if (!candidates[c].ok()) continue;
    const std::vector<double> w = candidates[c]->Widths();
    if (w.size() != g.size()) continue;
    bool narrower = false, wider = false;
    double ratio = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      wider = wider || w[i] > g[i];
      narrower = narrower || w[i] < g[i];
      ratio = std::max(ratio, w[i] / g[i]);
    }
    if (wider || !narrower) continue;
    if (params.reference_budget_epsilon > 0 &&
        RepetitionsAffordable(
            candidates[c]->budget().Charge(), params.reference_budget_epsilon,
            params.reference_budget_delta) < gaussian_repetitions) {
      continue;
    }
    if (best < 0 || ratio < best_ratio) {
      best = static_cast<int>(c);
      best_ratio = ratio;
    }
  }
  if (best < 0) return *std::move(gaussian);
  return std::move(candidates[best]);
}

absl::StatusOr<QueryReleaser> QueryReleaser::PlanMixed(
    const QueryPrivacyParams& params, const std::vector<MetricRequest>& metrics,
    const std::vector<int>& metric_gate, const QueryBudget& gaussian,
    bool forced) {
  // Every part's width relative to the Gaussian plan's is t: a Gaussian
  // part gets rho_eq / t^2 (widths scale as 1 / sqrt(rho)), a Laplace
  // metric epsilon K / t with K = (gamma_L / gamma_G) sqrt(2 L0' rho_eq)
  // (LaplaceToGaussianWidth). The least t whose composed curve converts
  // to <= epsilon at delta (approximate part delta / 2, as the Gaussian
  // plan) minimises the widest ratio; at each order the cheaper family of
  // each metric is taken, so the choice is the best over all 2^m.
  const double rho_eq = gaussian.rho_partition_selection;
  const double delta_a = params.delta / 2;
  const double slack = params.delta - delta_a;
  const double l0 = params.bounds.max_cohorts_per_account;
  const double linf = params.bounds.max_sessions_per_cohort;
  int gaussian_parts = 1 + gaussian.gates;  // selection and gates
  struct Choosable {
    size_t metric;
    double k;          // epsilon at t = 1
    int64_t count_l1;  // L1 of the (count) noise
    int64_t sum_l1;    // MEAN: its centred sum's; else 0
  };
  std::vector<Choosable> choosable;
  for (size_t i = 0; i < metrics.size(); ++i) {
    const MetricRequest& m = metrics[i];
    if (m.kind == MetricKind::kAccounts) continue;  // free: selection's count
    const bool capable = LaplaceCapable(m.kind) && L1Of(params, m) > 0;
    if (!capable) {
      ++gaussian_parts;
      continue;
    }
    Choosable c;
    c.metric = i;
    c.k = LaplaceToGaussianWidth(m.kind, params.confidence) *
          std::sqrt(2 * l0 * rho_eq);
    c.count_l1 = m.kind == MetricKind::kSum ? L1Of(params, m)
                                            : static_cast<int64_t>(l0 * linf);
    c.sum_l1 = m.kind == MetricKind::kMean ? L1Of(params, m) : 0;
    choosable.push_back(c);
  }
  if (choosable.empty()) {
    return absl::InvalidArgumentError("no metric can take Laplace noise");
  }
  const double f = 1 / (1 + std::cbrt(3.0));  // the mean's split, asymptotic
  // The Laplace curve of metric c at order index j for a ratio t
  // (infinite beyond the sampler's scale range).
  auto laplace_rdp = [&](const Choosable& c, double t, int j) {
    const double eps = c.k / t;
    const double a = RdpOrders()[j];
    if (c.sum_l1 == 0) {
      const double b = static_cast<double>(c.count_l1) / eps;
      return b < 2147483648.0 ? DiscreteLaplaceRdp(b, c.count_l1, a) : HUGE_VAL;
    }
    const double bn = static_cast<double>(c.count_l1) / (f * eps);
    const double bs = static_cast<double>(c.sum_l1) / ((1 - f) * eps);
    if (!(bs < 2147483648.0)) return HUGE_VAL;
    return DiscreteLaplaceRdp(bn, c.count_l1, a) +
           DiscreteLaplaceRdp(bs, c.sum_l1, a);
  };
  // The converted epsilon at t and, in `laplace`, the choice at the best
  // order.
  auto converted = [&](double t, std::vector<bool>* laplace) {
    const double rho = rho_eq / (t * t);
    double best = HUGE_VAL;
    int best_j = 0;
    for (int j = 0; j < kRdpOrderCount; ++j) {
      const double a = RdpOrders()[j];
      double r = gaussian_parts * rho * a;
      for (const Choosable& c : choosable) {
        r += std::min(rho * a, laplace_rdp(c, t, j));
      }
      const double eps = r + std::log1p(-1 / a) -
                         (std::log(slack) + std::log(a)) / (a - 1) -
                         std::log1p(-delta_a);
      if (eps < best) {
        best = eps;
        best_j = j;
      }
    }
    if (laplace != nullptr) {
      laplace->clear();
      const double a = RdpOrders()[best_j];
      for (const Choosable& c : choosable) {
        laplace->push_back(laplace_rdp(c, t, best_j) < rho * a);
      }
    }
    return best;
  };
  double lo = 0.01, hi = 1;
  while (converted(hi, nullptr) > params.epsilon) {
    lo = hi;
    hi *= 2;
    if (hi > 1e6) return absl::InvalidArgumentError("no per-metric plan fits");
  }
  if (converted(lo, nullptr) <= params.epsilon) hi = lo;
  for (int i = 0; i < 40 && hi - lo > 1e-6 * hi; ++i) {
    const double mid = std::sqrt(lo * hi);
    (converted(mid, nullptr) <= params.epsilon ? hi : lo) = mid;
  }
  if (!forced && hi >= 1) {
    // No part would be narrower than in the Gaussian plan: not worth
    // building (its intervals cost milliseconds).
    return absl::FailedPreconditionError(
        "the per-metric plan is no narrower than the Gaussian plan");
  }
  std::vector<bool> laplace;
  // Rounding (sigma and scales rounded up, shares down) only lowers the
  // built curve; the exact composition is checked by Build, and t raised
  // by 0.1% until it fits.
  for (int attempt = 0; attempt < 20; ++attempt, hi *= 1.001) {
    converted(hi, &laplace);
    QueryBudget budget = gaussian;
    budget.family = NoiseFamily::kMixed;
    const double rho = RoundRemaining(rho_eq / (hi * hi));
    budget.rho_partition_selection = rho;
    budget.rho_per_gate = budget.gates > 0 ? rho : 0;
    budget.rho_per_metric = rho;
    budget.metric_epsilon.assign(metrics.size(), 0);
    bool any = false;
    for (size_t c = 0; c < choosable.size(); ++c) {
      if (!laplace[c]) continue;
      budget.metric_epsilon[choosable[c].metric] =
          RoundRemaining(choosable[c].k / hi);
      any = true;
    }
    if (!any) {
      return absl::InvalidArgumentError(
          "the per-metric plan chose no Laplace metric");
    }
    absl::StatusOr<QueryReleaser> built =
        Build(params, metrics, metric_gate, budget);
    if (built.ok() || !absl::IsOutOfRange(built.status())) return built;
  }
  return absl::InvalidArgumentError("no per-metric plan fits");
}

absl::StatusOr<QueryReleaser> QueryReleaser::Build(
    const QueryPrivacyParams& params, std::vector<MetricRequest> metrics,
    std::vector<int> metric_gate, QueryBudget budget) {
  const bool laplace = budget.family == NoiseFamily::kLaplace;
  const bool mixed = budget.family == NoiseFamily::kMixed;
  // Metric i's discrete Laplace epsilon, or 0 for the discrete Gaussian.
  auto laplace_epsilon = [&](size_t i) {
    if (laplace) return budget.epsilon_per_metric;
    return mixed && i < budget.metric_epsilon.size() ? budget.metric_epsilon[i]
                                                     : 0.0;
  };
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
  for (size_t i = 0; i < metrics.size(); ++i) {
    MetricRequest& m = metrics[i];
    const double eps = laplace_epsilon(i);
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
            eps > 0
                ? SessionCountMetric::CreateLaplace(params.bounds, eps, conf)
                : SessionCountMetric::Create(params.bounds, rho, conf),
            &mechanisms);
        break;
      case MetricKind::kSum:
        status = Append(
            eps > 0
                ? SumMetric::CreateLaplace(params.bounds, m.domain, eps, conf)
                : SumMetric::Create(params.bounds, m.domain, rho, conf),
            &mechanisms);
        break;
      case MetricKind::kMean:
        status = Append(
            eps > 0
                ? MeanMetric::CreateLaplace(params.bounds, m.domain, eps, conf)
                : MeanMetric::Create(params.bounds, m.domain, rho, conf),
            &mechanisms);
        break;
      case MetricKind::kRate:
        status =
            Append(eps > 0 ? RateMetric::CreateLaplace(params.bounds, eps, conf)
                           : RateMetric::Create(params.bounds, rho, conf),
                   &mechanisms);
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
  if (laplace || mixed) {
    // The exact curve of every part that ran: selection and gates (above),
    // then each metric's noise (a Gaussian metric's planned share where
    // the mechanism splits it inside: an upper bound on its curve).
    for (const Mechanism& mech : mechanisms) {
      PrivacyCharge part;
      part.rdp = std::visit(
          [&](const auto& mechanism) -> RdpCurve {
            using T = std::decay_t<decltype(mechanism)>;
            if constexpr (std::is_same_v<T, std::monostate>) {
              return RdpCurve{};  // the selection's count: already charged
            } else if constexpr (std::is_same_v<T, LaplaceMechanism>) {
              return mechanism.Curve();
            } else if constexpr (std::is_same_v<T, SessionCountMetric> ||
                                 std::is_same_v<T, SumMetric> ||
                                 std::is_same_v<T, RateMetric>) {
              return mechanism.noise().Curve();
            } else if constexpr (std::is_same_v<T, MeanMetric>) {
              return mechanism.Curve();
            } else {
              return ZcdpCurve(rho);
            }
          },
          mech);
      part.dp_epsilon = 0;
      charge = Compose(charge, part);
    }
    if (laplace) {
      charge.dp_epsilon = budget.reported.epsilon;
      charge.dp_delta = budget.reported.delta;
    } else {
      // The query is (epsilon', delta)-DP by its curve; basic composition
      // may then use that pair.
      const double converted =
          RdpEpsilon(charge.rdp, charge.delta, params.delta);
      if (!(converted <= params.epsilon)) {
        return absl::OutOfRangeError(
            absl::StrFormat("per-metric plan converts to epsilon %.9g > %.9g",
                            converted, params.epsilon));
      }
      budget.reported.epsilon = converted;
      budget.reported.delta = params.delta;
      charge.dp_epsilon = converted;
      charge.dp_delta = params.delta;
      budget.rho_total = charge.Rho();
    }
    // The RDP view may not beat the basic one at the query's own delta
    // (its approximate part is all of it), so `rho` reports the curve only.
    budget.reported.rho = charge.Rho();
    budget.charge = charge;
  }
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
    } else if (const auto* rate = std::get_if<RateMetric>(&mech)) {
      widths.push_back(
          rate->PredictedHalfWidth(static_cast<int64_t>(kTypicalMeanSessions)));
      continue;
    } else if (const auto* mean = std::get_if<MeanMetric>(&mech)) {
      widths.push_back(
          mean->PredictedHalfWidth(static_cast<int64_t>(kTypicalMeanSessions)));
      continue;
    } else {
      // GEOMETRIC_MEAN and QUANTILES are Gaussian in every plan, with
      // rho_per_metric: not compared (the per-metric plan gives them
      // more rho whenever its selection is narrower).
      continue;
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
