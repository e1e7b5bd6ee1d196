// One query's release, end to end: budget split, partition selection,
// contributor gates and every metric, per cohort. The entry point for the
// query executor.
//
// QueryReleaser::Create() plans the budget and chooses the noise (below),
// and builds each mechanism once; ReleaseCohort() then runs, for one
// cohort's exact bounded statistics, the k-anonymity + DP partition
// selection and — only if the cohort is released — each metric. Keeping
// the guard here means no metric can be published for an unselected
// cohort. ACCOUNTS reuses partition selection's noisy count (free).
//
// Contributor gates: SUM, MEAN and QUANTILES use only the sessions that
// carry their measure, and RATE only those that carry its label, so a
// cohort of >= k accounts can hold a measure from fewer than k of them.
// Each such metric names a gate; a gate is a PartitionSelector (k
// pre-threshold + Gaussian threshold, partition_selection.h) with its own
// share of rho and delta, applied to the number of accounts with at least
// one kept session contributing to the metric in the cohort. When it
// fails, that metric's estimate is suppressed (MetricOutput::suppressed)
// while the cohort and its other metrics are released. Metrics reading
// the same sessions share one gate. A metric whose contributing accounts
// are provably the cohort's (SESSIONS, ACCOUNTS, or a RATE whose label
// the cohort's key or filters require) needs none; Create() refuses a
// SUM, MEAN or QUANTILES without a gate.
//
// Mechanism choice (docs/privacy.md "Choosing the noise"), data-
// independent (a function of the params and the metrics' kinds):
//  * Gaussian family: Gaussian-threshold selection and gates, discrete
//    Gaussian metrics (accountant.h PlanQueryBudget), equal shares;
//  * Laplace family, when every metric is SESSIONS, SUM, ACCOUNTS, RATE or
//    MEAN: optimal (epsilon, delta) selection and gates, discrete Laplace
//    metrics with their L1 sensitivities (PlanLaplaceBudget), the
//    selection share s chosen on a grid of 0.01 to minimise the largest
//    ratio, over selection, gates and metrics, of the interval (for a
//    selection: the accounts above k - 1 kept with p >= 0.95) to what it
//    would be with the whole budget;
//  * per-metric plan (PlanMixed), when no metric has a sampling interval
//    or adjustment: Gaussian selection and gates, each SESSIONS, SUM,
//    RATE and MEAN metric discrete Laplace or discrete Gaussian, every
//    part at the same width ratio t to the Gaussian plan, t the least
//    whose composed RDP curve converts to <= epsilon (so the widest ratio
//    is minimal), each metric's family the cheaper at the converting
//    order.
// A plan other than the Gaussian one is admissible when none of its
// Widths() is wider than the Gaussian plan's and one is narrower, and
// (when the params name a reference budget: the asking principal's) that
// budget affords at least as many such queries (RepetitionsAffordable):
// one query's width is never bought with the analyst's number of queries.
// The admissible plan with the least largest width ratio is kept, else
// the Gaussian plan.
//
// Whole-query privacy: budget().Charge() is the composition of every
// part's curve and delta, and its basic (epsilon, delta) guarantee; report
// budget().Reported() as the API's PrivacyCost.
//
// Thread-safety: immutable after Create(); ReleaseCohort() may run on many
// threads at once, each with its own RandomWords.
#ifndef COHORTD_SERVER_PRIVACY_QUERY_RELEASE_H_
#define COHORTD_SERVER_PRIVACY_QUERY_RELEASE_H_

#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/crypto/csprng.h"
#include "server/privacy/accountant.h"
#include "server/privacy/aggregations.h"
#include "server/privacy/contribution_bounding.h"
#include "server/privacy/partition_selection.h"
#include "server/privacy/quantile_tree.h"
#include "server/privacy/sampling_interval.h"

namespace cohortd::privacy {

enum class MetricKind {
  kSessions,
  kAccounts,
  kSum,
  kMean,
  kRate,
  kQuantiles,
  kGeometricMean,
};

struct MetricRequest {
  MetricKind kind = MetricKind::kSessions;
  MeasureDomain domain;           // kSum, kMean, kQuantiles, kGeometricMean
  std::vector<double> quantiles;  // kQuantiles
  // The contributor gate this metric's estimate must pass: an index into
  // the query's gates (0 .. gates - 1), or kNoGate when the metric's
  // contributing accounts are the cohort's (see the file comment).
  int gate = -1;
  static constexpr int kNoGate = -1;
  // NOISE_AND_SAMPLING (sampling_interval.h): the interval also covers the
  // account-clustered sampling error, for kSessions, kSum, kMean and
  // kRate. Such a metric spends a second rho share on its private
  // variance estimate.
  bool sampling_interval = false;
  // Metric.adjust_for (kRate, kMean): the releaser only decides the gate
  // and marks the output `deferred`; the metric's rho share is spent by
  // the caller's AdjustedRegression over the released cohorts.
  bool adjusted = false;
};

// The public privacy parameters of one query (from the dataset's config
// and the request).
struct QueryPrivacyParams {
  int k = 10;
  // bounds.max_cohorts_per_account is the L0 the sensitivities use: the
  // configured L0, or fewer when the query's public domains allow fewer
  // cohorts (query_plan.h QueryPlan::max_cohorts_per_account).
  ContributionBounds bounds;
  double epsilon = 1.0;
  double delta = 1e-7;
  double confidence = 0.95;
  // The asking principal's budget, which the chooser protects (public
  // config; zero epsilon = none): see the file comment.
  double reference_budget_epsilon = 0;
  double reference_budget_delta = 0;
  // Which noise family may be chosen: kAuto lets the chooser decide;
  // the others force one plan (kMixed: the per-metric plan, also when it
  // is no narrower than the Gaussian one).
  enum class Family { kAuto, kGaussian, kLaplace, kMixed };
  Family family = Family::kAuto;
};

// Exact statistics of one cohort for one metric, over the sessions kept by
// contribution bounding, measures in fixed point. Fields a kind does not
// use are ignored.
struct MetricInput {
  // kSessions; kMean, kGeometricMean (count); kRate (denominator)
  int64_t sessions = 0;
  // kSum, kMean (128 bits: cannot overflow); kGeometricMean: the sum of
  // GeometricMeanMetric::LogFixedPoint of the values.
  __int128 sum_fp = 0;
  int64_t matching = 0;  // kRate: sessions matching the predicate
  absl::Span<const int64_t> values_fp;  // kQuantiles (borrowed)
  // kQuantiles, instead of values_fp when not empty: sessions per leaf of
  // the metric's QuantileTree::Grid(domain) (borrowed).
  absl::Span<const int64_t> leaf_counts;
  // sampling_interval metrics: the cohort's per-account kept totals of
  // this metric (borrowed; accounts that carry nothing may be left out).
  absl::Span<const AccountTotal> account_totals;
};

struct MetricOutput {
  // True when the metric's contributor gate failed: nothing of it may be
  // published (estimate and quantiles are empty).
  bool suppressed = false;
  // An adjusted metric that passed its gate: its estimate is computed by
  // the caller (adjusted_regression.h) once every cohort is decided.
  bool deferred = false;
  Estimate estimate;                        // all but kQuantiles
  std::vector<QuantileEstimate> quantiles;  // kQuantiles
};

struct CohortRelease {
  bool released = false;
  std::vector<MetricOutput> metrics;  // in request order, when released
};

class QueryReleaser {
 public:
  // `gates`: how many contributor gates the metrics name; each of
  // 0 .. gates - 1 must be named by at least one metric. Errors:
  // InvalidArgument for bad parameters (k < 1, epsilon <= 0, delta
  // outside (0, 1), confidence outside (0, 1), bad bounds or quantiles, a
  // SUM, MEAN or QUANTILES without a gate, a gate out of range or unused,
  // a sampling interval on kAccounts or kQuantiles). The budget counts
  // each sampling-interval metric as two noisy metrics.
  static absl::StatusOr<QueryReleaser> Create(
      const QueryPrivacyParams& params, std::vector<MetricRequest> metrics,
      int gates = 0);

  // Decides and, if released, computes every metric of one cohort.
  // `distinct_accounts` is the cohort's true distinct-account count after
  // bounding; `gate_accounts` has one entry per gate: the accounts with at
  // least one kept session contributing to that gate's metrics; `inputs`
  // has one entry per metric, in request order. Every gate of a released
  // cohort draws its noise, also below k. Errors: InvalidArgument if
  // inputs or gate_accounts have the wrong size or a gate count exceeds
  // distinct_accounts; randomness failure. On error nothing of the cohort
  // may be published.
  absl::StatusOr<CohortRelease> ReleaseCohort(
      int64_t distinct_accounts, absl::Span<const int64_t> gate_accounts,
      absl::Span<const MetricInput> inputs, RandomWords& rng) const;

  // The same for a query without gates.
  absl::StatusOr<CohortRelease> ReleaseCohort(
      int64_t distinct_accounts, absl::Span<const MetricInput> inputs,
      RandomWords& rng) const {
    return ReleaseCohort(distinct_accounts, {}, inputs, rng);
  }

  // The predicted half-width of metric `metric`'s interval for a cohort
  // of `cohort_sessions` sessions (aggregations.h "Predicted
  // half-widths"; ACCOUNTS: partition selection's). Data-independent: a
  // function of the mechanisms only, so accuracy-first queries can search
  // epsilon with it whatever mechanism the releaser uses. Errors:
  // OutOfRange for a bad index; InvalidArgument for QUANTILES, whose
  // interval in measure units depends on the data.
  absl::StatusOr<double> PredictedHalfWidth(size_t metric,
                                            int64_t cohort_sessions) const;

  // The geometric-mean mechanism of metric `metric`, or nullptr (the
  // executor sums its LogFixedPoint per session).
  const GeometricMeanMetric* geometric_mean(size_t metric) const {
    return metric < mechanisms_.size()
               ? std::get_if<GeometricMeanMetric>(&mechanisms_[metric])
               : nullptr;
  }

  // The budget plan: Charge() for the ledger, Reported() for the API.
  const QueryBudget& budget() const { return budget_; }
  const PartitionSelector& partition_selector() const { return selector_; }
  // Gate `i`'s selector (0 <= i < gates()).
  const PartitionSelector& gate(int i) const { return gates_[i]; }
  int gates() const { return static_cast<int>(gates_.size()); }
  // The widths the chooser compares (file comment): the selection's, then
  // each gate's accounts above k - 1 kept w.p. 0.95, then the half-width
  // + 1 of each SESSIONS, SUM and ACCOUNTS metric and the predicted
  // half-width at kTypicalMeanSessions of each RATE and MEAN, in request
  // order.
  std::vector<double> Widths() const;

 private:
  // A metric's sampling-variance estimator and how its units map to the
  // released value's: value = y-unit * scale; the interval is clipped to
  // [lo, hi]. With `log` (GEOMETRIC_MEAN) y, scale, lo and hi are those of
  // the mean of ln values: the estimate is taken to ln units, widened
  // there and exp'ed back (exp is increasing).
  struct SamplingSpec {
    std::optional<ClusteredSamplingVariance> variance;
    double scale = 1;
    double lo = 0;
    double hi = 0;
    bool log = false;
  };
  // Widens `estimate` by the sampling part of metric `i`.
  absl::StatusOr<Estimate> AddSampling(size_t i, const MetricInput& in,
                                       const Estimate& estimate,
                                       RandomWords& rng) const;

  // monostate = ACCOUNTS from the selection's noisy count; a
  // LaplaceMechanism = ACCOUNTS with its own noise (Laplace family).
  using Mechanism = std::variant<std::monostate, SessionCountMetric, SumMetric,
                                 MeanMetric, RateMetric, QuantileTree,
                                 LaplaceMechanism, GeometricMeanMetric>;

  // Builds the releaser of one family's plan.
  // Builds the releaser of one plan (any family). Errors: those of the
  // mechanisms; OutOfRange when a per-metric plan's composed curve
  // converts to more than the query's epsilon.
  static absl::StatusOr<QueryReleaser> Build(const QueryPrivacyParams& params,
                                             std::vector<MetricRequest> metrics,
                                             std::vector<int> metric_gate,
                                             QueryBudget budget);
  // The per-metric plan (docs/privacy.md "Choosing the noise"), given the
  // Gaussian plan's budget. Errors: InvalidArgument when no metric takes
  // Laplace noise or none fits; FailedPrecondition (unless `forced`) when
  // its width ratio t is >= 1, i.e. no narrower than the Gaussian plan.
  static absl::StatusOr<QueryReleaser> PlanMixed(
      const QueryPrivacyParams& params,
      const std::vector<MetricRequest>& metrics,
      const std::vector<int>& metric_gate, const QueryBudget& gaussian,
      bool forced);

  // Moves a successfully built mechanism into `out`.
  template <typename T>
  static absl::Status Append(absl::StatusOr<T> mechanism,
                             std::vector<Mechanism>* out);

  QueryReleaser(QueryBudget budget, PartitionSelector selector,
                std::vector<PartitionSelector> gates,
                std::vector<Mechanism> mechanisms, std::vector<int> metric_gate,
                std::vector<SamplingSpec> sampling)
      : budget_(budget),
        selector_(selector),
        gates_(std::move(gates)),
        mechanisms_(std::move(mechanisms)),
        metric_gate_(std::move(metric_gate)),
        sampling_(std::move(sampling)) {}

  QueryBudget budget_;
  PartitionSelector selector_;
  std::vector<PartitionSelector> gates_;
  std::vector<Mechanism> mechanisms_;   // monostate = kAccounts
  std::vector<int> metric_gate_;        // per metric; kNoGate = none
  std::vector<SamplingSpec> sampling_;  // per metric; empty variance = none
  std::vector<bool> adjusted_;          // per metric
  double confidence_ = 0.95;
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_QUERY_RELEASE_H_
