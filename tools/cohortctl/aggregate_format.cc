#include "tools/cohortctl/aggregate_format.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"

namespace cohortd::cohortctl {
namespace {

using cohortd::v1::AggregateResponse;
using cohortd::v1::Cohort;
using cohortd::v1::Estimate;

// One printed quantity: a metric's value, or one quantile of it.
struct Column {
  std::string metric;
  bool is_quantile = false;
  double q = 0;
  std::string header;      // for the text table
  std::string csv_prefix;  // for the CSV columns
};

struct Interval {
  double value, low, high;
};

std::string QuantileLabel(double q) { return absl::StrCat("q", q); }

// Key dimensions: group_by first, then any others found, alphabetically.
std::vector<std::string> KeyColumns(const AggregateResponse& response,
                                    const std::vector<std::string>& group_by) {
  std::vector<std::string> keys = group_by;
  std::vector<std::string> extra;
  for (const Cohort& cohort : response.cohorts()) {
    for (const auto& [dimension, value] : cohort.key()) {
      if (std::find(keys.begin(), keys.end(), dimension) == keys.end() &&
          std::find(extra.begin(), extra.end(), dimension) == extra.end()) {
        extra.push_back(dimension);
      }
    }
  }
  std::sort(extra.begin(), extra.end());
  keys.insert(keys.end(), extra.begin(), extra.end());
  return keys;
}

// Metric columns: those in `order` first, then in the order the server
// returned the estimates.
std::vector<Column> MetricColumns(const AggregateResponse& response,
                                  const std::vector<std::string>& order) {
  std::vector<Column> columns;
  auto seen = [&](const Column& c) {
    return std::any_of(columns.begin(), columns.end(), [&](const Column& o) {
      return o.metric == c.metric && o.is_quantile == c.is_quantile &&
             o.q == c.q;
    });
  };
  for (const Cohort& cohort : response.cohorts()) {
    for (const Estimate& estimate : cohort.estimates()) {
      if (estimate.quantiles_size() == 0) {
        Column column{estimate.metric(), false, 0, estimate.metric(),
                      estimate.metric()};
        if (!seen(column)) columns.push_back(column);
        continue;
      }
      for (const auto& quantile : estimate.quantiles()) {
        const std::string label = QuantileLabel(quantile.q());
        Column column{estimate.metric(), true, quantile.q(),
                      absl::StrCat(estimate.metric(), " ", label),
                      absl::StrCat(estimate.metric(), "_", label)};
        if (!seen(column)) columns.push_back(column);
      }
    }
  }
  // A metric asked but in no released cohort still gets its column, so
  // that an empty result keeps its header.
  for (const std::string& metric : order) {
    Column column{metric, false, 0, metric, metric};
    const bool present =
        std::any_of(columns.begin(), columns.end(),
                    [&](const Column& c) { return c.metric == metric; });
    if (!present) columns.push_back(column);
  }
  auto rank = [&](const Column& column) {
    return std::find(order.begin(), order.end(), column.metric) - order.begin();
  };
  std::stable_sort(
      columns.begin(), columns.end(),
      [&](const Column& a, const Column& b) { return rank(a) < rank(b); });
  return columns;
}

std::optional<Interval> Find(const Cohort& cohort, const Column& column) {
  for (const Estimate& estimate : cohort.estimates()) {
    if (estimate.metric() != column.metric) continue;
    if (!column.is_quantile) {
      return Interval{estimate.value(), estimate.ci_low(), estimate.ci_high()};
    }
    for (const auto& quantile : estimate.quantiles()) {
      if (quantile.q() == column.q) {
        return Interval{quantile.value(), quantile.ci_low(),
                        quantile.ci_high()};
      }
    }
  }
  return std::nullopt;
}

std::vector<std::string> KeyValues(const Cohort& cohort,
                                   const std::vector<std::string>& keys) {
  std::vector<std::string> values;
  for (const std::string& key : keys) {
    auto it = cohort.key().find(key);
    values.push_back(it == cohort.key().end() ? "" : it->second);
  }
  return values;
}

// Cohorts ordered by their key values, column by column.
std::vector<const Cohort*> SortedCohorts(const AggregateResponse& response,
                                         const std::vector<std::string>& keys) {
  std::vector<const Cohort*> cohorts;
  for (const Cohort& cohort : response.cohorts()) cohorts.push_back(&cohort);
  std::stable_sort(cohorts.begin(), cohorts.end(),
                   [&](const Cohort* a, const Cohort* b) {
                     return KeyValues(*a, keys) < KeyValues(*b, keys);
                   });
  return cohorts;
}

}  // namespace

std::string FormatCost(const cohortd::v1::PrivacyCost& cost) {
  return absl::StrCat("ε=", CompactNumber(cost.epsilon()),
                      " δ=", CompactNumber(cost.delta()),
                      " ρ=", CompactNumber(cost.rho()));
}

Table AggregateTable(const AggregateResponse& response,
                     const std::vector<std::string>& group_by,
                     const std::vector<std::string>& metric_order) {
  const std::vector<std::string> keys = KeyColumns(response, group_by);
  const std::vector<Column> columns = MetricColumns(response, metric_order);
  const std::vector<const Cohort*> cohorts = SortedCohorts(response, keys);

  Table table;
  table.header = keys;
  table.right_aligned.assign(keys.size(), false);
  for (const Column& column : columns) {
    table.header.push_back(column.header);
    table.right_aligned.push_back(true);
  }
  for (const Cohort* cohort : cohorts) {
    table.rows.push_back(KeyValues(*cohort, keys));
  }
  // Each interval cell is padded part by part, so that values, lower and
  // upper bounds line up down the column rather than only the closing ']'.
  for (const Column& column : columns) {
    std::vector<std::optional<Interval>> cells;
    size_t wv = 0, wl = 0, wh = 0;
    for (const Cohort* cohort : cohorts) {
      cells.push_back(Find(*cohort, column));
      if (!cells.back()) continue;
      wv = std::max(wv, HumanNumber(cells.back()->value).size());
      wl = std::max(wl, HumanNumber(cells.back()->low).size());
      wh = std::max(wh, HumanNumber(cells.back()->high).size());
    }
    for (size_t r = 0; r < cohorts.size(); ++r) {
      const auto& cell = cells[r];
      table.rows[r].push_back(
          cell ? absl::StrCat(PadLeft(HumanNumber(cell->value), wv), " [",
                              PadLeft(HumanNumber(cell->low), wl), ", ",
                              PadLeft(HumanNumber(cell->high), wh), "]")
               : "-");
    }
  }
  return table;
}

std::string FormatAggregateText(const AggregateResponse& response,
                                const std::vector<std::string>& group_by,
                                const std::vector<std::string>& metric_order) {
  std::string out =
      FormatTable(AggregateTable(response, group_by, metric_order));
  absl::StrAppendFormat(&out, "\n%d cohort%s released", response.cohorts_size(),
                        response.cohorts_size() == 1 ? "" : "s");
  absl::StrAppend(&out, "; release ", response.release_id(),
                  response.from_cache()
                      ? " (from cache: the stored release, charged nothing)"
                      : " (new)",
                  "\n");
  absl::StrAppend(&out, "cost       ", FormatCost(response.cost()), "\n");
  if (response.has_budget()) {
    absl::StrAppend(&out, "remaining  ",
                    FormatCost(response.budget().remaining()), "  (of ",
                    FormatCost(response.budget().total()), ")\n");
  }
  return out;
}

std::string FormatAggregateCsv(const AggregateResponse& response,
                               const std::vector<std::string>& group_by,
                               const std::vector<std::string>& metric_order) {
  const std::vector<std::string> keys = KeyColumns(response, group_by);
  const std::vector<Column> columns = MetricColumns(response, metric_order);
  Table table;
  table.header = keys;
  for (const Column& column : columns) {
    table.header.push_back(column.csv_prefix);
    table.header.push_back(column.csv_prefix + "_ci_low");
    table.header.push_back(column.csv_prefix + "_ci_high");
  }
  for (const Cohort* cohort : SortedCohorts(response, keys)) {
    std::vector<std::string> row = KeyValues(*cohort, keys);
    for (const Column& column : columns) {
      const std::optional<Interval> cell = Find(*cohort, column);
      for (double v : {cell ? cell->value : 0, cell ? cell->low : 0,
                       cell ? cell->high : 0}) {
        row.push_back(cell ? ExactNumber(v) : "");
      }
    }
    table.rows.push_back(std::move(row));
  }
  return FormatCsv(table);
}

absl::StatusOr<std::string> FormatJson(
    const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  std::string json;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    const auto message = status.message();
    return absl::InternalError(std::string(message.data(), message.size()));
  }
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

}  // namespace cohortd::cohortctl
