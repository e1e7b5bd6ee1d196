// Query planning: validates an AggregateRequest against its dataset's
// schema and privacy settings, fills in defaults, and puts it in canonical
// form. The canonical form is what the release cache, the audit log and
// the contribution bounder's key are derived from, so two requests that
// differ only in the order of group_by, filters, filter values or metrics
// are one and the same release.
#ifndef COHORTD_SERVER_QUERY_QUERY_PLAN_H_
#define COHORTD_SERVER_QUERY_QUERY_PLAN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cohortd/v1/cohortd.pb.h"
#include "server/config/config.h"

namespace cohortd {

// Limits that keep one query's cost and response size reasonable.
inline constexpr int kMaxGroupBy = 4;
inline constexpr int kMaxMetrics = 16;
inline constexpr int kMaxQuantiles = 20;
inline constexpr int kMaxFilterValues = 1000;

// The box-plot quantiles used when a QUANTILES metric lists none.
inline const std::vector<double>& DefaultQuantiles() {
  static const std::vector<double>* const q =
      new std::vector<double>{0.05, 0.25, 0.5, 0.75, 0.95};
  return *q;
}

struct QueryPlan {
  const DatasetSpec* dataset = nullptr;  // borrowed from the config
  // The request with defaults resolved (epsilon, confidence, metric
  // names, quantiles) and every list sorted and de-duplicated.
  cohortd::v1::AggregateRequest canonical;
  std::string canonical_bytes;  // deterministic serialization of canonical
  std::string canonical_json;   // readable form, for the audit log
  double epsilon = 0;
  double delta = 0;       // the dataset's per-query delta
  double confidence = 0;
  // Months the query reads (its month filter's values); empty means all.
  std::vector<std::string> months;
  // Metrics that draw noise of their own (all but ACCOUNTS), which share
  // the query's budget with partition selection.
  int noisy_metrics = 0;
};

// Errors: InvalidArgument naming the field (e.g. "metrics[1].measure") and
// the allowed values or range. Thread-safe.
absl::StatusOr<QueryPlan> PlanQuery(const Config& config,
                                    const cohortd::v1::AggregateRequest& req);

}  // namespace cohortd

#endif  // COHORTD_SERVER_QUERY_QUERY_PLAN_H_
