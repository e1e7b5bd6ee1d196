// Query planning: validates an AggregateRequest against its dataset's
// schema and privacy settings, fills in defaults, and puts it in canonical
// form. The canonical form is what the release cache, the audit log and
// the contribution bounder's key are derived from, so two requests that
// differ only in the order of group_by, filters, filter values or metrics
// are one and the same release.
#ifndef COHORTD_SERVER_ENGINE_QUERY_PLAN_H_
#define COHORTD_SERVER_ENGINE_QUERY_PLAN_H_

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
  double delta = 0;  // the dataset's per-query delta
  double confidence = 0;
  // Months the query reads (its month filter's values); empty means all.
  std::vector<std::string> months;
  // Metrics that draw noise of their own (all but ACCOUNTS), which share
  // the query's budget with partition selection; with interval
  // NOISE_AND_SAMPLING each counts twice (it also releases its private
  // sampling-variance estimate).
  int noisy_metrics = 0;
  // The L0 the query's sensitivities and partition selection's delta use:
  // min(configured L0, the number of cohorts the public domains allow),
  // i.e. the product over the group-by dimensions of their domain sizes
  // after the filters (1 without group-by; an open domain or the month,
  // unless filtered to listed values, is unbounded). An account cannot
  // touch more cohorts than exist, so this bound is exact, not a guess.
  int max_cohorts_per_account = 0;
  // Contributor gates (privacy/query_release.h): the sessions a gated
  // metric reads are those carrying `measure` (SUM, MEAN, QUANTILES) or,
  // when `measure` is empty, a value of dimension `label` (RATE). One gate
  // per distinct set, in first-use order of the canonical metrics.
  // An adjusted metric's gate (Metric.adjust_for) also requires a level of
  // every control: it counts the accounts whose kept sessions enter the
  // regression, so no adjusted value rests on fewer than k accounts
  // (`controls`: the control names, canonical order; `controls_of`: a
  // canonical metric with those controls, whose levels the executor uses).
  struct ContributorGate {
    std::string measure;
    std::string label;
    std::vector<std::string> controls;
    int controls_of = -1;
  };
  std::vector<ContributorGate> gates;
  // Per canonical metric: its gate's index, or -1 when its contributing
  // accounts are the cohort's (SESSIONS, ACCOUNTS, and an unadjusted RATE
  // whose label dimension is grouped by, filtered or derived, so every
  // session of the cohort carries it).
  std::vector<int> metric_gates;
  // Metric.adjust_for: per canonical metric (shorter when no later metric
  // is adjusted), its controls in canonical (sorted) order with their
  // public levels: a band's, a filtered dimension's listed values, or a
  // closed dimension's domain.
  struct Control {
    std::string name;
    const BandSpec* band = nullptr;  // borrowed from the config
    std::vector<std::string> levels;
  };
  std::vector<std::vector<Control>> metric_controls;
  // The controls of canonical metric `i` (empty: not adjusted).
  const std::vector<Control>& ControlsOf(int i) const {
    static const std::vector<Control>* const kNone = new std::vector<Control>;
    return static_cast<size_t>(i) < metric_controls.size() ? metric_controls[i]
                                                           : *kNone;
  }
  // Measure filters (AggregateRequest.measure_filters), sorted by measure:
  // a session is kept only if it carries the measure and its stored
  // (clamped, fixed-point) value v satisfies lower_fp <= v <= upper_fp.
  // They apply before contribution bounding: the filtered sessions are
  // the population the query reads. The canonical request lists each as
  // {measure, at_least: lower_fp * g, at_most: upper_fp * g}, so filters
  // that keep the same values are one question ("above 0" and "at_least
  // 1" for a measure in whole units).
  struct MeasureRange {
    std::string measure;
    int64_t lower_fp = 0;
    int64_t upper_fp = 0;
  };
  std::vector<MeasureRange> measure_ranges;
  // Accuracy-first (AggregateRequest.accuracy): the epsilon was chosen by
  // ChooseEpsilonForAccuracy and is the canonical epsilon; the request's
  // accuracy is not part of the canonical form (the same epsilon asked
  // directly is the same release).
  bool accuracy_first = false;
  // The asking principal's budget (config PrivacySpec::PrincipalBudget):
  // the noise chooser keeps at least as many such queries affordable in
  // it as the Gaussian plan (privacy/query_release.h). Public config, so
  // the choice still depends on no record.
  BudgetSpec principal_budget;
};

// With `accuracy` set (and epsilon 0) the epsilon is the smallest that
// gives every metric a predicted interval half-width <= accuracy.half_width
// for a cohort of accuracy.cohort_sessions sessions (executor.h
// ChooseEpsilonForAccuracy); it must not exceed max_epsilon.
// Errors: InvalidArgument naming the field (e.g. "metrics[1].measure") and
// the allowed values or range; FailedPrecondition naming the epsilon
// needed when an accuracy needs more than max_epsilon. `principal`: who
// asks (its budget guards the noise chooser; empty = the dataset's
// default principal budget). Thread-safe.
absl::StatusOr<QueryPlan> PlanQuery(const Config& config,
                                    const cohortd::v1::AggregateRequest& req,
                                    absl::string_view principal = {});

}  // namespace cohortd

#endif  // COHORTD_SERVER_ENGINE_QUERY_PLAN_H_
