#include "tools/cohortctl/report/report_figures.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tools/cohortctl/metric_spec.h"
#include "tools/cohortctl/table_format.h"

namespace cohortd::cohortctl {
namespace {

using cohortd::v1::AggregateRequest;
using cohortd::v1::AggregateResponse;
using cohortd::v1::Cohort;
using cohortd::v1::DatasetDescription;
using cohortd::v1::Estimate;
using cohortd::v1::Metric;

// Work-mode counts are asked at this level so that, by the union bound
// over the nine counts of a month, a share's interval (SharesOf) holds with
// at least 95%.
constexpr double kShareConfidence = 1 - 0.05 / 9;

Metric Sessions(const std::string& name) {
  Metric metric;
  metric.set_kind(Metric::SESSIONS);
  metric.set_name(name);
  return metric;
}

Metric Rate(const std::string& name, const std::string& dimension,
            const std::vector<std::string>& values) {
  Metric metric;
  metric.set_kind(Metric::RATE);
  metric.set_name(name);
  metric.mutable_rate_of()->set_dimension(dimension);
  for (const std::string& v : values) metric.mutable_rate_of()->add_any_of(v);
  return metric;
}

// `metric`, adjusted for kAdjustControls, named `name`.
Metric Adjusted(Metric metric, const std::string& name) {
  metric.set_name(name);
  for (const char* control : kAdjustControls) metric.add_adjust_for(control);
  return metric;
}

Metric MeasureMetric(Metric::Kind kind, const std::string& name,
                     const std::string& measure) {
  Metric metric;
  metric.set_kind(kind);
  metric.set_name(name);
  metric.set_measure(measure);
  if (kind == Metric::QUANTILES) {
    for (double q : kDefaultQuantiles) metric.add_quantiles(q);
  }
  return metric;
}

AggregateRequest Request(const std::string& dataset,
                         const std::vector<std::string>& group_by,
                         const std::vector<Metric>& metrics, double epsilon) {
  AggregateRequest request;
  request.set_dataset(dataset);
  for (const std::string& g : group_by) request.add_group_by(g);
  for (const Metric& m : metrics) *request.add_metrics() = m;
  request.set_epsilon(epsilon);
  return request;
}

// The values of `cohort`'s key in `request`'s group_by order.
CohortKey KeyOf(const Cohort& cohort, const AggregateRequest& request) {
  CohortKey key;
  for (const std::string& dimension : request.group_by()) {
    auto it = cohort.key().find(dimension);
    key.push_back(it == cohort.key().end() ? "" : it->second);
  }
  return key;
}

const Estimate* FindEstimate(const Cohort& cohort, const std::string& name) {
  for (const Estimate& e : cohort.estimates()) {
    if (e.metric() == name) return &e;
  }
  return nullptr;
}

// Reads one query's releases (and truths) by cohort key.
class Release {
 public:
  Release(const AggregateRequest& request, const AggregateResponse& response,
          const TruthByCohort* truth)
      : request_(request), response_(response), truth_(truth) {}

  const AggregateResponse& response() const { return response_; }

  const Cohort* Find(const CohortKey& key) const {
    for (const Cohort& cohort : response_.cohorts()) {
      if (KeyOf(cohort, request_) == key) return &cohort;
    }
    return nullptr;
  }

  // The value of metric `name` (quantile index `q`, or -1) in cohort `key`.
  std::optional<Cell> Get(const CohortKey& key, const std::string& name,
                          int q = -1) const {
    const Cohort* cohort = Find(key);
    if (cohort == nullptr) return std::nullopt;
    const Estimate* estimate = FindEstimate(*cohort, name);
    if (estimate == nullptr) return std::nullopt;
    Cell cell;
    if (q < 0) {
      cell = {estimate->value(), estimate->ci_low(), estimate->ci_high(), {}};
    } else {
      if (q >= estimate->quantiles_size()) return std::nullopt;
      const auto& quantile = estimate->quantiles(q);
      cell = {quantile.value(), quantile.ci_low(), quantile.ci_high(), {}};
    }
    cell.truth = Truth(key, name, q);
    for (const Metric& metric : request_.metrics()) {
      if (MetricOutputName(metric) == name) {
        cell.adjusted = !metric.adjust_for().empty();
      }
    }
    return cell;
  }

  // Values seen for `dimension` among the released cohorts, sorted.
  std::vector<std::string> ReleasedValues(const std::string& dimension) const {
    std::set<std::string> values;
    for (const Cohort& cohort : response_.cohorts()) {
      auto it = cohort.key().find(dimension);
      if (it != cohort.key().end()) values.insert(it->second);
    }
    return {values.begin(), values.end()};
  }

 private:
  std::optional<double> Truth(const CohortKey& key, const std::string& name,
                              int q) const {
    if (truth_ == nullptr) return std::nullopt;
    auto cohort = truth_->find(key);
    if (cohort == truth_->end()) return std::nullopt;
    auto metric = cohort->second.metrics.find(name);
    if (metric == cohort->second.metrics.end()) return std::nullopt;
    const double value =
        q < 0 ? metric->second.value
              : (q < static_cast<int>(metric->second.quantiles.size())
                     ? metric->second.quantiles[q]
                     : NAN);
    if (std::isnan(value)) return std::nullopt;
    return value;
  }

  const AggregateRequest& request_;
  const AggregateResponse& response_;
  const TruthByCohort* truth_;
};

std::vector<std::string> DomainOf(const DatasetDescription& description,
                                  const std::string& dimension) {
  for (const auto& d : description.dimensions()) {
    if (d.name() == dimension) return {d.values().begin(), d.values().end()};
  }
  return {};
}

// "occupation: 21 of 23 cohorts released; not released: a, b". Closed
// domains count against their public values; a derived dimension (month)
// against the values seen in this release, since its domain is not
// published; an open domain's unreleased values are unknowable and are
// not counted.
std::string SuppressionLine(const AggregateRequest& request,
                            const Release& release,
                            const DatasetDescription& description) {
  std::vector<std::string> names;
  int64_t possible = 1;
  bool open = false;
  for (const std::string& dimension : request.group_by()) {
    names.push_back(dimension);
    const auto it = std::find_if(
        description.dimensions().begin(), description.dimensions().end(),
        [&](const auto& d) { return d.name() == dimension; });
    if (it == description.dimensions().end() || it->open_domain()) {
      open = true;
    } else if (it->derived()) {
      possible *=
          static_cast<int64_t>(release.ReleasedValues(dimension).size());
    } else {
      possible *= it->values_size();
    }
  }
  const std::string what =
      names.empty() ? "all sessions" : absl::StrJoin(names, " x ");
  const int released = release.response().cohorts_size();
  if (open) {
    return absl::StrCat(what, ": ", released,
                        " cohorts released (open domain: the unreleased are "
                        "not known)");
  }
  std::string line =
      absl::StrCat(what, ": ", released, " of ", possible, " cohorts released");
  if (request.group_by_size() == 1 && released < possible) {
    std::vector<std::string> missing;
    for (const std::string& value :
         DomainOf(description, request.group_by(0))) {
      if (release.Find({value}) == nullptr) missing.push_back(value);
    }
    absl::StrAppend(&line, "; not released: ", absl::StrJoin(missing, ", "));
  }
  return line;
}

Panel MakePanel(const std::string& title, ChartKind chart,
                const std::string& row_label, const std::string& value_label,
                bool percent, std::vector<std::string> rows,
                std::vector<std::string> columns) {
  Panel panel;
  panel.title = title;
  panel.chart = chart;
  panel.row_label = row_label;
  panel.value_label = value_label;
  panel.percent.assign(columns.size(), percent);
  panel.rows = std::move(rows);
  panel.columns = std::move(columns);
  panel.cells.assign(panel.rows.size(),
                     std::vector<std::optional<Cell>>(panel.columns.size()));
  return panel;
}

// Shares within each group of a counts release, as column `column` of
// `panel`, whose rows are the categories. `group_key(category)` gives the
// cohort key of a category in that group.
template <typename KeyFn>
void FillShares(const Release& release, const std::string& metric,
                KeyFn group_key, size_t column, Panel* panel) {
  std::vector<Cell> counts;
  std::vector<size_t> rows;
  for (size_t r = 0; r < panel->rows.size(); ++r) {
    std::optional<Cell> cell = release.Get(group_key(panel->rows[r]), metric);
    if (!cell) continue;
    counts.push_back(*cell);
    rows.push_back(r);
  }
  const std::vector<Cell> shares = SharesOf(counts);
  for (size_t i = 0; i < rows.size(); ++i) {
    panel->cells[rows[i]][column] = shares[i];
  }
}

// A box-plot panel of the QUANTILES metric `name` and the MEAN metric
// `mean_name`, one row per key of `keys` (labelled by `labels`).
Panel BoxPanel(const std::string& title, const std::string& row_label,
               const std::string& value_label, bool percent,
               const Release& release, const std::vector<CohortKey>& keys,
               const std::vector<std::string>& labels,
               const std::vector<std::string>& names,
               const std::vector<std::string>& mean_names) {
  Panel panel =
      MakePanel(title, ChartKind::kBoxPlot, row_label, value_label, percent,
                labels, {std::begin(kBoxColumns), std::end(kBoxColumns)});
  for (size_t r = 0; r < keys.size(); ++r) {
    for (int q = 0; q < 5; ++q) {
      panel.cells[r][q] = release.Get(keys[r], names[r], q);
    }
    panel.cells[r][5] = release.Get(keys[r], mean_names[r]);
  }
  return panel;
}

// What the adjusted columns of `query` are, naming its controls.
std::string AdjustmentNote(const AggregateRequest& query) {
  std::vector<std::string> controls;
  for (const Metric& metric : query.metrics()) {
    if (!metric.adjust_for().empty()) {
      controls.assign(metric.adjust_for().begin(), metric.adjust_for().end());
    }
  }
  if (controls.empty()) return "Not adjusted.";
  return absl::StrCat(
      "Adjusted columns: a linear model with fixed effects for ",
      absl::StrJoin(controls, ", "),
      " (comparing sessions alike in those), fitted on noisy sufficient "
      "statistics and reported at the overall mix of the controls; their "
      "error bars cover the DP noise of that fit only (the model is "
      "assumed, sampling error is not included), so they are wider than "
      "the raw ones but not comparable to a study's clustered intervals.");
}

std::string FormatNumber(double value, bool percent) {
  return percent ? absl::StrFormat("%.1f", value * 100) : HumanNumber(value);
}

}  // namespace

std::vector<FigureSpec> StudyFigures(const std::string& dataset) {
  std::vector<FigureSpec> figures;
  {
    FigureSpec f{1, "Share of sessions by work mode, overall and by month", {}};
    f.queries.push_back(
        Request(dataset, {"work_mode"}, {Sessions("sessions")}, 0.5));
    f.queries.push_back(
        Request(dataset, {"month", "work_mode"}, {Sessions("sessions")}, 1.0));
    for (AggregateRequest& q : f.queries) q.set_confidence(kShareConfidence);
    figures.push_back(std::move(f));
  }
  figures.push_back(
      {2,
       "Human share of planning vs implementation decisions",
       {Request(
           dataset, {},
           {MeasureMetric(Metric::QUANTILES, "planning", "planning_user_share"),
            MeasureMetric(Metric::QUANTILES, "implementation",
                          "implementation_user_share"),
            MeasureMetric(Metric::MEAN, "mean_planning", "planning_user_share"),
            MeasureMetric(Metric::MEAN, "mean_implementation",
                          "implementation_user_share")},
           1.0)}});
  figures.push_back(
      {3,
       "Actions and words per prompt by expertise",
       {Request(
           dataset, {"expertise"},
           {MeasureMetric(Metric::QUANTILES, "actions_per_prompt",
                          "actions_per_prompt"),
            MeasureMetric(Metric::QUANTILES, "words_per_prompt",
                          "words_per_prompt"),
            MeasureMetric(Metric::GEOMETRIC_MEAN, "geomean_actions_per_prompt",
                          "actions_per_prompt"),
            MeasureMetric(Metric::GEOMETRIC_MEAN, "geomean_words_per_prompt",
                          "words_per_prompt")},
           1.5)}});
  {
    // Two releases: the raw rates with the study's kind of interval (noise
    // and clustered sampling), and the adjusted ones, which cohortd gives
    // noise-only intervals, at the largest epsilon a query may spend (the
    // fit's noise grows with the number of controls).
    const Metric verified =
        Rate("verified_success", "verified_success", {"true"});
    const Metric partial =
        Rate("at_least_partial", "outcome", {"success", "partial"});
    FigureSpec f{4,
                 "Success by expertise, raw and adjusted",
                 {Request(dataset, {"expertise"}, {verified, partial}, 1.0),
                  Request(dataset, {"expertise"},
                          {Adjusted(verified, "verified_success_adjusted"),
                           Adjusted(partial, "at_least_partial_adjusted")},
                          2.0)}};
    f.queries[0].set_interval(cohortd::v1::NOISE_AND_SAMPLING);
    figures.push_back(std::move(f));
  }
  {
    // As in the study: among sessions that added at least one line.
    FigureSpec f{
        5,
        "Verified success by occupation, sessions with >= 1 line "
        "added (top 10 by sessions)",
        {Request(dataset, {"occupation"},
                 {Sessions("sessions"),
                  Rate("verified_success", "verified_success", {"true"})},
                 1.5)}};
    // As the study's 95% intervals: for the population value, sampling
    // error clustered by account included.
    f.queries[0].set_interval(cohortd::v1::NOISE_AND_SAMPLING);
    auto* lines = f.queries[0].add_measure_filters();
    lines->set_measure("lines_added");
    lines->set_at_least(1);
    figures.push_back(std::move(f));
  }
  figures.push_back({6,
                     "Average task value by month and work mode",
                     {Request(dataset, {"month", "work_mode"},
                              {MeasureMetric(Metric::MEAN, "task_value_usd",
                                             "task_value_usd")},
                              2.0)}});
  {
    // Problem sessions as in the study: failure signal above 3.
    const Metric abandoned = Rate("abandoned", "abandoned", {"true"});
    FigureSpec f{7,
                 "Abandonment among problem sessions (failure signal > 3) "
                 "by expertise, raw and adjusted",
                 {Request(dataset, {"expertise"}, {abandoned}, 1.0),
                  Request(dataset, {"expertise"},
                          {Adjusted(abandoned, "abandoned_adjusted")}, 2.0)}};
    f.queries[0].set_interval(cohortd::v1::NOISE_AND_SAMPLING);
    for (AggregateRequest& q : f.queries) {
      auto* problem = q.add_measure_filters();
      problem->set_measure("failure_signal");
      problem->set_above(3);
    }
    figures.push_back(std::move(f));
  }
  return figures;
}

std::vector<std::string> ReleasedMonths(const AggregateResponse& response) {
  std::set<std::string> months;
  for (const Cohort& cohort : response.cohorts()) {
    auto it = cohort.key().find("month");
    if (it != cohort.key().end()) months.insert(it->second);
  }
  return {months.begin(), months.end()};
}

void AdjustForMonths(const std::vector<std::string>& months, FigureSpec* spec) {
  if (months.empty()) return;
  for (AggregateRequest& query : spec->queries) {
    bool adjusted = false;
    for (Metric& metric : *query.mutable_metrics()) {
      if (metric.adjust_for().empty()) continue;
      if (std::find(metric.adjust_for().begin(), metric.adjust_for().end(),
                    "month") == metric.adjust_for().end()) {
        metric.add_adjust_for("month");
      }
      adjusted = true;
    }
    if (!adjusted) continue;
    auto* filter = query.add_filters();
    filter->set_dimension("month");
    for (const std::string& month : months) filter->add_any_of(month);
  }
}

std::vector<Cell> SharesOf(const std::vector<Cell>& counts) {
  double total = 0, total_low = 0, total_high = 0, total_truth = 0;
  bool all_truths = true;
  for (const Cell& c : counts) {
    total += std::max(0.0, c.value);
    total_low += std::max(0.0, c.low);
    total_high += std::max(0.0, c.high);
    all_truths = all_truths && c.truth.has_value();
    if (c.truth) total_truth += *c.truth;
  }
  auto ratio = [](double part, double whole) {
    return whole > 0 ? part / whole : 0.0;
  };
  std::vector<Cell> shares;
  for (const Cell& c : counts) {
    const double value = std::max(0.0, c.value);
    const double low = std::max(0.0, c.low);
    const double high = std::max(0.0, c.high);
    Cell share;
    share.value = ratio(value, total);
    share.low = ratio(low, low + (total_high - high));
    // With every other count at 0 the share may be all of it.
    share.high =
        high + (total_low - low) > 0 ? high / (high + (total_low - low)) : 1.0;
    if (all_truths && total_truth > 0) share.truth = *c.truth / total_truth;
    shares.push_back(share);
  }
  return shares;
}

absl::StatusOr<FigureResult> BuildFigure(
    const FigureSpec& spec, const std::vector<AggregateResponse>& responses,
    const std::vector<TruthByCohort>& truths,
    const DatasetDescription& description) {
  if (responses.size() != spec.queries.size() ||
      (!truths.empty() && truths.size() != spec.queries.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "figure ", spec.number, " has ", spec.queries.size(), " queries but ",
        responses.size(), " releases and ", truths.size(), " truths"));
  }
  std::vector<Release> releases;
  FigureResult figure;
  figure.number = spec.number;
  figure.title = spec.title;
  figure.from_cache = true;
  for (size_t i = 0; i < responses.size(); ++i) {
    releases.emplace_back(spec.queries[i], responses[i],
                          truths.empty() ? nullptr : &truths[i]);
    figure.epsilon += responses[i].cost().epsilon();
    figure.from_cache = figure.from_cache && responses[i].from_cache();
    figure.suppression.push_back(
        SuppressionLine(spec.queries[i], releases[i], description));
  }
  const std::vector<std::string> expertise = DomainOf(description, "expertise");
  std::vector<CohortKey> expertise_keys;
  for (const std::string& e : expertise) expertise_keys.push_back({e});

  switch (spec.number) {
    case 1: {
      std::vector<std::string> columns = {"all months"};
      const std::vector<std::string> months =
          releases[1].ReleasedValues("month");
      columns.insert(columns.end(), months.begin(), months.end());
      Panel panel =
          MakePanel("Share of sessions by work mode", ChartKind::kStackedShares,
                    "work_mode", "share of sessions (%)", true,
                    DomainOf(description, "work_mode"), columns);
      FillShares(
          releases[0], "sessions",
          [](const std::string& mode) { return CohortKey{mode}; }, 0, &panel);
      for (size_t m = 0; m < months.size(); ++m) {
        FillShares(
            releases[1], "sessions",
            [&](const std::string& mode) {
              return CohortKey{months[m], mode};
            },
            m + 1, &panel);
      }
      figure.panels.push_back(std::move(panel));
      figure.notes.push_back(
          "Shares are post-processing of noisy session counts (free). Each "
          "count's interval is at 99.4%, so a share's interval, which holds "
          "whenever all counts of its column do, has at least 95% coverage.");
      break;
    }
    case 2: {
      figure.panels.push_back(
          BoxPanel("Human share of decisions", "decisions",
                   "share of decisions made by the human (%)", true,
                   releases[0], {{}, {}}, {"planning", "implementation"},
                   {"planning", "implementation"},
                   {"mean_planning", "mean_implementation"}));
      break;
    }
    case 3: {
      const std::vector<std::string> quantiles(expertise.size(),
                                               "actions_per_prompt");
      const std::vector<std::string> means(expertise.size(),
                                           "geomean_actions_per_prompt");
      figure.panels.push_back(BoxPanel(
          "Actions per prompt", "expertise", "actions per prompt", false,
          releases[0], expertise_keys, expertise, quantiles, means));
      const std::vector<std::string> words(expertise.size(),
                                           "words_per_prompt");
      const std::vector<std::string> word_means(expertise.size(),
                                                "geomean_words_per_prompt");
      figure.panels.push_back(
          BoxPanel("Words per prompt", "expertise", "words per prompt", false,
                   releases[0], expertise_keys, expertise, words, word_means));
      for (size_t p = figure.panels.size() - 2; p < figure.panels.size(); ++p) {
        figure.panels[p].columns[5] = "geometric mean";
      }
      figure.notes.push_back(
          "The dot is the geometric mean, as in the study: exp of the DP "
          "mean of ln(x), x clamped to its public bounds with zeros raised "
          "to the measure's smallest positive step (0.01 actions, 0.1 "
          "words); its interval is exp of the mean-of-logs interval.");
      break;
    }
    case 4: {
      const std::vector<std::string> names = {
          "verified_success", "verified_success_adjusted", "at_least_partial",
          "at_least_partial_adjusted"};
      Panel panel = MakePanel("Success by expertise", ChartKind::kGroupedBars,
                              "expertise", "sessions (%)", true, expertise,
                              {"verified success", "verified, adjusted",
                               "at least partial", "partial+, adjusted"});
      for (size_t r = 0; r < expertise.size(); ++r) {
        for (size_t c = 0; c < names.size(); ++c) {
          // Raw columns from the first release, adjusted from the second.
          panel.cells[r][c] = releases[c % 2].Get(expertise_keys[r], names[c]);
        }
      }
      figure.panels.push_back(std::move(panel));
      figure.notes.push_back(AdjustmentNote(spec.queries[1]));
      break;
    }
    case 5: {
      std::vector<std::pair<double, std::string>> by_sessions;
      for (const Cohort& cohort : responses[0].cohorts()) {
        const Estimate* sessions = FindEstimate(cohort, "sessions");
        if (sessions == nullptr) continue;
        by_sessions.emplace_back(-sessions->value(),
                                 KeyOf(cohort, spec.queries[0])[0]);
      }
      std::sort(by_sessions.begin(), by_sessions.end());
      if (by_sessions.size() > 10) by_sessions.resize(10);
      std::vector<std::string> rows;
      for (const auto& [unused, occupation] : by_sessions) {
        rows.push_back(occupation);
      }
      Panel panel = MakePanel(
          "Verified success by occupation", ChartKind::kHorizontalBars,
          "occupation", "verified success (% of sessions with >= 1 line added)",
          true, rows, {"verified success", "sessions"});
      for (size_t r = 0; r < rows.size(); ++r) {
        panel.cells[r][0] = releases[0].Get({rows[r]}, "verified_success");
        panel.cells[r][1] = releases[0].Get({rows[r]}, "sessions");
      }
      panel.percent[1] = false;
      figure.panels.push_back(std::move(panel));
      figure.notes.push_back(
          "Top 10 chosen by the noisy session count (post-processing, "
          "free).");
      break;
    }
    case 6: {
      const std::vector<std::string> months =
          releases[0].ReleasedValues("month");
      Panel panel = MakePanel("Mean task value", ChartKind::kLines, "work_mode",
                              "mean task value (USD)", false,
                              DomainOf(description, "work_mode"), months);
      for (size_t r = 0; r < panel.rows.size(); ++r) {
        for (size_t m = 0; m < months.size(); ++m) {
          panel.cells[r][m] =
              releases[0].Get({months[m], panel.rows[r]}, "task_value_usd");
        }
      }
      figure.panels.push_back(std::move(panel));
      figure.notes.push_back(
          "Task value is clamped to its public bounds, 0 to 5000 USD, and "
          "the noise scales with that range: for typical values of a few "
          "hundred dollars only the largest cohorts (build, fix, operate) "
          "show the trend; a mean of 0 is noise clamped at the bound.");
      break;
    }
    case 7: {
      Panel panel = MakePanel(
          "Abandonment among problem sessions", ChartKind::kGroupedBars,
          "expertise", "abandoned (% of sessions with failure signal > 3)",
          true, expertise, {"abandoned", "abandoned, adjusted"});
      for (size_t r = 0; r < expertise.size(); ++r) {
        panel.cells[r][0] = releases[0].Get(expertise_keys[r], "abandoned");
        panel.cells[r][1] =
            releases[1].Get(expertise_keys[r], "abandoned_adjusted");
      }
      figure.panels.push_back(std::move(panel));
      figure.notes.push_back(AdjustmentNote(spec.queries[1]));
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("no figure number ", spec.number));
  }
  for (std::string& line : ErrorBarNotes(spec)) {
    figure.notes.push_back(std::move(line));
  }
  return figure;
}

std::vector<std::string> ErrorBarNotes(const FigureSpec& spec) {
  // One line per distinct (level, kind, population) among the queries.
  std::vector<std::string> lines;
  for (const AggregateRequest& q : spec.queries) {
    const double level = q.confidence() == 0 ? 0.95 : q.confidence();
    // Figure 1's shares: at least 95% from counts at kShareConfidence.
    std::string line =
        level == kShareConfidence
            ? std::string("Error bars: at least 95% intervals ")
            : absl::StrCat("Error bars: ", absl::StrFormat("%.4g", level * 100),
                           "% intervals ");
    if (q.interval() == cohortd::v1::NOISE_AND_SAMPLING) {
      absl::StrAppend(&line,
                      "for the population value: the DP noise and the "
                      "sampling error clustered by account.");
    } else {
      absl::StrAppend(&line,
                      "of the DP noise only: they cover the value this data "
                      "gives after contribution bounding and clamping, not "
                      "sampling error (a study's clustered 95% intervals are "
                      "wider).");
    }
    std::vector<std::string> filters;
    for (const auto& f : q.measure_filters()) {
      std::string range = f.measure();
      if (f.has_above()) absl::StrAppend(&range, " > ", f.above());
      if (f.has_at_least()) absl::StrAppend(&range, " >= ", f.at_least());
      if (f.has_below()) absl::StrAppend(&range, " < ", f.below());
      if (f.has_at_most()) absl::StrAppend(&range, " <= ", f.at_most());
      filters.push_back(std::move(range));
    }
    for (const auto& f : q.filters()) {
      filters.push_back(
          absl::StrCat(f.dimension(), " in ", absl::StrJoin(f.any_of(), ",")));
    }
    if (!filters.empty()) {
      absl::StrAppend(&line, " Population: sessions with ",
                      absl::StrJoin(filters, " and "), ".");
    }
    if (std::find(lines.begin(), lines.end(), line) == lines.end()) {
      lines.push_back(std::move(line));
    }
  }
  return lines;
}

std::vector<std::string> CohortsBelowK(const AggregateRequest& request,
                                       const AggregateResponse& response,
                                       const TruthByCohort& truth, int k) {
  std::vector<std::string> found;
  for (const cohortd::v1::Cohort& cohort : response.cohorts()) {
    CohortKey key;
    std::string label;
    for (const std::string& dimension : request.group_by()) {
      auto it = cohort.key().find(dimension);
      key.push_back(it == cohort.key().end() ? "" : it->second);
      absl::StrAppend(&label, label.empty() ? "" : ",", dimension, "=",
                      key.back());
    }
    auto it = truth.find(key);
    const int64_t accounts = it == truth.end() ? 0 : it->second.accounts;
    if (accounts < k) {
      found.push_back(absl::StrCat(label.empty() ? "(all)" : label, " has ",
                                   accounts, " accounts"));
    }
  }
  return found;
}

Coverage CoverageOf(const FigureResult& figure) {
  Coverage coverage;
  for (const Panel& panel : figure.panels) {
    for (const auto& row : panel.cells) {
      for (const std::optional<Cell>& cell : row) {
        if (!cell || !cell->truth) continue;
        ++coverage.checked;
        if (*cell->truth >= cell->low && *cell->truth <= cell->high) {
          ++coverage.inside;
        }
      }
    }
  }
  return coverage;
}

std::vector<std::string> AdjustedHonesty(const FigureResult& figure,
                                         int* misses) {
  std::vector<std::string> lines;
  for (const Panel& panel : figure.panels) {
    for (size_t r = 0; r < panel.rows.size(); ++r) {
      for (size_t c = 0; c < panel.columns.size(); ++c) {
        const std::optional<Cell>& cell = panel.cells[r][c];
        if (!cell || !cell->adjusted || !cell->truth) continue;
        const bool pct = panel.percent[c];
        const double distance = *cell->truth - cell->value;
        // The tolerance is the released interval's reach on the truth's side.
        const double reach =
            distance >= 0 ? cell->high - cell->value : cell->value - cell->low;
        const bool inside = std::fabs(distance) <= reach;
        if (!inside && misses != nullptr) ++*misses;
        lines.push_back(absl::StrCat(
            "figure ", figure.number, " ", panel.rows[r], " ", panel.columns[c],
            ": released ", FormatNumber(cell->value, pct),
            ", fixed-effects "
            "truth ",
            FormatNumber(*cell->truth, pct), ", off by ",
            FormatNumber(std::fabs(distance), pct), " of a tolerance ",
            FormatNumber(reach, pct), inside ? " (inside)" : " (OUTSIDE)"));
      }
    }
  }
  return lines;
}

std::string FormatFigureText(const FigureResult& figure) {
  std::string out =
      absl::StrCat("Figure ", figure.number, ". ", figure.title, "\n");
  for (const Panel& panel : figure.panels) {
    const bool compact = panel.columns.size() > 3;
    absl::StrAppend(&out, "\n", panel.title, ": ", panel.value_label, "\n");
    Table table;
    table.header.push_back(panel.row_label);
    table.right_aligned.push_back(false);
    for (const std::string& column : panel.columns) {
      table.header.push_back(column);
      table.right_aligned.push_back(true);
    }
    for (size_t r = 0; r < panel.rows.size(); ++r) {
      std::vector<std::string> row = {panel.rows[r]};
      for (size_t c = 0; c < panel.columns.size(); ++c) {
        const std::optional<Cell>& cell = panel.cells[r][c];
        if (!cell) {
          row.push_back("-");
          continue;
        }
        const bool pct = panel.percent[c];
        if (compact) {
          const double half =
              std::max(cell->value - cell->low, cell->high - cell->value);
          row.push_back(absl::StrCat(FormatNumber(cell->value, pct), " ±",
                                     FormatNumber(half, pct)));
        } else {
          row.push_back(absl::StrCat(FormatNumber(cell->value, pct), " [",
                                     FormatNumber(cell->low, pct), ", ",
                                     FormatNumber(cell->high, pct), "]"));
        }
      }
      table.rows.push_back(std::move(row));
    }
    absl::StrAppend(&out, FormatTable(table));
  }
  absl::StrAppend(
      &out, "\nε spent: ", CompactNumber(figure.epsilon),
      figure.from_cache ? " (stored releases: charged nothing)" : "", "\n");
  for (const std::string& line : figure.suppression) {
    absl::StrAppend(&out, "released: ", line, "\n");
  }
  for (const std::string& note : figure.notes) {
    absl::StrAppend(&out, "note: ", note, "\n");
  }
  return out;
}

}  // namespace cohortd::cohortctl
