// The seven figures of the study (shared/design/DOMAIN.md) as data: the
// Aggregate requests that answer each, and the pure post-processing that
// turns their releases into panels of values with intervals (shares from
// noisy counts, top-N, box-plot quantiles), the cohorts each release left
// out, and, given the synthetic ground truth, the raw value behind every
// number shown. `cohortctl report` prints the panels as tables and
// report_html.h draws them; nothing here talks to the server.
#ifndef COHORTD_TOOLS_COHORTCTL_REPORT_REPORT_FIGURES_H_
#define COHORTD_TOOLS_COHORTCTL_REPORT_REPORT_FIGURES_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cohortd/v1/cohortd.pb.h"
#include "tools/cohortctl/report/truth.h"

namespace cohortd::cohortctl {

// How a panel is drawn; the table is the same for all.
enum class ChartKind {
  kStackedShares,   // rows: categories stacked; columns: one bar each
  kBoxPlot,         // rows: boxes; columns: kBoxColumns
  kGroupedBars,     // rows: groups on the x axis; columns: bars per group
  kHorizontalBars,  // rows: bars; only the first column is drawn
  kLines,           // rows: one line each; columns: x positions
};

// The columns of a kBoxPlot panel, in this order.
inline constexpr const char* kBoxColumns[] = {"p5",  "p25", "median",
                                              "p75", "p95", "mean"};

// One released number: value and interval; `truth` when a ground truth
// was given and has the cohort (raw: before bounding and clamping).
struct Cell {
  double value = 0;
  double low = 0;
  double high = 0;
  std::optional<double> truth;
  // An adjusted metric (Metric.adjust_for): its truth is the exact
  // fixed-effects fit on the truth rows (GroundTruth::Compute).
  bool adjusted = false;
};

// A table of cells, [row][column]; a missing cell was not released.
struct Panel {
  std::string title;
  ChartKind chart = ChartKind::kGroupedBars;
  std::string row_label;    // what the rows are, e.g. "expertise"
  std::string value_label;  // the value axis, with its unit
  // Per column: values are fractions, shown as percent.
  std::vector<bool> percent;
  std::vector<std::string> rows;
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<Cell>>> cells;
};

// One figure's requests.
struct FigureSpec {
  int number = 0;
  std::string title;
  std::vector<cohortd::v1::AggregateRequest> queries;
};

// One figure, built from its releases.
struct FigureResult {
  int number = 0;
  std::string title;
  std::vector<Panel> panels;
  std::vector<std::string> notes;  // caveats shown under the figure
  double epsilon = 0;              // sum of its releases' reported epsilon
  bool from_cache = false;         // every release came from the cache
  // Per release, e.g. "occupation: 21 of 23 cohorts released; not
  // released: farming_fishing_forestry, legal".
  std::vector<std::string> suppression;
};

// The controls of the adjusted figures 4 and 7, as in the study ("the same
// work mode, task-value band, month, ... and user type"): the work mode,
// the config's band of task_value_usd (kValueBand, edges kValueBandEdges,
// config/cohortd.yaml `bands`) and the occupation (the user type: software
// or not, and finer). The month is added by AdjustForMonths, since
// cohortd adjusts for it only over listed months.
inline constexpr const char* kAdjustControls[] = {
    "work_mode", "task_value_band", "occupation"};
inline constexpr const char* kValueBand = "task_value_band";
inline constexpr const char* kValueBandMeasure = "task_value_usd";
inline constexpr double kValueBandEdges[] = {50, 200, 1000};

// The figures, in DOMAIN.md's order, on `dataset`. Figures 4 and 7 ask
// each rate twice: raw with NOISE_AND_SAMPLING intervals (query 0), and
// adjusted for kAdjustControls (query 1, noise-only intervals, epsilon 2).
// Their epsilons add up to 13.5 (at most 2 per query); repeating the
// report on unchanged data is free.
std::vector<FigureSpec> StudyFigures(const std::string& dataset);

// The months among `response`'s cohort keys, sorted (a DP output: figure
// 1's released months).
std::vector<std::string> ReleasedMonths(
    const cohortd::v1::AggregateResponse& response);

// Adds the month to the controls of every adjusted metric of `spec`, with
// the filter month in `months` that cohortd needs to know its levels (so
// the figure's population is the sessions of those months). No-op when
// `months` is empty or no metric is adjusted.
void AdjustForMonths(const std::vector<std::string>& months, FigureSpec* spec);

// Builds figure `spec` from `responses` (one per spec.queries, same order).
// `truths` is empty, or holds GroundTruth::Compute of each query; then
// every cell gets its raw truth. `description` gives the closed domains
// that the suppression lines count against. Fails with INVALID_ARGUMENT if
// the sizes disagree.
absl::StatusOr<FigureResult> BuildFigure(
    const FigureSpec& spec,
    const std::vector<cohortd::v1::AggregateResponse>& responses,
    const std::vector<TruthByCohort>& truths,
    const cohortd::v1::DatasetDescription& description);

// What the error bars of `spec` cover, one line per distinct kind among
// its queries (BuildFigure appends them to the notes): the confidence
// level, NOISE (the DP noise only, on the bounded data) or
// NOISE_AND_SAMPLING (the population value), and the population the
// filters and measure filters select.
std::vector<std::string> ErrorBarNotes(const FigureSpec& spec);

// Shares of one group's counts: share_i = c_i / sum_j c_j (negative noisy
// counts taken as 0), with the conservative interval
//   [lo_i / (lo_i + sum_{j!=i} hi_j),  hi_i / (hi_i + sum_{j!=i} lo_j)]
// which holds whenever every count's interval does (the share is
// increasing in c_i and decreasing in each other c_j). A share's truth is
// truth_i / sum_j truth_j when every count has one. Empty in, empty out.
std::vector<Cell> SharesOf(const std::vector<Cell>& counts);

// The released cohorts of `response` (to `request`) that have fewer than
// `k` distinct accounts in `truth` (absent from it: none at all), each as
// "dim=value,... has N accounts" ("(all)" without group_by). Any entry
// means the server broke its k-anonymity promise.
std::vector<std::string> CohortsBelowK(
    const cohortd::v1::AggregateRequest& request,
    const cohortd::v1::AggregateResponse& response, const TruthByCohort& truth,
    int k);

// How many cells with a truth fall inside their interval.
struct Coverage {
  int inside = 0;
  int checked = 0;
};
Coverage CoverageOf(const FigureResult& figure);

// The honesty check of the adjusted cells of `figure`, one line each:
// the release, the exact fixed-effects fit on the truth (the simulation's
// planted effects as this model sees them) and whether their distance is
// within the released interval's reach on that side (the tolerance is the
// interval: a 95% interval misses by chance 1 time in 20). `misses` (may
// be null) is incremented per adjusted cell outside.
std::vector<std::string> AdjustedHonesty(const FigureResult& figure,
                                         int* misses);

// The figure as text: a heading, each panel as an aligned table (shares
// and rates in percent; "v [lo, hi]" cells, "v ±h" with h the larger
// half-width when a panel has more than three columns), the epsilon spent,
// the suppression lines and the notes.
std::string FormatFigureText(const FigureResult& figure);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_REPORT_REPORT_FIGURES_H_
