// `cohortctl query`: one Aggregate call, printed as a table, CSV or JSON.
#include "absl/strings/str_cat.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "tools/cohortctl/aggregate_format.h"
#include "tools/cohortctl/commands.h"
#include "tools/cohortctl/metric_spec.h"

namespace cohortd::cohortctl {
namespace {

// Builds the request from the flags; INVALID_ARGUMENT on a syntax error.
// Also the command's check: a query that reaches the server spends budget,
// so every mistake cohortctl can see is caught first.
absl::StatusOr<cohortd::v1::AggregateRequest> BuildRequest(
    const ParsedFlags& flags, const std::string& dataset) {
  cohortd::v1::AggregateRequest request;
  request.set_dataset(dataset);
  if (flags.Has("group-by")) {
    absl::StatusOr<std::vector<std::string>> group_by =
        ParseGroupBy(flags.Get("group-by"));
    if (!group_by.ok()) return group_by.status();
    for (const std::string& dimension : *group_by) {
      request.add_group_by(dimension);
    }
  }
  for (const std::string& spec : flags.GetAll("filter")) {
    if (IsMeasureFilterSpec(spec)) {
      absl::Status added = AddMeasureFilterSpec(spec, &request);
      if (!added.ok()) return added;
      continue;
    }
    absl::StatusOr<cohortd::v1::Filter> filter = ParseFilterSpec(spec);
    if (!filter.ok()) return filter.status();
    *request.add_filters() = *std::move(filter);
  }
  const std::vector<std::string> metrics = flags.GetAll("metric");
  if (metrics.empty()) {
    return absl::InvalidArgumentError(
        "query needs at least one --metric, e.g. --metric sessions");
  }
  for (const std::string& spec : metrics) {
    absl::StatusOr<cohortd::v1::Metric> metric = ParseMetricSpec(spec);
    if (!metric.ok()) return metric.status();
    *request.add_metrics() = *std::move(metric);
  }
  absl::StatusOr<double> epsilon = flags.GetDouble("epsilon", 0);
  if (!epsilon.ok()) return epsilon.status();
  if (*epsilon < 0) {
    return absl::InvalidArgumentError("--epsilon must be positive");
  }
  request.set_epsilon(*epsilon);
  if (flags.Has("accuracy")) {
    if (*epsilon != 0) {
      return absl::InvalidArgumentError(
          "--accuracy and --epsilon exclude each other: with --accuracy "
          "cohortd chooses the epsilon");
    }
    absl::StatusOr<cohortd::v1::Accuracy> accuracy =
        ParseAccuracySpec(flags.Get("accuracy"));
    if (!accuracy.ok()) return accuracy.status();
    *request.mutable_accuracy() = *accuracy;
  }
  if (flags.Has("interval")) {
    absl::StatusOr<cohortd::v1::IntervalKind> interval =
        ParseIntervalSpec(flags.Get("interval"));
    if (!interval.ok()) return interval.status();
    request.set_interval(*interval);
  }
  if (flags.Has("adjust-for")) {
    absl::Status adjusted = ApplyAdjustFor(flags.Get("adjust-for"), &request);
    if (!adjusted.ok()) return adjusted;
  }
  absl::StatusOr<double> confidence = flags.GetDouble("confidence", 0);
  if (!confidence.ok()) return confidence.status();
  if (*confidence < 0 || *confidence >= 1) {
    return absl::InvalidArgumentError(
        "--confidence must be between 0 and 1, e.g. 0.95");
  }
  request.set_confidence(*confidence);
  const std::string format = flags.Get("format", "table");
  if (format != "table" && format != "csv" && format != "json") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--format must be table, csv or json, not '", format, "'"));
  }
  return request;
}

int RunQuery(const CommandEnv& env) {
  // Cannot fail: the same flags passed the command's check.
  const absl::StatusOr<cohortd::v1::AggregateRequest> request =
      BuildRequest(env.flags, env.global.dataset);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(env.global);
  if (!channel.ok()) {
    *env.io.err << "cohortctl: " << channel.status().message() << "\n";
    return kExitUsage;
  }
  auto stub = cohortd::v1::Query::NewStub(*channel);
  auto context = MakeContext(env.token, env.global.timeout);
  cohortd::v1::AggregateResponse response;
  const grpc::Status status =
      stub->Aggregate(context.get(), *request, &response);
  if (!status.ok()) return ReportRpcError("query", status, *env.io.err);

  const std::vector<std::string> group_by(request->group_by().begin(),
                                          request->group_by().end());
  std::vector<std::string> metric_order;
  for (const cohortd::v1::Metric& metric : request->metrics()) {
    metric_order.push_back(MetricOutputName(metric));
  }
  const std::string format = env.flags.Get("format", "table");
  if (format == "json") {
    absl::StatusOr<std::string> json = FormatJson(response);
    if (!json.ok()) {
      *env.io.err << "cohortctl: " << json.status().message() << "\n";
      return kExitError;
    }
    *env.io.out << *json;
  } else if (format == "csv") {
    *env.io.out << FormatAggregateCsv(response, group_by, metric_order);
  } else {
    *env.io.out << FormatAggregateText(response, group_by, metric_order);
  }
  return kExitOk;
}

}  // namespace

Command QueryCommand() {
  Command command;
  command.name = "query";
  command.summary = "ask a differentially private cohort question (Aggregate)";
  command.description =
      "Computes one release: the metrics per cohort of the --group-by\n"
      "dimensions, over the observations matching every --filter. Each\n"
      "value comes with its confidence interval. A new release is charged\n"
      "to your privacy budget; the identical question on unchanged data\n"
      "returns the stored release for free.\n"
      "\n"
      "metrics (--metric, repeatable; an optional NAME= prefix names the\n"
      "output column):\n"
      "  sessions                       number of sessions\n"
      "  accounts                       number of distinct accounts\n"
      "  sum:MEASURE                    sum of a measure\n"
      "  mean:MEASURE                   mean of a measure\n"
      "  geomean:MEASURE                geometric mean (zeros count as the\n"
      "                                 measure's smallest positive step)\n"
      "  rate:DIM=V1,V2                 share of sessions with DIM in V1,V2\n"
      "  quantiles:MEASURE[:Q1,Q2,..]   quantiles (default 0.05,0.25,0.5,\n"
      "                                 0.75,0.95)\n"
      "\n"
      "filters (--filter, repeatable, all must hold): DIM=V1,V2 keeps\n"
      "sessions with DIM in V1,V2; MEASURE>V, >=, <, <= keep sessions\n"
      "carrying MEASURE in that range (two make one range), before\n"
      "contribution bounding.\n"
      "\n"
      "--accuracy HALF_WIDTH@SESSIONS asks for intervals of that half-width\n"
      "(each metric in its own unit) for cohorts of SESSIONS sessions:\n"
      "cohortd charges the smallest epsilon that predicts it, or refuses\n"
      "(FAILED_PRECONDITION) naming the epsilon it would need.\n"
      "\n"
      "--interval noise (default) gives intervals for the DP noise only:\n"
      "they cover the value this data gives after contribution bounding.\n"
      "--interval noise_and_sampling covers the population value: the\n"
      "noise and the sampling error clustered by account (sessions, sum,\n"
      "mean, rate; wider for large cohorts).\n"
      "\n"
      "--adjust-for DIM1,DIM2 adjusts every rate: and mean: metric for\n"
      "those dimensions (a linear model with fixed effects, reported at the\n"
      "overall mix of the controls), e.g. work_mode,task_value_band,\n"
      "occupation; the month needs a --filter month=... listing the months.\n"
      "A control cannot be grouped by; adjusted intervals are noise-only.\n"
      "\n"
      "example: verified success by expertise\n"
      "  cohortctl query --group-by expertise --metric sessions \\\n"
      "    --metric vs=rate:verified_success=true --epsilon 0.5\n"
      "\n"
      "The table has one row per released cohort, sorted by key, each\n"
      "metric as 'value [ci_low, ci_high]', then the release id, whether it\n"
      "came from the cache, its cost and the budget remaining. --format\n"
      "json prints the AggregateResponse (protobuf JSON mapping); csv prints\n"
      "METRIC, METRIC_ci_low, METRIC_ci_high columns.\n";
  command.role = Role::kAnalyst;
  command.flags = {
      {"group-by", "DIM1,DIM2", "dimensions to group by"},
      {"filter", "DIM=V1,V2|MEASURE>V",
       "keep sessions with DIM in V1,V2 / MEASURE in range", true},
      {"metric", "SPEC", "a metric, see above", true},
      {"epsilon", "E", "privacy budget to spend (default: the dataset's)"},
      {"accuracy", "W@N",
       "half-width W wanted for cohorts of N sessions; cohortd picks epsilon"},
      {"interval", "KIND",
       "noise (default) or noise_and_sampling (the population value)"},
      {"adjust-for", "DIM1,DIM2",
       "adjust rate: and mean: metrics for these dimensions"},
      {"confidence", "C", "confidence level of intervals (default 0.95)"},
      {"format", "FORMAT", "table, csv or json (default table)"},
  };
  command.check = [](const ParsedFlags& flags) {
    return BuildRequest(flags, "").status();
  };
  command.run = RunQuery;
  return command;
}

}  // namespace cohortd::cohortctl
