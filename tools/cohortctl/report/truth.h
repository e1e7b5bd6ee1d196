// The synthetic ground truth that `cohortctl simulate --truth FILE` writes
// (one CSV row per session, empty cell = absent), and the exact raw value
// of any cohort of an AggregateRequest computed from it. `cohortctl report
// --truth` compares the private releases with these values: it is an
// operator's check on a synthetic population, never an analyst's tool.
#ifndef COHORTD_TOOLS_COHORTCTL_REPORT_TRUTH_H_
#define COHORTD_TOOLS_COHORTCTL_REPORT_TRUTH_H_

#include <cstdint>
#include <istream>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cohortd/v1/cohortd.pb.h"

namespace cohortd::cohortctl {

// One metric of one cohort, raw: no contribution bounding, no clamping.
struct MetricTruth {
  // SESSIONS, ACCOUNTS, SUM; MEAN and RATE (NaN when nothing qualifies).
  double value = 0;
  // QUANTILES: the lower empirical quantile (the ceil(q n)-th smallest
  // value) for each of the metric's quantiles, in request order.
  std::vector<double> quantiles;
};

// One cohort's raw statistics.
struct CohortTruth {
  int64_t accounts = 0;  // distinct accounts
  int64_t sessions = 0;
  std::map<std::string, MetricTruth> metrics;  // by MetricOutputName
};

// A cohort's key: its value of each group_by dimension, in request order.
using CohortKey = std::vector<std::string>;
using TruthByCohort = std::map<CohortKey, CohortTruth>;

// The sessions of a truth CSV, column-wise (dimensions dictionary-coded,
// measures as doubles) so that 400k sessions take tens of megabytes.
// Immutable after Parse: thread-compatible.
class GroundTruth {
 public:
  // Parses the CSV. The header names the columns; `account_id` is required
  // and `session_id` ignored; a column whose every non-empty cell is a
  // number is a measure, any other a dimension. Fields may be quoted (RFC
  // 4180, no line breaks inside). Fails with INVALID_ARGUMENT naming the
  // line on a row of the wrong width, or when account_id is missing.
  static absl::StatusOr<GroundTruth> Parse(std::istream& csv);
  // Parse of a file; NOT_FOUND if it cannot be opened.
  static absl::StatusOr<GroundTruth> ReadFile(const std::string& path);

  size_t sessions() const { return accounts_.size(); }

  // The raw statistics of every cohort `request` would see, with the
  // server's semantics: a session counts if it passes every filter and
  // carries every group_by label; MEAN, SUM and QUANTILES use the sessions
  // carrying the measure, RATE those carrying the predicate's label.
  // Fails with INVALID_ARGUMENT naming a dimension or measure the CSV
  // lacks.
  // Measure filters compare the raw value. GEOMETRIC_MEAN is exp of the
  // mean of ln(max(value, floor)), with the server's floor for zeros (the
  // measure's smallest positive step, SetGeometricFloors), 0 when unset.
  absl::StatusOr<TruthByCohort> Compute(
      const cohortd::v1::AggregateRequest& request) const;

  // Metrics with adjust_for (RATE, MEAN) get the exact least-squares fit of
  // the server's model, without noise, bounding or clamping: y = alpha_c +
  // sum_d beta_{d, level} over the rows of every cohort that carry y and a
  // level of every control, reported as alpha_c + sum_d sum_l w_{d,l}
  // beta_{d,l} at the overall mix w of those rows (the server's mix is
  // over its released cohorts only). NaN when the system is singular or a
  // cohort has no such row. A control is a dimension column or a band
  // (AddBand).

  // Makes `name` a control level of `measure` cut at `edges` (ascending),
  // as the server's config `bands` does: "<e0", "[e0,e1)", ..., ">=eN".
  void AddBand(const std::string& name, const std::string& measure,
               const std::vector<double>& edges);

  // The floors GEOMETRIC_MEAN raises zeros to, as the server does: per
  // measure of `description`, max(lower bound, granularity).
  void SetGeometricFloors(const cohortd::v1::DatasetDescription& description);

 private:
  struct Dimension {
    std::vector<std::string> values;  // code - 1 -> value; code 0: absent
    std::vector<uint32_t> codes;      // per session
  };

  GroundTruth() = default;

  // Per session, the level code (0 = absent) of control `name`: a band
  // (AddBand) or a dimension column. INVALID_ARGUMENT if neither.
  absl::StatusOr<std::vector<uint32_t>> ControlLevels(
      const std::string& name) const;

  std::vector<uint32_t> accounts_;  // per session, dictionary code
  std::map<std::string, Dimension, std::less<>> dimensions_;
  std::map<std::string, std::vector<double>, std::less<>> measures_;
  std::map<std::string, double, std::less<>> geometric_floors_;
  struct Band {
    std::string measure;
    std::vector<double> edges;
  };
  std::map<std::string, Band, std::less<>> bands_;
};

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_REPORT_TRUTH_H_
