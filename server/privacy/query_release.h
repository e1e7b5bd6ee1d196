// One query's release, end to end: budget split, partition selection and
// every metric, per cohort. The entry point for the query executor.
//
// QueryReleaser::Create() plans the budget (accountant.h PlanQueryBudget)
// and builds each mechanism once; ReleaseCohort() then runs, for one
// cohort's exact bounded statistics, the k-anonymity + DP partition
// selection and — only if the cohort is released — each metric. Keeping
// the guard here means no metric can be published for an unselected
// cohort. ACCOUNTS reuses partition selection's noisy count (free).
//
// Whole-query privacy: the group-by over all cohorts is
// delta_ps-approximately rho_total-zCDP, i.e. exactly budget().Charge();
// report budget().Reported() as the API's PrivacyCost.
//
// Thread-safety: immutable after Create(); ReleaseCohort() may run on many
// threads at once, each with its own RandomWords.
#ifndef COHORTD_SERVER_PRIVACY_QUERY_RELEASE_H_
#define COHORTD_SERVER_PRIVACY_QUERY_RELEASE_H_

#include <cstdint>
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

namespace cohortd::privacy {

enum class MetricKind { kSessions, kAccounts, kSum, kMean, kRate, kQuantiles };

struct MetricRequest {
  MetricKind kind = MetricKind::kSessions;
  MeasureDomain domain;           // kSum, kMean, kQuantiles
  std::vector<double> quantiles;  // kQuantiles
};

// The public privacy parameters of one query (from the dataset's config
// and the request).
struct QueryPrivacyParams {
  int k = 10;
  ContributionBounds bounds;
  double epsilon = 1.0;
  double delta = 1e-7;
  double confidence = 0.95;
};

// Exact statistics of one cohort for one metric, over the sessions kept by
// contribution bounding, measures in fixed point. Fields a kind does not
// use are ignored.
struct MetricInput {
  int64_t sessions = 0;  // kSessions; kMean (count); kRate (denominator)
  int64_t sum_fp = 0;    // kSum, kMean
  int64_t matching = 0;  // kRate: sessions matching the predicate
  absl::Span<const int64_t> values_fp;  // kQuantiles (borrowed)
};

struct MetricOutput {
  Estimate estimate;                        // all but kQuantiles
  std::vector<QuantileEstimate> quantiles;  // kQuantiles
};

struct CohortRelease {
  bool released = false;
  std::vector<MetricOutput> metrics;  // in request order, when released
};

class QueryReleaser {
 public:
  // Errors: InvalidArgument for bad parameters (k < 1, epsilon <= 0, delta
  // outside (0, 1), confidence outside (0, 1), bad bounds or quantiles).
  static absl::StatusOr<QueryReleaser> Create(
      const QueryPrivacyParams& params, std::vector<MetricRequest> metrics);

  // Decides and, if released, computes every metric of one cohort.
  // `distinct_accounts` is the cohort's true distinct-account count after
  // bounding; `inputs` has one entry per metric, in request order.
  // Errors: InvalidArgument if inputs.size() differs from the metrics';
  // randomness failure; OutOfRange on int64 overflow. On error nothing of
  // the cohort may be published.
  absl::StatusOr<CohortRelease> ReleaseCohort(
      int64_t distinct_accounts, absl::Span<const MetricInput> inputs,
      RandomWords& rng) const;

  // The budget plan: Charge() for the ledger, Reported() for the API.
  const QueryBudget& budget() const { return budget_; }
  const PartitionSelector& partition_selector() const { return selector_; }

 private:
  using Mechanism = std::variant<std::monostate, SessionCountMetric, SumMetric,
                                 MeanMetric, RateMetric, QuantileTree>;

  // Moves a successfully built mechanism into `out`.
  template <typename T>
  static absl::Status Append(absl::StatusOr<T> mechanism,
                             std::vector<Mechanism>* out);

  QueryReleaser(QueryBudget budget, PartitionSelector selector,
                std::vector<Mechanism> mechanisms)
      : budget_(budget),
        selector_(selector),
        mechanisms_(std::move(mechanisms)) {}

  QueryBudget budget_;
  PartitionSelector selector_;
  std::vector<Mechanism> mechanisms_;  // monostate = kAccounts
};

}  // namespace cohortd::privacy

#endif  // COHORTD_SERVER_PRIVACY_QUERY_RELEASE_H_
