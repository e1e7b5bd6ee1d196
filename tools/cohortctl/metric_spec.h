// The small languages of `cohortctl query`'s flags, parsed into the
// request's protos:
//   --metric   [NAME=]sessions | accounts | sum:MEASURE | mean:MEASURE |
//              geomean:MEASURE | rate:DIM=V1,V2 |
//              quantiles:MEASURE[:Q1,Q2,...]
//   --filter   DIM=V1,V2 | MEASURE>V | MEASURE>=V | MEASURE<V | MEASURE<=V
//   --accuracy HALF_WIDTH@SESSIONS
//   --interval noise | noise_and_sampling
//   --adjust-for DIM1,DIM2   (every RATE and MEAN metric)
//   --group-by DIM1,DIM2
// Only the syntax is checked here; whether a dimension or measure exists is
// the server's call (its INVALID_ARGUMENT names the allowed values).
#ifndef COHORTD_TOOLS_COHORTCTL_METRIC_SPEC_H_
#define COHORTD_TOOLS_COHORTCTL_METRIC_SPEC_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cohortd/v1/cohortd.pb.h"

namespace cohortd::cohortctl {

// Quantiles asked when `quantiles:MEASURE` names none: a box plot's
// whiskers (5th/95th percentile) and box.
inline constexpr double kDefaultQuantiles[] = {0.05, 0.25, 0.5, 0.75, 0.95};

// Parses one --metric. A leading "NAME=" sets Metric.name; it is told apart
// from rate's "DIM=" by containing no ':'. Fails with INVALID_ARGUMENT on
// an unknown kind, a missing or extra argument, or a quantile outside
// (0, 1).
absl::StatusOr<cohortd::v1::Metric> ParseMetricSpec(absl::string_view spec);

// The output name of `metric`: its own name, else the one the server
// derives ("sessions", "mean_prompts", "rate_outcome_success_partial",
// ...). Used only to print columns in the order they were asked, since the
// server returns metrics in its canonical order; a wrong guess costs
// nothing but that order.
std::string MetricOutputName(const cohortd::v1::Metric& metric);

// Parses "DIM=V1,V2" (one --filter, or rate's argument). Values are kept
// verbatim (trimmed); empty ones are an error.
absl::StatusOr<cohortd::v1::Filter> ParseFilterSpec(absl::string_view spec);

// True when a --filter is a measure filter (it contains '<' or '>').
bool IsMeasureFilterSpec(absl::string_view spec);

// Adds one measure --filter ("lines_added>0", "failure_signal>=3",
// "prompts<10", "task_value_usd<=500") to `request`: two filters on one
// measure make one range (e.g. "x>=1" and "x<5"). Fails with
// INVALID_ARGUMENT on bad syntax or a second lower (upper) bound.
absl::Status AddMeasureFilterSpec(absl::string_view spec,
                                  cohortd::v1::AggregateRequest* request);

// Parses --accuracy "HALF_WIDTH@SESSIONS" (e.g. "0.05@2000"): the
// interval half-width wanted for cohorts of that many sessions.
// INVALID_ARGUMENT unless both are positive.
absl::StatusOr<cohortd::v1::Accuracy> ParseAccuracySpec(absl::string_view spec);

// Parses --interval: "noise" (the DP noise only, the default) or
// "noise_and_sampling" (the population value: noise and the sampling error
// clustered by account). Case-insensitive; anything else is
// INVALID_ARGUMENT naming both.
absl::StatusOr<cohortd::v1::IntervalKind> ParseIntervalSpec(
    absl::string_view spec);

// Applies --adjust-for "DIM1,DIM2" to `request`: every RATE and MEAN metric
// gets Metric.adjust_for = the listed controls (fixed effects; the value
// is reported at the overall mix of the controls). Call after the metrics,
// group_by and interval are set. INVALID_ARGUMENT when the list is empty
// or names a dimension twice, when no metric is a RATE or MEAN, when a
// control is also grouped by (it would be constant within a cohort), or
// when the interval is NOISE_AND_SAMPLING (cohortd gives adjusted metrics
// noise-only intervals and refuses that combination).
absl::Status ApplyAdjustFor(absl::string_view spec,
                            cohortd::v1::AggregateRequest* request);

// Parses "DIM1,DIM2". A dimension named twice is an error.
absl::StatusOr<std::vector<std::string>> ParseGroupBy(absl::string_view spec);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_METRIC_SPEC_H_
