#include "tools/cohortctl/metric_spec.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace cohortd::cohortctl {
namespace {

using cohortd::v1::Metric;

// Splits "a, b,c" into trimmed parts; fails on an empty part.
absl::StatusOr<std::vector<std::string>> SplitList(absl::string_view list,
                                                   absl::string_view what) {
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("empty ", what, " in '", list, "'"));
    }
    parts.emplace_back(part);
  }
  return parts;
}

absl::Status NeedsArgument(absl::string_view kind, absl::string_view form) {
  return absl::InvalidArgumentError(
      absl::StrCat("metric '", kind, "' is written ", form));
}

}  // namespace

absl::StatusOr<cohortd::v1::Filter> ParseFilterSpec(absl::string_view spec) {
  const size_t eq = spec.find('=');
  if (eq == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("filter '", spec, "' is not DIMENSION=VALUE[,VALUE...]"));
  }
  cohortd::v1::Filter filter;
  const absl::string_view dimension =
      absl::StripAsciiWhitespace(spec.substr(0, eq));
  if (dimension.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("filter '", spec, "' names no dimension"));
  }
  filter.set_dimension(std::string(dimension));
  absl::StatusOr<std::vector<std::string>> values =
      SplitList(spec.substr(eq + 1), "value");
  if (!values.ok()) return values.status();
  for (std::string& value : *values) filter.add_any_of(std::move(value));
  return filter;
}

absl::StatusOr<cohortd::v1::Metric> ParseMetricSpec(absl::string_view spec) {
  Metric metric;
  const size_t eq = spec.find('=');
  if (eq != absl::string_view::npos &&
      spec.substr(0, eq).find(':') == absl::string_view::npos) {
    const absl::string_view name =
        absl::StripAsciiWhitespace(spec.substr(0, eq));
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric '", spec, "' has an empty name before '='"));
    }
    metric.set_name(std::string(name));
    spec = spec.substr(eq + 1);
  }
  const size_t colon = spec.find(':');
  const std::string kind(absl::StripAsciiWhitespace(spec.substr(0, colon)));
  const absl::string_view argument =
      colon == absl::string_view::npos ? "" : spec.substr(colon + 1);
  const bool has_argument = colon != absl::string_view::npos;

  if (kind == "sessions" || kind == "accounts") {
    if (has_argument) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric '", kind, "' takes no argument"));
    }
    metric.set_kind(kind == "sessions" ? Metric::SESSIONS : Metric::ACCOUNTS);
    return metric;
  }
  if (kind == "sum" || kind == "mean") {
    const absl::string_view measure = absl::StripAsciiWhitespace(argument);
    if (measure.empty() || measure.find(':') != absl::string_view::npos) {
      return NeedsArgument(kind, absl::StrCat(kind, ":MEASURE"));
    }
    metric.set_kind(kind == "sum" ? Metric::SUM : Metric::MEAN);
    metric.set_measure(std::string(measure));
    return metric;
  }
  if (kind == "geomean") {
    const absl::string_view measure = absl::StripAsciiWhitespace(argument);
    if (measure.empty() || measure.find(':') != absl::string_view::npos) {
      return NeedsArgument(kind, "geomean:MEASURE");
    }
    metric.set_kind(Metric::GEOMETRIC_MEAN);
    metric.set_measure(std::string(measure));
    return metric;
  }
  if (kind == "rate") {
    if (!has_argument) return NeedsArgument(kind, "rate:DIMENSION=V1,V2");
    absl::StatusOr<cohortd::v1::Filter> rate_of = ParseFilterSpec(argument);
    if (!rate_of.ok()) return rate_of.status();
    metric.set_kind(Metric::RATE);
    *metric.mutable_rate_of() = *std::move(rate_of);
    return metric;
  }
  if (kind == "quantiles") {
    const size_t q_colon = argument.find(':');
    const absl::string_view measure =
        absl::StripAsciiWhitespace(argument.substr(0, q_colon));
    if (measure.empty()) {
      return NeedsArgument(kind, "quantiles:MEASURE[:Q1,Q2,...]");
    }
    metric.set_kind(Metric::QUANTILES);
    metric.set_measure(std::string(measure));
    if (q_colon == absl::string_view::npos) {
      for (double q : kDefaultQuantiles) metric.add_quantiles(q);
      return metric;
    }
    absl::StatusOr<std::vector<std::string>> parts =
        SplitList(argument.substr(q_colon + 1), "quantile");
    if (!parts.ok()) return parts.status();
    for (const std::string& part : *parts) {
      double q;
      if (!absl::SimpleAtod(part, &q) || !(q > 0 && q < 1)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "quantile '", part, "' is not a number strictly between 0 and 1"));
      }
      metric.add_quantiles(q);
    }
    return metric;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown metric '", kind,
                   "'; metrics: sessions, accounts, sum:MEASURE, mean:MEASURE, "
                   "geomean:MEASURE, rate:DIMENSION=V1,V2, "
                   "quantiles:MEASURE[:Q1,Q2,...]"));
}

std::string MetricOutputName(const cohortd::v1::Metric& metric) {
  if (!metric.name().empty()) return metric.name();
  switch (metric.kind()) {
    case Metric::SESSIONS:
      return "sessions";
    case Metric::ACCOUNTS:
      return "accounts";
    case Metric::SUM:
      return absl::StrCat("sum_", metric.measure());
    case Metric::MEAN:
      return absl::StrCat("mean_", metric.measure());
    case Metric::RATE:
      return absl::StrCat("rate_", metric.rate_of().dimension(), "_",
                          absl::StrJoin(metric.rate_of().any_of(), "_"));
    case Metric::QUANTILES:
      return absl::StrCat("quantiles_", metric.measure());
    case Metric::GEOMETRIC_MEAN:
      return absl::StrCat("geomean_", metric.measure());
    default:
      return "";
  }
}

absl::StatusOr<std::vector<std::string>> ParseGroupBy(absl::string_view spec) {
  absl::StatusOr<std::vector<std::string>> dimensions =
      SplitList(spec, "dimension");
  if (!dimensions.ok()) return dimensions.status();
  for (size_t i = 0; i < dimensions->size(); ++i) {
    if (std::count(dimensions->begin(), dimensions->end(), (*dimensions)[i]) >
        1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--group-by names '", (*dimensions)[i], "' more than once"));
    }
  }
  return dimensions;
}

bool IsMeasureFilterSpec(absl::string_view spec) {
  return spec.find_first_of("<>") != absl::string_view::npos;
}

absl::Status AddMeasureFilterSpec(absl::string_view spec,
                                  cohortd::v1::AggregateRequest* request) {
  const size_t at = spec.find_first_of("<>");
  if (at == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("measure filter '", spec, "' needs one of >, >=, <, <="));
  }
  const std::string measure(absl::StripAsciiWhitespace(spec.substr(0, at)));
  const bool greater = spec[at] == '>';
  const bool inclusive = at + 1 < spec.size() && spec[at + 1] == '=';
  const absl::string_view number =
      absl::StripAsciiWhitespace(spec.substr(at + (inclusive ? 2 : 1)));
  double value;
  const bool name_ok =
      !measure.empty() &&
      std::all_of(measure.begin(), measure.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
      });
  if (!name_ok || !absl::SimpleAtod(number, &value) || !std::isfinite(value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "measure filter '", spec,
        "' must read MEASURE>V, MEASURE>=V, MEASURE<V or MEASURE<=V with a "
        "number V"));
  }
  cohortd::v1::MeasureFilter* filter = nullptr;
  for (auto& f : *request->mutable_measure_filters()) {
    if (f.measure() == measure) filter = &f;
  }
  if (filter == nullptr) {
    filter = request->add_measure_filters();
    filter->set_measure(measure);
  }
  const bool has_side = greater ? filter->has_above() || filter->has_at_least()
                                : filter->has_below() || filter->has_at_most();
  if (has_side) {
    return absl::InvalidArgumentError(
        absl::StrCat("measure '", measure, "' has two ",
                     greater ? "lower" : "upper", " bounds; give one"));
  }
  if (greater) {
    inclusive ? filter->set_at_least(value) : filter->set_above(value);
  } else {
    inclusive ? filter->set_at_most(value) : filter->set_below(value);
  }
  return absl::OkStatus();
}

absl::StatusOr<cohortd::v1::Accuracy> ParseAccuracySpec(
    absl::string_view spec) {
  const size_t at = spec.find('@');
  double half_width;
  int64_t sessions;
  if (at == absl::string_view::npos ||
      !absl::SimpleAtod(absl::StripAsciiWhitespace(spec.substr(0, at)),
                        &half_width) ||
      !(half_width > 0) || !std::isfinite(half_width) ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(spec.substr(at + 1)),
                        &sessions) ||
      sessions < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--accuracy '", spec,
        "' must read HALF_WIDTH@SESSIONS, e.g. 0.05@2000 (a positive "
        "half-width for cohorts of a positive number of sessions)"));
  }
  cohortd::v1::Accuracy accuracy;
  accuracy.set_half_width(half_width);
  accuracy.set_cohort_sessions(sessions);
  return accuracy;
}

absl::StatusOr<cohortd::v1::IntervalKind> ParseIntervalSpec(
    absl::string_view spec) {
  const std::string kind =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(spec));
  if (kind == "noise") return cohortd::v1::NOISE;
  if (kind == "noise_and_sampling" || kind == "noise+sampling") {
    return cohortd::v1::NOISE_AND_SAMPLING;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--interval '", spec,
      "' must be noise (the DP noise only) or noise_and_sampling (the "
      "population value: noise and sampling error clustered by account)"));
}

absl::Status ApplyAdjustFor(absl::string_view spec,
                            cohortd::v1::AggregateRequest* request) {
  absl::StatusOr<std::vector<std::string>> controls =
      SplitList(spec, "dimension");
  if (!controls.ok() || controls->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--adjust-for '", spec,
                     "' must list dimensions, e.g. work_mode,task_value_band"));
  }
  for (const std::string& control : *controls) {
    if (std::count(controls->begin(), controls->end(), control) > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--adjust-for names '", control, "' more than once"));
    }
  }
  for (const std::string& control : *controls) {
    for (const std::string& group : request->group_by()) {
      if (control == group) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--adjust-for '", control,
            "' is also in --group-by: a control must vary within a cohort"));
      }
    }
  }
  if (request->interval() == cohortd::v1::NOISE_AND_SAMPLING) {
    return absl::InvalidArgumentError(
        "--adjust-for with --interval noise_and_sampling: adjusted metrics "
        "have noise-only intervals; ask the raw metrics with "
        "noise_and_sampling in a separate query");
  }
  int adjusted = 0;
  for (cohortd::v1::Metric& metric : *request->mutable_metrics()) {
    if (metric.kind() != cohortd::v1::Metric::RATE &&
        metric.kind() != cohortd::v1::Metric::MEAN) {
      continue;
    }
    metric.clear_adjust_for();
    for (const std::string& control : *controls) metric.add_adjust_for(control);
    ++adjusted;
  }
  if (adjusted == 0) {
    return absl::InvalidArgumentError(
        "--adjust-for applies to rate: and mean: metrics, and the query has "
        "none");
  }
  return absl::OkStatus();
}

}  // namespace cohortd::cohortctl
