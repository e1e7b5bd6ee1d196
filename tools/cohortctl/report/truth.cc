#include "tools/cohortctl/report/truth.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <unordered_map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tools/cohortctl/metric_spec.h"

namespace cohortd::cohortctl {
namespace {

using cohortd::v1::AggregateRequest;
using cohortd::v1::Metric;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One row of a fixed-effects fit: its session, cohort and outcome.
struct FitRow {
  size_t row = 0;
  size_t cohort = 0;
  double y = 0;
};

// Solves a x = b (n x n, row-major) by Gaussian elimination with partial
// pivoting; false when a pivot vanishes (relative to the matrix's scale).
bool Solve(std::vector<double> a, std::vector<double> b, size_t n,
           std::vector<double>* x) {
  double scale = 0;
  for (double v : a) scale = std::max(scale, std::fabs(v));
  for (size_t k = 0; k < n; ++k) {
    size_t pivot = k;
    for (size_t i = k + 1; i < n; ++i) {
      if (std::fabs(a[i * n + k]) > std::fabs(a[pivot * n + k])) pivot = i;
    }
    if (std::fabs(a[pivot * n + k]) <= 1e-12 * scale) return false;
    if (pivot != k) {
      for (size_t j = 0; j < n; ++j) std::swap(a[k * n + j], a[pivot * n + j]);
      std::swap(b[k], b[pivot]);
    }
    for (size_t i = k + 1; i < n; ++i) {
      const double f = a[i * n + k] / a[k * n + k];
      if (f == 0) continue;
      for (size_t j = k; j < n; ++j) a[i * n + j] -= f * a[k * n + j];
      b[i] -= f * b[k];
    }
  }
  x->assign(n, 0);
  for (size_t k = n; k-- > 0;) {
    double sum = b[k];
    for (size_t j = k + 1; j < n; ++j) sum -= a[k * n + j] * (*x)[j];
    (*x)[k] = sum / a[k * n + k];
  }
  return true;
}

// The least-squares fit of y = alpha_cohort + sum_d beta_{d, level} over
// `rows` (every row has a level, code >= 1, of every control), and per
// cohort alpha_c + sum_d sum_l w_{d,l} beta_{d,l}, w the levels' shares
// among all rows. Per control the most frequent level is the reference
// and absent levels have no column, as in the server. NaN for a cohort
// without rows, or everywhere when the system is singular.
std::vector<double> FixedEffectsFit(
    const std::vector<FitRow>& rows, size_t num_cohorts,
    const std::vector<std::vector<uint32_t>>& controls) {
  std::vector<double> out(num_cohorts, kNaN);
  if (rows.empty()) return out;
  // Column of (control d, level code l), or -1 for the reference/absent.
  std::vector<std::vector<int64_t>> column(controls.size());
  std::vector<std::vector<double>> share(controls.size());
  size_t p = num_cohorts;
  for (size_t d = 0; d < controls.size(); ++d) {
    std::vector<int64_t> counts;
    for (const FitRow& r : rows) {
      const uint32_t l = controls[d][r.row];
      if (counts.size() <= l) counts.resize(l + 1, 0);
      ++counts[l];
    }
    const size_t reference =
        std::max_element(counts.begin(), counts.end()) - counts.begin();
    column[d].assign(counts.size(), -1);
    share[d].assign(counts.size(), 0);
    for (size_t l = 1; l < counts.size(); ++l) {
      share[d][l] = static_cast<double>(counts[l]) / rows.size();
      if (counts[l] > 0 && l != reference) column[d][l] = p++;
    }
  }
  std::vector<double> xtx(p * p, 0), xty(p, 0);
  std::vector<int64_t> cohort_rows(num_cohorts, 0);
  std::vector<size_t> ones;
  for (const FitRow& r : rows) {
    ones.assign(1, r.cohort);
    ++cohort_rows[r.cohort];
    for (size_t d = 0; d < controls.size(); ++d) {
      const int64_t c = column[d][controls[d][r.row]];
      if (c >= 0) ones.push_back(c);
    }
    for (size_t i : ones) {
      xty[i] += r.y;
      for (size_t j : ones) xtx[i * p + j] += 1;
    }
  }
  // A cohort without rows has an empty column: leave it out of the system.
  std::vector<size_t> kept;
  for (size_t i = 0; i < p; ++i) {
    if (xtx[i * p + i] > 0) kept.push_back(i);
  }
  const size_t n = kept.size();
  std::vector<double> a(n * n), b(n), theta_kept;
  for (size_t i = 0; i < n; ++i) {
    b[i] = xty[kept[i]];
    for (size_t j = 0; j < n; ++j) a[i * n + j] = xtx[kept[i] * p + kept[j]];
  }
  if (!Solve(std::move(a), std::move(b), n, &theta_kept)) return out;
  std::vector<double> theta(p, 0);
  for (size_t i = 0; i < n; ++i) theta[kept[i]] = theta_kept[i];
  double mix = 0;
  for (size_t d = 0; d < controls.size(); ++d) {
    for (size_t l = 1; l < column[d].size(); ++l) {
      if (column[d][l] >= 0) mix += share[d][l] * theta[column[d][l]];
    }
  }
  for (size_t c = 0; c < num_cohorts; ++c) {
    if (cohort_rows[c] > 0) out[c] = theta[c] + mix;
  }
  return out;
}

// Splits one CSV line (RFC 4180 quoting, no embedded line breaks).
std::vector<std::string> SplitCsvLine(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  return fields;
}

// A column while parsing: every cell dictionary-coded (0 = empty), and
// whether all non-empty cells parse as numbers.
struct RawColumn {
  std::unordered_map<std::string, uint32_t> code_of;
  std::vector<std::string> values;
  std::vector<uint32_t> codes;
  bool numeric = true;

  void Add(const std::string& cell) {
    if (cell.empty()) {
      codes.push_back(0);
      return;
    }
    auto [it, inserted] =
        code_of.emplace(cell, static_cast<uint32_t>(values.size() + 1));
    if (inserted) {
      values.push_back(cell);
      double unused;
      if (!absl::SimpleAtod(cell, &unused)) numeric = false;
    }
    codes.push_back(it->second);
  }
};

// The lower empirical quantile of sorted, non-empty `values`.
double LowerQuantile(const std::vector<double>& sorted, double q) {
  const double rank = std::ceil(q * static_cast<double>(sorted.size()));
  const size_t index =
      rank < 1 ? 0 : std::min(sorted.size() - 1, static_cast<size_t>(rank) - 1);
  return sorted[index];
}

// Accumulators of one metric over one cohort.
struct MetricAccumulator {
  double sum = 0;
  int64_t count = 0;  // MEAN/SUM: sessions with the measure; RATE: labelled
  int64_t matches = 0;
  std::vector<double> values;  // QUANTILES
};

struct CohortAccumulator {
  std::vector<uint32_t> accounts;
  int64_t sessions = 0;
  std::vector<MetricAccumulator> metrics;
};

}  // namespace

absl::StatusOr<GroundTruth> GroundTruth::Parse(std::istream& csv) {
  std::string line;
  if (!std::getline(csv, line)) {
    return absl::InvalidArgumentError("truth CSV is empty: no header");
  }
  const std::vector<std::string> header = SplitCsvLine(line);
  const auto account_it =
      std::find(header.begin(), header.end(), std::string("account_id"));
  if (account_it == header.end()) {
    return absl::InvalidArgumentError(
        "truth CSV header has no account_id column");
  }
  const size_t account_column = account_it - header.begin();
  std::vector<RawColumn> columns(header.size());
  size_t line_number = 1;
  while (std::getline(csv, line)) {
    ++line_number;
    if (line.empty() || line == "\r") continue;
    const std::vector<std::string> fields = SplitCsvLine(line);
    if (fields.size() != header.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("truth CSV line ", line_number, ": ", fields.size(),
                       " fields, the header has ", header.size()));
    }
    for (size_t i = 0; i < fields.size(); ++i) columns[i].Add(fields[i]);
  }

  GroundTruth truth;
  truth.accounts_ = std::move(columns[account_column].codes);
  for (size_t i = 0; i < header.size(); ++i) {
    if (i == account_column || header[i] == "session_id") continue;
    RawColumn& column = columns[i];
    if (column.numeric) {
      std::vector<double> decoded(column.values.size());
      for (size_t v = 0; v < column.values.size(); ++v) {
        absl::SimpleAtod(column.values[v], &decoded[v]);
      }
      std::vector<double>& measure = truth.measures_[header[i]];
      measure.reserve(column.codes.size());
      for (uint32_t code : column.codes) {
        measure.push_back(code == 0 ? kNaN : decoded[code - 1]);
      }
    }
    // An all-empty column is both: nothing tells which it is.
    if (!column.numeric || column.values.empty()) {
      Dimension& dimension = truth.dimensions_[header[i]];
      dimension.values = std::move(column.values);
      dimension.codes = std::move(column.codes);
    }
  }
  return truth;
}

absl::StatusOr<GroundTruth> GroundTruth::ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  return Parse(in);
}

absl::StatusOr<TruthByCohort> GroundTruth::Compute(
    const AggregateRequest& request) const {
  auto find_dimension =
      [&](const std::string& name) -> absl::StatusOr<const Dimension*> {
    auto it = dimensions_.find(name);
    if (it == dimensions_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("truth CSV has no dimension column '", name, "'"));
    }
    return &it->second;
  };
  // Accepted codes of a filter or RATE predicate, indexed by code.
  auto accepted = [](const Dimension& dimension,
                     const cohortd::v1::Filter& filter) {
    std::vector<bool> accepts(dimension.values.size() + 1, false);
    for (size_t v = 0; v < dimension.values.size(); ++v) {
      accepts[v + 1] = std::find(filter.any_of().begin(), filter.any_of().end(),
                                 dimension.values[v]) != filter.any_of().end();
    }
    return accepts;
  };

  std::vector<const Dimension*> group_by;
  for (const std::string& name : request.group_by()) {
    absl::StatusOr<const Dimension*> dimension = find_dimension(name);
    if (!dimension.ok()) return dimension.status();
    group_by.push_back(*dimension);
  }
  std::vector<std::pair<const Dimension*, std::vector<bool>>> filters;
  for (const cohortd::v1::Filter& filter : request.filters()) {
    absl::StatusOr<const Dimension*> dimension =
        find_dimension(filter.dimension());
    if (!dimension.ok()) return dimension.status();
    filters.emplace_back(*dimension, accepted(**dimension, filter));
  }
  struct MetricSource {
    const std::vector<double>* measure = nullptr;
    const Dimension* rate_dimension = nullptr;
    std::vector<bool> rate_accepts;
  };
  std::vector<MetricSource> sources(request.metrics_size());
  for (int m = 0; m < request.metrics_size(); ++m) {
    const Metric& metric = request.metrics(m);
    if (metric.kind() == Metric::RATE) {
      absl::StatusOr<const Dimension*> dimension =
          find_dimension(metric.rate_of().dimension());
      if (!dimension.ok()) return dimension.status();
      sources[m].rate_dimension = *dimension;
      sources[m].rate_accepts = accepted(**dimension, metric.rate_of());
    } else if (!metric.measure().empty()) {
      auto it = measures_.find(metric.measure());
      if (it == measures_.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "truth CSV has no measure column '", metric.measure(), "'"));
      }
      sources[m].measure = &it->second;
    }
  }

  // Measure filters: the session carries the measure, raw value in range.
  struct MeasureRange {
    const std::vector<double>* values;
    cohortd::v1::MeasureFilter filter;
    bool Keeps(size_t row) const {
      const double v = (*values)[row];
      return !std::isnan(v) && (!filter.has_above() || v > filter.above()) &&
             (!filter.has_at_least() || v >= filter.at_least()) &&
             (!filter.has_below() || v < filter.below()) &&
             (!filter.has_at_most() || v <= filter.at_most());
    }
  };
  std::vector<MeasureRange> ranges;
  for (const cohortd::v1::MeasureFilter& f : request.measure_filters()) {
    auto it = measures_.find(f.measure());
    if (it == measures_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("truth CSV has no measure column '", f.measure(), "'"));
    }
    ranges.push_back({&it->second, f});
  }

  // Whether `row` is in the query, and its cohort's codes in `key`.
  auto row_key = [&](size_t row, std::vector<uint32_t>* key) {
    bool keep = true;
    for (const auto& [dimension, accepts] : filters) {
      keep = keep && accepts[dimension->codes[row]];
    }
    for (const MeasureRange& range : ranges) keep = keep && range.Keeps(row);
    for (size_t g = 0; keep && g < group_by.size(); ++g) {
      (*key)[g] = group_by[g]->codes[row];
      keep = (*key)[g] != 0;
    }
    return keep;
  };
  std::map<std::vector<uint32_t>, CohortAccumulator> cohorts;
  std::vector<uint32_t> key(group_by.size());
  for (size_t row = 0; row < accounts_.size(); ++row) {
    if (!row_key(row, &key)) continue;
    CohortAccumulator& cohort = cohorts[key];
    cohort.metrics.resize(sources.size());
    cohort.accounts.push_back(accounts_[row]);
    ++cohort.sessions;
    for (size_t m = 0; m < sources.size(); ++m) {
      MetricAccumulator& acc = cohort.metrics[m];
      const MetricSource& source = sources[m];
      if (source.rate_dimension != nullptr) {
        const uint32_t code = source.rate_dimension->codes[row];
        if (code == 0) continue;
        ++acc.count;
        acc.matches += source.rate_accepts[code] ? 1 : 0;
      } else if (source.measure != nullptr) {
        const double value = (*source.measure)[row];
        if (std::isnan(value)) continue;
        ++acc.count;
        if (request.metrics(m).kind() == Metric::GEOMETRIC_MEAN) {
          auto floor = geometric_floors_.find(request.metrics(m).measure());
          acc.sum += std::log(std::max(
              value, floor == geometric_floors_.end() ? 0.0 : floor->second));
          continue;
        }
        acc.sum += value;
        if (request.metrics(m).kind() == Metric::QUANTILES) {
          acc.values.push_back(value);
        }
      }
    }
  }

  // Adjusted metrics: the exact fixed-effects fit (AdjustedValues).
  std::vector<std::vector<double>> adjusted(request.metrics_size());
  std::map<std::vector<uint32_t>, size_t> cohort_index;
  for (const auto& [codes, unused] : cohorts) {
    cohort_index.emplace(codes, cohort_index.size());
  }
  for (int m = 0; m < request.metrics_size(); ++m) {
    const Metric& metric = request.metrics(m);
    if (metric.adjust_for().empty()) continue;
    std::vector<std::vector<uint32_t>> controls;
    for (const std::string& name : metric.adjust_for()) {
      absl::StatusOr<std::vector<uint32_t>> levels = ControlLevels(name);
      if (!levels.ok()) return levels.status();
      controls.push_back(*std::move(levels));
    }
    std::vector<FitRow> rows;
    for (size_t row = 0; row < accounts_.size(); ++row) {
      if (!row_key(row, &key)) continue;
      FitRow fit;
      fit.row = row;
      fit.cohort = cohort_index.at(key);
      const MetricSource& source = sources[m];
      if (source.rate_dimension != nullptr) {
        const uint32_t code = source.rate_dimension->codes[row];
        if (code == 0) continue;
        fit.y = source.rate_accepts[code] ? 1 : 0;
      } else if (source.measure != nullptr) {
        fit.y = (*source.measure)[row];
        if (std::isnan(fit.y)) continue;
      } else {
        continue;
      }
      bool complete = true;
      for (const auto& levels : controls) complete = complete && levels[row];
      if (complete) rows.push_back(fit);
    }
    adjusted[m] = FixedEffectsFit(rows, cohort_index.size(), controls);
  }

  TruthByCohort result;
  for (auto& [codes, acc] : cohorts) {
    CohortKey cohort_key;
    for (size_t g = 0; g < codes.size(); ++g) {
      cohort_key.push_back(group_by[g]->values[codes[g] - 1]);
    }
    CohortTruth& truth = result[cohort_key];
    std::sort(acc.accounts.begin(), acc.accounts.end());
    truth.accounts = std::unique(acc.accounts.begin(), acc.accounts.end()) -
                     acc.accounts.begin();
    truth.sessions = acc.sessions;
    for (int m = 0; m < request.metrics_size(); ++m) {
      const Metric& metric = request.metrics(m);
      MetricAccumulator& values = acc.metrics[m];
      MetricTruth& out = truth.metrics[MetricOutputName(metric)];
      switch (metric.kind()) {
        case Metric::SESSIONS:
          out.value = static_cast<double>(truth.sessions);
          break;
        case Metric::ACCOUNTS:
          out.value = static_cast<double>(truth.accounts);
          break;
        case Metric::SUM:
          out.value = values.sum;
          break;
        case Metric::MEAN:
          out.value = values.count == 0 ? kNaN : values.sum / values.count;
          if (!metric.adjust_for().empty()) {
            out.value = adjusted[m][cohort_index.at(codes)];
          }
          break;
        case Metric::GEOMETRIC_MEAN:
          out.value =
              values.count == 0 ? kNaN : std::exp(values.sum / values.count);
          break;
        case Metric::RATE:
          out.value = values.count == 0
                          ? kNaN
                          : static_cast<double>(values.matches) / values.count;
          if (!metric.adjust_for().empty()) {
            out.value = adjusted[m][cohort_index.at(codes)];
          }
          break;
        case Metric::QUANTILES:
          std::sort(values.values.begin(), values.values.end());
          for (double q : metric.quantiles()) {
            out.quantiles.push_back(
                values.values.empty() ? kNaN : LowerQuantile(values.values, q));
          }
          break;
        default:
          break;
      }
    }
  }
  return result;
}

absl::StatusOr<std::vector<uint32_t>> GroundTruth::ControlLevels(
    const std::string& name) const {
  if (auto band = bands_.find(name); band != bands_.end()) {
    auto measure = measures_.find(band->second.measure);
    if (measure == measures_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("truth CSV has no measure column '",
                       band->second.measure, "' for band '", name, "'"));
    }
    const std::vector<double>& edges = band->second.edges;
    std::vector<uint32_t> levels(measure->second.size(), 0);
    for (size_t row = 0; row < levels.size(); ++row) {
      const double v = measure->second[row];
      if (std::isnan(v)) continue;
      levels[row] = 1 + static_cast<uint32_t>(
                            std::upper_bound(edges.begin(), edges.end(), v) -
                            edges.begin());
    }
    return levels;
  }
  auto dimension = dimensions_.find(name);
  if (dimension == dimensions_.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "truth CSV has no dimension column '", name, "' and no band so named"));
  }
  return dimension->second.codes;
}

void GroundTruth::AddBand(const std::string& name, const std::string& measure,
                          const std::vector<double>& edges) {
  bands_[name] = {measure, edges};
}

void GroundTruth::SetGeometricFloors(
    const cohortd::v1::DatasetDescription& description) {
  for (const auto& measure : description.measures()) {
    geometric_floors_[measure.name()] =
        std::max(measure.lower(), measure.granularity());
  }
}

}  // namespace cohortd::cohortctl
