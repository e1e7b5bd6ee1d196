#include "server/engine/query_plan.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/json_util.h"
#include "server/common/status_macros.h"
#include "server/privacy/aggregations.h"
#include "server/engine/executor.h"

namespace cohortd {
namespace {

using cohortd::v1::AggregateRequest;
using cohortd::v1::Filter;
using cohortd::v1::Metric;
using PlanGate = QueryPlan::ContributorGate;

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

std::string DimensionNames(const DatasetSpec& ds) {
  std::vector<std::string> names;
  for (const auto& d : ds.dimensions) names.push_back(d.name);
  return absl::StrJoin(names, ", ");
}

std::string MeasureNames(const DatasetSpec& ds) {
  std::vector<std::string> names;
  for (const auto& m : ds.measures) names.push_back(m.name);
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<const DimensionSpec*> FindDimension(const DatasetSpec& ds,
                                                   absl::string_view field,
                                                   const std::string& name) {
  const DimensionSpec* dim = ds.FindDimension(name);
  if (dim == nullptr) {
    return Invalid(field, absl::StrCat("unknown dimension '", name,
                                       "'; dimensions: ", DimensionNames(ds)));
  }
  return dim;
}

bool IsMonth(absl::string_view v) {
  return v.size() == 7 && v[4] == '-' && absl::ascii_isdigit(v[0]) &&
         absl::ascii_isdigit(v[1]) && absl::ascii_isdigit(v[2]) &&
         absl::ascii_isdigit(v[3]) && absl::ascii_isdigit(v[5]) &&
         absl::ascii_isdigit(v[6]) &&
         ((v[5] == '0' && v[6] >= '1') || (v[5] == '1' && v[6] <= '2'));
}

// Validates a filter's values for `dim` and returns them sorted, unique.
absl::StatusOr<std::vector<std::string>> FilterValues(const DimensionSpec& dim,
                                                      absl::string_view field,
                                                      const Filter& filter) {
  if (filter.any_of().empty()) {
    return Invalid(field, "any_of must list at least one value");
  }
  if (filter.any_of_size() > kMaxFilterValues) {
    return Invalid(
        field, absl::StrCat("at most ", kMaxFilterValues, " values allowed"));
  }
  std::set<std::string> values;
  for (const std::string& v : filter.any_of()) {
    if (dim.derived) {
      if (!IsMonth(v)) {
        return Invalid(field,
                       absl::StrCat("'", v, "' is not a month (YYYY-MM)"));
      }
    } else if (dim.open_domain) {
      if (v.empty() || v.size() > static_cast<size_t>(dim.max_length)) {
        return Invalid(field,
                       absl::StrCat("values of '", dim.name, "' have 1 to ",
                                    dim.max_length, " bytes"));
      }
    } else if (std::find(dim.values.begin(), dim.values.end(), v) ==
               dim.values.end()) {
      return Invalid(
          field, absl::StrCat("'", v, "' is not a value of '", dim.name,
                              "'; allowed: ", absl::StrJoin(dim.values, ", ")));
    }
    values.insert(v);
  }
  return std::vector<std::string>(values.begin(), values.end());
}

std::string DefaultName(const Metric& m) {
  switch (m.kind()) {
    case Metric::SESSIONS:
      return "sessions";
    case Metric::ACCOUNTS:
      return "accounts";
    case Metric::SUM:
      return absl::StrCat("sum_", m.measure());
    case Metric::MEAN:
      return absl::StrCat("mean_", m.measure());
    case Metric::RATE:
      return absl::StrCat("rate_", m.rate_of().dimension(), "_",
                          absl::StrJoin(m.rate_of().any_of(), "_"));
    case Metric::QUANTILES:
      return absl::StrCat("quantiles_", m.measure());
    case Metric::GEOMETRIC_MEAN:
      return absl::StrCat("geomean_", m.measure());
    default:
      return "metric";
  }
}

absl::Status PlanMetric(const DatasetSpec& ds, int i, Metric* m) {
  const std::string field = absl::StrCat("metrics[", i, "]");
  const bool needs_measure =
      m->kind() == Metric::SUM || m->kind() == Metric::MEAN ||
      m->kind() == Metric::QUANTILES || m->kind() == Metric::GEOMETRIC_MEAN;
  switch (m->kind()) {
    case Metric::SESSIONS:
    case Metric::ACCOUNTS:
    case Metric::SUM:
    case Metric::MEAN:
    case Metric::RATE:
    case Metric::QUANTILES:
    case Metric::GEOMETRIC_MEAN:
      break;
    default:
      return Invalid(absl::StrCat(field, ".kind"),
                     "must be one of SESSIONS, ACCOUNTS, SUM, MEAN, RATE, "
                     "QUANTILES, GEOMETRIC_MEAN");
  }
  if (!m->adjust_for().empty() && m->kind() != Metric::RATE &&
      m->kind() != Metric::MEAN) {
    return Invalid(absl::StrCat(field, ".adjust_for"),
                   "only RATE and MEAN can be adjusted");
  }
  if (needs_measure) {
    if (ds.FindMeasure(m->measure()) == nullptr) {
      return Invalid(
          absl::StrCat(field, ".measure"),
          absl::StrCat(m->measure().empty() ? std::string("is required")
                                            : absl::StrCat("unknown measure '",
                                                           m->measure(), "'"),
                       "; measures: ", MeasureNames(ds)));
    }
  } else if (!m->measure().empty()) {
    return Invalid(absl::StrCat(field, ".measure"),
                   "only SUM, MEAN, GEOMETRIC_MEAN and QUANTILES take a "
                   "measure");
  }
  if (m->kind() == Metric::GEOMETRIC_MEAN) {
    const MeasureSpec* spec = ds.FindMeasure(m->measure());
    ASSIGN_OR_RETURN(privacy::MeasureDomain domain,
                     privacy::MeasureDomain::Create(spec->lower, spec->upper,
                                                    spec->granularity));
    const int64_t floor_fp =
        privacy::GeometricMeanMetric::FloorFixedPoint(domain);
    if (domain.upper_fp <= floor_fp) {
      return Invalid(
          absl::StrCat(field, ".measure"),
          absl::StrCat("GEOMETRIC_MEAN needs a positive range; '", m->measure(),
                       "' has bounds [", spec->lower, ", ", spec->upper, "]"));
    }
  }
  if (m->kind() == Metric::RATE) {
    const std::string rate_field = absl::StrCat(field, ".rate_of");
    if (m->rate_of().dimension().empty()) {
      return Invalid(rate_field, "RATE needs rate_of (dimension, any_of)");
    }
    ASSIGN_OR_RETURN(const DimensionSpec* dim,
                     FindDimension(ds, absl::StrCat(rate_field, ".dimension"),
                                   m->rate_of().dimension()));
    ASSIGN_OR_RETURN(std::vector<std::string> values,
                     FilterValues(*dim, rate_field, m->rate_of()));
    m->mutable_rate_of()->clear_any_of();
    for (auto& v : values) m->mutable_rate_of()->add_any_of(std::move(v));
  } else if (m->has_rate_of()) {
    return Invalid(absl::StrCat(field, ".rate_of"), "only RATE takes rate_of");
  }
  if (m->kind() == Metric::QUANTILES) {
    std::set<double> qs(m->quantiles().begin(), m->quantiles().end());
    if (qs.empty()) {
      qs.insert(DefaultQuantiles().begin(), DefaultQuantiles().end());
    }
    if (qs.size() > static_cast<size_t>(kMaxQuantiles)) {
      return Invalid(absl::StrCat(field, ".quantiles"),
                     absl::StrCat("at most ", kMaxQuantiles, " allowed"));
    }
    for (double q : qs) {
      if (!(q > 0 && q < 1)) {
        return Invalid(absl::StrCat(field, ".quantiles"),
                       absl::StrCat(q, " is outside (0, 1)"));
      }
    }
    m->clear_quantiles();
    for (double q : qs) m->add_quantiles(q);
  } else if (!m->quantiles().empty()) {
    return Invalid(absl::StrCat(field, ".quantiles"),
                   "only QUANTILES takes quantiles");
  }
  if (m->name().empty()) {
    m->set_name(absl::StrCat(DefaultName(*m),
                             m->adjust_for().empty() ? "" : "_adjusted"));
  }
  return absl::OkStatus();
}

// Metric.adjust_for (issue 11 item 4): validates the controls of canonical
// metric `i`, sorts them, and records their public levels in the plan.
absl::Status PlanAdjustment(
    const DatasetSpec& ds, const std::set<std::string>& group_by,
    const std::map<std::string, std::vector<std::string>>& filters, int i,
    Metric* m, QueryPlan* plan) {
  if (m->adjust_for().empty()) return absl::OkStatus();
  std::vector<QueryPlan::Control> controls;
  const std::string field =
      absl::StrCat("metrics['", m->name(), "'].adjust_for");
  std::set<std::string> names;
  for (const std::string& name : m->adjust_for()) {
    if (!names.insert(name).second) {
      return Invalid(field, absl::StrCat("'", name, "' is repeated"));
    }
    if (group_by.count(name) > 0) {
      return Invalid(field, absl::StrCat("'", name,
                                         "' is grouped by: a cohort cannot "
                                         "be adjusted for its own key"));
    }
    if (m->kind() == Metric::RATE && m->rate_of().dimension() == name) {
      return Invalid(field,
                     absl::StrCat("'", name, "' is the rate's own label"));
    }
  }
  if (names.size() > 8) return Invalid(field, "at most 8 controls");
  for (const std::string& name : names) {
    QueryPlan::Control control;
    control.name = name;
    if (const BandSpec* band = ds.FindBand(name)) {
      control.band = band;
      control.levels = band->levels;
    } else if (const DimensionSpec* dim = ds.FindDimension(name)) {
      auto filtered = filters.find(name);
      if (filtered != filters.end()) {
        control.levels = filtered->second;
      } else if (dim->open_domain) {
        return Invalid(field, absl::StrCat("'", name,
                                           "' has an open domain; filter it "
                                           "to listed values to adjust for "
                                           "it"));
      } else if (dim->derived) {
        return Invalid(field, absl::StrCat("adjusting for '", name,
                                           "' needs a filter on it listing "
                                           "its months (public levels)"));
      } else {
        control.levels = dim->values;
      }
    } else {
      std::vector<std::string> bands;
      for (const auto& b : ds.bands) bands.push_back(b.name);
      return Invalid(field,
                     absl::StrCat("unknown dimension or band '", name,
                                  "'; dimensions: ", DimensionNames(ds),
                                  "; bands: ", absl::StrJoin(bands, ", ")));
    }
    controls.push_back(std::move(control));
  }
  m->clear_adjust_for();
  for (const std::string& name : names) m->add_adjust_for(name);
  if (plan->metric_controls.size() <= static_cast<size_t>(i)) {
    plan->metric_controls.resize(i + 1);
  }
  plan->metric_controls[i] = std::move(controls);
  return absl::OkStatus();
}

// The fixed-point range [lower_fp, upper_fp] of the stored values (clamped
// to the bounds, step g) a measure filter keeps. A stored value is
// fp * g, so with 1e-9 slack for decimal steps (as MeasureDomain):
//   v >= t  <=>  fp >= ceil(t / g)       v >  t  <=>  fp >= floor(t / g) + 1
//   v <= t  <=>  fp <= floor(t / g)      v <  t  <=>  fp <= ceil(t / g) - 1
absl::StatusOr<QueryPlan::MeasureRange> PlanMeasureFilter(
    const DatasetSpec& ds, int i, const cohortd::v1::MeasureFilter& f) {
  const std::string field = absl::StrCat("measure_filters[", i, "]");
  const MeasureSpec* spec = ds.FindMeasure(f.measure());
  if (spec == nullptr) {
    return Invalid(
        absl::StrCat(field, ".measure"),
        absl::StrCat(f.measure().empty()
                         ? std::string("is required")
                         : absl::StrCat("unknown measure '", f.measure(), "'"),
                     "; measures: ", MeasureNames(ds)));
  }
  if (f.has_above() && f.has_at_least()) {
    return Invalid(field, "set at most one of above and at_least");
  }
  if (f.has_below() && f.has_at_most()) {
    return Invalid(field, "set at most one of below and at_most");
  }
  if (!f.has_above() && !f.has_at_least() && !f.has_below() &&
      !f.has_at_most()) {
    return Invalid(field,
                   "set at least one of above, at_least, below, at_most");
  }
  for (const auto& [name, has, value] :
       {std::make_tuple("above", f.has_above(), f.above()),
        std::make_tuple("at_least", f.has_at_least(), f.at_least()),
        std::make_tuple("below", f.has_below(), f.below()),
        std::make_tuple("at_most", f.has_at_most(), f.at_most())}) {
    if (has && !std::isfinite(value)) {
      return Invalid(absl::StrCat(field, ".", name), "must be a finite number");
    }
  }
  const double g = spec->granularity;
  const int64_t bound_lower = std::llround(spec->lower / g);
  const int64_t bound_upper = std::llround(spec->upper / g);
  // In double until clamped to the bounds, so no threshold overflows.
  double lower = static_cast<double>(bound_lower);
  double upper = static_cast<double>(bound_upper);
  if (f.has_at_least()) {
    lower = std::max(lower, std::ceil(f.at_least() / g - 1e-9));
  }
  if (f.has_above()) {
    lower = std::max(lower, std::floor(f.above() / g + 1e-9) + 1);
  }
  if (f.has_at_most()) {
    upper = std::min(upper, std::floor(f.at_most() / g + 1e-9));
  }
  if (f.has_below()) {
    upper = std::min(upper, std::ceil(f.below() / g - 1e-9) - 1);
  }
  if (lower > upper) {
    return Invalid(field,
                   absl::StrCat("keeps no value: the range is empty within '",
                                spec->name, "''s bounds [", spec->lower, ", ",
                                spec->upper, "] in steps of ", g));
  }
  QueryPlan::MeasureRange range;
  range.measure = spec->name;
  range.lower_fp = static_cast<int64_t>(lower);
  range.upper_fp = static_cast<int64_t>(upper);
  return range;
}

}  // namespace

absl::StatusOr<QueryPlan> PlanQuery(const Config& config,
                                    const AggregateRequest& req,
                                    absl::string_view principal) {
  QueryPlan plan;
  plan.dataset = config.FindDataset(req.dataset());
  if (plan.dataset == nullptr) {
    std::vector<std::string> names;
    for (const auto& d : config.datasets) names.push_back(d.name);
    return Invalid("dataset",
                   absl::StrCat("unknown dataset '", req.dataset(),
                                "'; datasets: ", absl::StrJoin(names, ", ")));
  }
  plan.principal_budget = plan.dataset->privacy.PrincipalBudget(principal);
  const DatasetSpec& ds = *plan.dataset;
  const PrivacySpec& privacy = ds.privacy;
  AggregateRequest& c = plan.canonical;
  c.set_dataset(ds.name);

  // group_by
  if (req.group_by_size() > kMaxGroupBy) {
    return Invalid("group_by", absl::StrCat("at most ", kMaxGroupBy,
                                            " dimensions allowed"));
  }
  std::set<std::string> group_by;
  for (int i = 0; i < req.group_by_size(); ++i) {
    RETURN_IF_ERROR(
        FindDimension(ds, absl::StrCat("group_by[", i, "]"), req.group_by(i))
            .status());
    if (!group_by.insert(req.group_by(i)).second) {
      return Invalid(absl::StrCat("group_by[", i, "]"),
                     absl::StrCat("'", req.group_by(i), "' is repeated"));
    }
  }
  for (const auto& g : group_by) c.add_group_by(g);

  // filters
  std::map<std::string, std::vector<std::string>> filters;
  for (int i = 0; i < req.filters_size(); ++i) {
    const std::string field = absl::StrCat("filters[", i, "]");
    ASSIGN_OR_RETURN(const DimensionSpec* dim,
                     FindDimension(ds, absl::StrCat(field, ".dimension"),
                                   req.filters(i).dimension()));
    if (filters.count(dim->name) > 0) {
      return Invalid(field, absl::StrCat("dimension '", dim->name,
                                         "' is filtered twice; list every "
                                         "value in one any_of"));
    }
    ASSIGN_OR_RETURN(filters[dim->name],
                     FilterValues(*dim, field, req.filters(i)));
    if (dim->derived) plan.months = filters[dim->name];
  }
  for (auto& [dimension, values] : filters) {
    Filter* f = c.add_filters();
    f->set_dimension(dimension);
    for (auto& v : values) f->add_any_of(v);
  }

  // metrics
  if (req.metrics().empty()) {
    return Invalid("metrics", "at least one metric is required");
  }
  if (req.metrics_size() > kMaxMetrics) {
    return Invalid("metrics",
                   absl::StrCat("at most ", kMaxMetrics, " metrics allowed"));
  }
  std::vector<Metric> metrics(req.metrics().begin(), req.metrics().end());
  std::set<std::string> names;
  for (size_t i = 0; i < metrics.size(); ++i) {
    RETURN_IF_ERROR(PlanMetric(ds, static_cast<int>(i), &metrics[i]));
    if (!names.insert(metrics[i].name()).second) {
      return Invalid(absl::StrCat("metrics[", i, "].name"),
                     absl::StrCat("'", metrics[i].name(),
                                  "' names two metrics; give each its own "
                                  "name"));
    }
    if (metrics[i].kind() != Metric::ACCOUNTS) ++plan.noisy_metrics;
  }
  std::sort(
      metrics.begin(), metrics.end(),
      [](const Metric& a, const Metric& b) { return a.name() < b.name(); });
  for (auto& m : metrics) *c.add_metrics() = std::move(m);
  for (int i = 0; i < c.metrics_size(); ++i) {
    RETURN_IF_ERROR(
        PlanAdjustment(ds, group_by, filters, i, c.mutable_metrics(i), &plan));
  }

  // How many cohorts can exist: caps the L0 of the sensitivities.
  int64_t possible = 1;
  const int64_t l0 = privacy.max_cohorts_per_account;
  for (const std::string& g : group_by) {
    const DimensionSpec* dim = ds.FindDimension(g);
    auto filtered = filters.find(g);
    int64_t size = l0;  // unbounded: only L0 bounds it
    if (filtered != filters.end()) {
      size = static_cast<int64_t>(filtered->second.size());
    } else if (!dim->open_domain && !dim->derived) {
      size = static_cast<int64_t>(dim->values.size());
    }
    possible = std::min(l0, possible * std::min(size, l0));
  }
  // At least 1: a domain filtered to nothing cannot be asked, and the
  // bounder needs a positive limit.
  plan.max_cohorts_per_account =
      static_cast<int>(std::max<int64_t>(1, std::min(l0, possible)));

  // Contributor gates of the canonical metrics.
  for (int i = 0; i < c.metrics_size(); ++i) {
    const Metric& m = c.metrics(i);
    PlanGate gate;
    const std::vector<QueryPlan::Control>& controls = plan.ControlsOf(i);
    if (m.kind() == Metric::SUM || m.kind() == Metric::MEAN ||
        m.kind() == Metric::QUANTILES || m.kind() == Metric::GEOMETRIC_MEAN) {
      gate.measure = m.measure();
    } else if (m.kind() == Metric::RATE) {
      const std::string& label = m.rate_of().dimension();
      const DimensionSpec* dim = ds.FindDimension(label);
      // An adjusted rate is gated even when every session carries its
      // label: not every one carries a level of every control.
      if ((group_by.count(label) == 0 && filters.count(label) == 0 &&
           !dim->derived) ||
          !controls.empty()) {
        gate.label = label;
      }
    }
    if (gate.measure.empty() && gate.label.empty()) {
      plan.metric_gates.push_back(-1);
      continue;
    }
    for (const QueryPlan::Control& control : controls) {
      gate.controls.push_back(control.name);
    }
    if (!controls.empty()) gate.controls_of = i;
    auto same = [&](const PlanGate& other) {
      return other.measure == gate.measure && other.label == gate.label &&
             other.controls == gate.controls;
    };
    auto it = std::find_if(plan.gates.begin(), plan.gates.end(), same);
    plan.metric_gates.push_back(static_cast<int>(it - plan.gates.begin()));
    if (it == plan.gates.end()) plan.gates.push_back(std::move(gate));
  }

  // Interval kinds: a metric whose interval cannot include sampling is
  // refused rather than given a noise-only one, so no client mistakes it
  // for the interval it asked.
  switch (req.interval()) {
    case cohortd::v1::NOISE:
      break;
    case cohortd::v1::NOISE_AND_SAMPLING:
      // The account-clustered sampling variance is defined for totals and
      // ratios (privacy/sampling_interval.h); other metrics would silently
      // keep a noise-only interval, so they are refused.
      for (int i = 0; i < c.metrics_size(); ++i) {
        const Metric& m = c.metrics(i);
        if (m.kind() != Metric::SESSIONS && m.kind() != Metric::SUM &&
            m.kind() != Metric::MEAN && m.kind() != Metric::RATE &&
            m.kind() != Metric::GEOMETRIC_MEAN) {
          return Invalid(
              "interval",
              absl::StrCat("NOISE_AND_SAMPLING covers SESSIONS, SUM, MEAN, "
                           "RATE and GEOMETRIC_MEAN; metric '",
                           m.name(), "' is ", Metric::Kind_Name(m.kind()),
                           " (ask it in a separate NOISE query)"));
        }
      }
      for (const Metric& m : c.metrics()) {
        if (!m.adjust_for().empty()) {
          return absl::UnimplementedError(absl::StrCat(
              "interval: NOISE_AND_SAMPLING is not supported for adjusted "
              "metrics yet (metric '",
              m.name(), "'); their intervals cover the noise (NOISE)"));
        }
      }
      c.set_interval(cohortd::v1::NOISE_AND_SAMPLING);
      plan.noisy_metrics *= 2;  // each also releases its variance
      break;
    default:
      return Invalid("interval", "must be NOISE or NOISE_AND_SAMPLING");
  }

  // measure filters
  for (int i = 0; i < req.measure_filters_size(); ++i) {
    ASSIGN_OR_RETURN(QueryPlan::MeasureRange range,
                     PlanMeasureFilter(ds, i, req.measure_filters(i)));
    for (const auto& other : plan.measure_ranges) {
      if (other.measure == range.measure) {
        return Invalid(absl::StrCat("measure_filters[", i, "]"),
                       absl::StrCat("measure '", range.measure,
                                    "' is filtered twice; give its range in "
                                    "one filter"));
      }
    }
    plan.measure_ranges.push_back(std::move(range));
  }
  std::sort(plan.measure_ranges.begin(), plan.measure_ranges.end(),
            [](const auto& a, const auto& b) { return a.measure < b.measure; });
  for (const auto& range : plan.measure_ranges) {
    const double g = ds.FindMeasure(range.measure)->granularity;
    cohortd::v1::MeasureFilter* f = c.add_measure_filters();
    f->set_measure(range.measure);
    f->set_at_least(static_cast<double>(range.lower_fp) * g);
    f->set_at_most(static_cast<double>(range.upper_fp) * g);
  }

  // privacy parameters
  if (std::isnan(req.epsilon()) || req.epsilon() < 0) {
    return Invalid("epsilon", "must be positive (or 0 for the default)");
  }
  plan.epsilon = req.epsilon() == 0 ? privacy.default_epsilon : req.epsilon();
  if (plan.epsilon > privacy.max_epsilon) {
    return Invalid("epsilon", absl::StrCat(plan.epsilon,
                                           " is above this dataset's "
                                           "per-query maximum of ",
                                           privacy.max_epsilon));
  }
  if (std::isnan(req.confidence()) || req.confidence() < 0 ||
      req.confidence() >= 1) {
    return Invalid("confidence",
                   "must be in (0, 1), e.g. 0.95 (or 0 for 0.95)");
  }
  plan.confidence = req.confidence() == 0 ? 0.95 : req.confidence();
  plan.delta = privacy.delta;
  if (req.has_accuracy()) {
    if (req.epsilon() != 0) {
      return Invalid("epsilon",
                     "must be 0 with accuracy: cohortd chooses the epsilon");
    }
    const cohortd::v1::Accuracy& a = req.accuracy();
    if (!(a.half_width() > 0) || !std::isfinite(a.half_width())) {
      return Invalid("accuracy.half_width",
                     "must be a positive number, in the metrics' units");
    }
    if (a.cohort_sessions() < 1) {
      return Invalid("accuracy.cohort_sessions",
                     "must be a positive number of sessions");
    }
    // The predicted widths are the noise intervals' (data-independent);
    // a sampling part or an adjusted metric's regression interval depends
    // on the data, so no epsilon could promise them.
    if (c.interval() == cohortd::v1::NOISE_AND_SAMPLING) {
      return Invalid("accuracy",
                     "needs interval NOISE: a NOISE_AND_SAMPLING interval's "
                     "sampling part depends on the data, so no epsilon "
                     "guarantees its width");
    }
    for (const Metric& m : c.metrics()) {
      if (!m.adjust_for().empty()) {
        return Invalid("accuracy",
                       absl::StrCat("metric '", m.name(),
                                    "' is adjusted (adjust_for): its "
                                    "interval depends on the data, so no "
                                    "epsilon guarantees its width"));
      }
    }
    ASSIGN_OR_RETURN(plan.epsilon, ChooseEpsilonForAccuracy(plan, a));
    plan.accuracy_first = true;
  }
  c.set_epsilon(plan.epsilon);
  c.set_confidence(plan.confidence);

  {
    google::protobuf::io::StringOutputStream out(&plan.canonical_bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    c.SerializeToCodedStream(&coded);
  }
  google::protobuf::util::JsonPrintOptions json;
  json.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(c, &plan.canonical_json,
                                                   json)
           .ok()) {
    plan.canonical_json = c.ShortDebugString();
  }
  return plan;
}

}  // namespace cohortd
