// Renders an AggregateResponse as `cohortctl query` prints it: an aligned
// table, CSV or protobuf JSON (which the other commands use too). Pure
// functions of the response, so they are tested on hand-built responses.
#ifndef COHORTD_TOOLS_COHORTCTL_AGGREGATE_FORMAT_H_
#define COHORTD_TOOLS_COHORTCTL_AGGREGATE_FORMAT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cohortd/v1/cohortd.pb.h"
#include "tools/cohortctl/table_format.h"

namespace cohortd::cohortctl {

// "ε=0.5 δ=1e-09 ρ=0.03125".
std::string FormatCost(const cohortd::v1::PrivacyCost& cost);

// One row per cohort, sorted by key; key columns first (in `group_by`
// order, then any other key dimension alphabetically), then one column per
// metric holding "value [ci_low, ci_high]" with the parts aligned, and for
// QUANTILES one column per quantile headed "NAME qQ". Metrics named in
// `metric_order` come first, in that order, even if no cohort has them;
// the rest as the server sent them. A metric a cohort lacks shows as "-".
Table AggregateTable(const cohortd::v1::AggregateResponse& response,
                     const std::vector<std::string>& group_by,
                     const std::vector<std::string>& metric_order = {});

// AggregateTable, then a footer: cohorts released, release id, whether it
// came from the cache, the cost of this call and the budget remaining.
std::string FormatAggregateText(
    const cohortd::v1::AggregateResponse& response,
    const std::vector<std::string>& group_by,
    const std::vector<std::string>& metric_order = {});

// Header + one row per cohort; each metric as three columns METRIC,
// METRIC_ci_low, METRIC_ci_high (quantiles: METRIC_qQ, ...), in the
// order of AggregateTable, numbers in full precision.
std::string FormatAggregateCsv(
    const cohortd::v1::AggregateResponse& response,
    const std::vector<std::string>& group_by,
    const std::vector<std::string>& metric_order = {});

// Any response in the protobuf JSON mapping, indented, with default values
// printed (so "fromCache": false is explicit), ending in a newline. Fails
// only if protobuf does.
absl::StatusOr<std::string> FormatJson(
    const google::protobuf::Message& message);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_AGGREGATE_FORMAT_H_
