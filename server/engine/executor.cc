#include "server/engine/executor.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/common/status_macros.h"
#include "server/privacy/adjusted_regression.h"
#include "server/privacy/contribution_bounding.h"
#include "server/privacy/quantile_tree.h"

namespace cohortd {
namespace {

using cohortd::v1::Metric;

// Group-bys with at most this many possible keys use flat arrays.
constexpr uint64_t kDenseCohortKeys = uint64_t{1} << 20;

// Which codes of one dimension a filter (or a RATE predicate) accepts.
struct CodeSet {
  const CodeColumn* column = nullptr;
  std::vector<uint8_t> accepts;  // indexed by code
  bool Contains(uint32_t row) const { return accepts[(*column)[row]] != 0; }
};

CodeSet MakeCodeSet(
    const DatasetView& view, int dim,
    const google::protobuf::RepeatedPtrField<std::string>& values) {
  CodeSet set;
  set.column = &view.codes(dim);
  set.accepts.assign(view.dictionary(dim).cardinality(), 0);
  for (const std::string& v : values) {
    if (auto code = view.DimensionCode(dim, v)) set.accepts[*code] = 1;
  }
  return set;
}

// FNV-1a, 64 bit: a stable (process-independent) fingerprint of a cohort's
// values, which the bounder then mixes under its secret key.
uint64_t Fnv1a(uint64_t h, absl::string_view bytes) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// One control of an adjusted metric (Metric.adjust_for): a session's
// level among the plan's public levels, or -1 when it has none.
struct ControlLevels {
  const CodeColumn* codes = nullptr;       // a dimension
  std::vector<int32_t> level_of_code;      // by code; -1 = not a level
  const MeasureColumn* measure = nullptr;  // a band of this measure
  privacy::MeasureDomain domain;
  std::vector<int64_t> edges_fp;  // the band's edges in fixed point

  int32_t LevelOf(uint32_t row) const {
    if (codes != nullptr) return level_of_code[(*codes)[row]];
    if (!measure->Has(row)) return -1;
    // Integers only: edges and values on the measure's fixed-point grid.
    const int64_t v =
        std::clamp(measure->Fixed(row), domain.lower_fp, domain.upper_fp);
    return static_cast<int32_t>(
        std::upper_bound(edges_fp.begin(), edges_fp.end(), v) -
        edges_fp.begin());
  }
};

// Accumulators and mechanism of one metric.
struct MetricSlot {
  const Metric* spec = nullptr;
  const MeasureColumn* column = nullptr;  // SUM, MEAN, QUANTILES
  privacy::MeasureDomain domain;          // SUM, MEAN, QUANTILES
  CodeSet rate_of;                        // RATE
  // GEOMETRIC_MEAN: the releaser's mechanism, whose LogFixedPoint of each
  // clamped value is summed (borrowed from the releaser); it uses
  // `column` and `domain` too.
  const privacy::GeometricMeanMetric* geometric = nullptr;
  int rate_dim = -1;
  // Per cohort: SUM/MEAN (sum, count); RATE (matching a, labelled b).
  // Sums accumulate in 128 bits: no data can overflow them (at most 2^32
  // rows of fixed-point values below 2^40), so no error depends on it.
  std::vector<__int128> sum;
  std::vector<int64_t> a, b;
  // QUANTILES: sessions are counted into the quantile tree's leaves, not
  // kept as values (no sort per cohort). The account scan only records
  // each kept row's cohort (row_cohort, shared by all slots); CountLeaves
  // then makes one sequential pass over the measure column that computes
  // each kept row's leaf and counts it, per cohort, into either a
  // histogram (when cohorts x leaves is small: a few closed dimensions)
  // or a list of leaves, counted into a scratch histogram at release
  // (memory bounded by the sessions, e.g. for an open-domain group-by).
  // Counting in row order rather than inside the account loop lets the
  // histogram's scattered increments overlap: in the loop they stalled
  // it (a fifth of the box plot's scan).
  static constexpr uint64_t kMaxHistogramCells = uint64_t{1} << 20;
  privacy::QuantileLeafGrid grid;
  bool histograms = false;
  // Cohort c's counts at [c L, (c + 1) L); 32 bits (a count is at most
  // the rows, < 2^32) halve what the scattered increments touch.
  std::vector<uint32_t> histogram;
  std::vector<std::vector<uint32_t>> leaves;
  std::vector<int64_t> leaf_counts;

  // QUANTILES: `max_cohorts`: how many cohorts the query can have at most.
  void PrepareLeaves(uint64_t max_cohorts) {
    histograms =
        max_cohorts <= kMaxHistogramCells / static_cast<uint64_t>(grid.leaves);
    leaf_counts.assign(grid.leaves, 0);
  }

  // QUANTILES: counts every kept row carrying the measure into its
  // cohort's leaves; row_cohort[row] is the row's cohort, or kNoCohort
  // for a row no account kept.
  static constexpr uint32_t kNoCohort = UINT32_MAX;
  void CountLeaves(absl::Span<const uint32_t> row_cohort) {
    const uint32_t num_rows = static_cast<uint32_t>(row_cohort.size());
    const int64_t lower = column->fixed_lower();
    // Locals, so the loop keeps them in registers (the increments could
    // otherwise alias the members).
    const privacy::QuantileLeafGrid g = grid;
    uint32_t* const counts = histograms ? histogram.data() : nullptr;
    column->Visit([&](const auto* stored, auto absent) {
      for (uint32_t r = 0; r < num_rows; ++r) {
        const uint32_t c = row_cohort[r];
        if (c == kNoCohort || stored[r] == absent) continue;
        const int64_t leaf = g.LeafOf(static_cast<int64_t>(stored[r]) + lower);
        if (counts != nullptr) {
          ++counts[c * g.leaves + leaf];
        } else {
          leaves[c].push_back(static_cast<uint32_t>(leaf));
        }
      }
    });
  }

  // QUANTILES: cohort c's sessions per leaf.
  absl::Span<const int64_t> LeafCounts(uint32_t c) {
    if (histograms) {
      std::copy_n(histogram.begin() + c * grid.leaves, grid.leaves,
                  leaf_counts.begin());
      return leaf_counts;
    }
    std::fill(leaf_counts.begin(), leaf_counts.end(), 0);
    for (uint32_t leaf : leaves[c]) ++leaf_counts[leaf];
    return leaf_counts;
  }

  // NOISE_AND_SAMPLING: per cohort, each account's kept totals (the
  // cluster = account of the sampling variance, privacy/sampling_interval.h).
  bool sampling = false;
  std::vector<std::vector<privacy::AccountTotal>> account_totals;
  // Adjusted metrics: the regression's rows (kept sessions carrying the
  // metric and a level of every control): cohort, levels, centred y.
  std::vector<ControlLevels> controls;
  std::vector<int32_t> adjusted_cohort, adjusted_levels;
  std::vector<int64_t> adjusted_y;

  void RecordAdjusted(uint32_t c, uint32_t row, int64_t y) {
    const size_t mark = adjusted_levels.size();
    for (const ControlLevels& control : controls) {
      const int32_t level = control.LevelOf(row);
      if (level < 0) {
        adjusted_levels.resize(mark);
        return;
      }
      adjusted_levels.push_back(level);
    }
    adjusted_cohort.push_back(static_cast<int32_t>(c));
    adjusted_y.push_back(y);
  }

  // The regression rows grouped per cohort (`cohorts` of them) into cells
  // of equal levels, each cohort's cells ascending by levels.
  std::vector<std::vector<AdjustedCell>> AdjustedCells(size_t cohorts) const {
    const size_t d = controls.size();
    std::vector<uint32_t> rows(adjusted_cohort.size());
    for (size_t r = 0; r < rows.size(); ++r) rows[r] = static_cast<uint32_t>(r);
    auto levels_of = [&](uint32_t r) {
      return absl::MakeConstSpan(adjusted_levels).subspan(r * d, d);
    };
    std::sort(rows.begin(), rows.end(), [&](uint32_t x, uint32_t y) {
      if (adjusted_cohort[x] != adjusted_cohort[y]) {
        return adjusted_cohort[x] < adjusted_cohort[y];
      }
      const auto lx = levels_of(x), ly = levels_of(y);
      return std::lexicographical_compare(lx.begin(), lx.end(), ly.begin(),
                                          ly.end());
    });
    std::vector<std::vector<AdjustedCell>> cells(cohorts);
    for (size_t i = 0; i < rows.size(); ++i) {
      const uint32_t r = rows[i];
      std::vector<AdjustedCell>& mine = cells[adjusted_cohort[r]];
      const auto levels = levels_of(r);
      if (i == 0 || adjusted_cohort[rows[i - 1]] != adjusted_cohort[r] ||
          !std::equal(levels.begin(), levels.end(),
                      levels_of(rows[i - 1]).begin())) {
        mine.emplace_back();
        mine.back().levels.assign(levels.begin(), levels.end());
      }
      mine.back().rows += 1;
      mine.back().sum_y += adjusted_y[r];
    }
    return cells;
  }

  // The accumulators of cohort `c` before an account's sessions are added.
  struct Mark {
    __int128 sum = 0;
    int64_t a = 0, b = 0;
  };
  Mark MarkOf(uint32_t c) const {
    return {sum.empty() ? 0 : sum[c], a[c], b[c]};
  }
  // Records one account's totals in cohort `c`: what it added since
  // `before` (`sessions` kept sessions, for SESSIONS).
  void RecordAccount(uint32_t c, const Mark& before, int64_t sessions) {
    privacy::AccountTotal t;
    switch (spec->kind()) {
      case Metric::SESSIONS:
        t = {sessions, sessions};
        break;
      case Metric::SUM:
      case Metric::MEAN:
      case Metric::GEOMETRIC_MEAN:  // sums of ln values in fixed point
        // At most Linf values below 2^40 in magnitude: fits 64 bits.
        t = {static_cast<int64_t>(sum[c] - before.sum), b[c] - before.b};
        break;
      case Metric::RATE:
        t = {a[c] - before.a, b[c] - before.b};
        break;
      default:
        return;
    }
    if (t.n > 0) account_totals[c].push_back(t);
  }

  void Grow(size_t cohorts) {
    a.resize(cohorts, 0);
    b.resize(cohorts, 0);
    if (spec->kind() == Metric::SUM || spec->kind() == Metric::MEAN ||
        spec->kind() == Metric::GEOMETRIC_MEAN) {
      sum.resize(cohorts, 0);
    }
    if (spec->kind() == Metric::QUANTILES) {
      if (histograms) {
        histogram.resize(cohorts * grid.leaves, 0);
      } else {
        leaves.resize(cohorts);
      }
    }
    if (sampling) account_totals.resize(cohorts);
  }

  // Adds the kept sessions `rows` of one account in cohort `c`, in order
  // (QUANTILES: nothing; see CountLeaves).
  void AddRows(uint32_t c, absl::Span<const uint32_t> rows) {
    if (spec->kind() == Metric::QUANTILES) return;
    for (uint32_t row : rows) Add(c, row);
  }

  // Adds one kept session of cohort `c`.
  void Add(uint32_t c, uint32_t row) {
    switch (spec->kind()) {
      case Metric::SUM:
      case Metric::MEAN: {
        if (!column->Has(row)) return;  // absent measures do not count
        const int64_t v =
            std::clamp(column->Fixed(row), domain.lower_fp, domain.upper_fp);
        sum[c] += v;
        b[c] += 1;
        if (!controls.empty()) {
          RecordAdjusted(c, row, 2 * v - domain.lower_fp - domain.upper_fp);
        }
        return;
      }
      case Metric::GEOMETRIC_MEAN: {
        if (!column->Has(row)) return;  // absent measures do not count
        sum[c] += geometric->LogFixedPoint(
            std::clamp(column->Fixed(row), domain.lower_fp, domain.upper_fp));
        b[c] += 1;
        return;
      }
      case Metric::RATE:
        // The share among sessions that carry the predicate's label at
        // all: an unclassified session is neither a match nor a miss.
        if ((*rate_of.column)[row] == 0) return;
        a[c] += rate_of.Contains(row) ? 1 : 0;
        b[c] += 1;
        if (!controls.empty()) {
          RecordAdjusted(c, row, rate_of.Contains(row) ? 1 : -1);
        }
        return;
      default:
        return;
    }
  }
};

// The sessions one contributor gate counts accounts by: those carrying a
// measure, or a value of a label dimension.
struct GateSlot {
  const MeasureColumn* measure = nullptr;
  const CodeColumn* label = nullptr;
  // An adjusted metric's controls: a contributing session also has a level
  // of each (the regression's rows, MetricSlot::RecordAdjusted).
  std::vector<ControlLevels> controls;
  std::vector<int64_t> accounts;  // per cohort
  // Contributes(row) for every row (ComputeRows), read by the scan.
  std::vector<uint8_t> contributes;

  void ComputeRows(uint32_t num_rows) {
    contributes.resize(num_rows);
    if (controls.empty() && measure != nullptr) {
      measure->Visit([&](const auto* stored, auto absent) {
        for (uint32_t r = 0; r < num_rows; ++r) {
          contributes[r] = stored[r] != absent;
        }
      });
    } else if (controls.empty()) {
      label->Visit([&](const auto* codes) {
        for (uint32_t r = 0; r < num_rows; ++r) contributes[r] = codes[r] != 0;
      });
    } else {
      for (uint32_t r = 0; r < num_rows; ++r) contributes[r] = Contributes(r);
    }
  }

  bool Contributes(uint32_t row) const {
    if (measure != nullptr ? !measure->Has(row) : (*label)[row] == 0) {
      return false;
    }
    for (const ControlLevels& control : controls) {
      if (control.LevelOf(row) < 0) return false;
    }
    return true;
  }
};

void SetEstimate(const privacy::Estimate& e, cohortd::v1::Estimate* out) {
  out->set_value(e.value);
  out->set_ci_low(e.ci_low);
  out->set_ci_high(e.ci_high);
}

// The plan's bounds: its L0 is capped by the cohorts that can exist.
privacy::ContributionBounds BoundsOf(const QueryPlan& plan) {
  return {plan.max_cohorts_per_account,
          plan.dataset->privacy.max_sessions_per_cohort};
}

privacy::MetricKind KindOf(Metric::Kind kind) {
  switch (kind) {
    case Metric::SESSIONS:
      return privacy::MetricKind::kSessions;
    case Metric::ACCOUNTS:
      return privacy::MetricKind::kAccounts;
    case Metric::SUM:
      return privacy::MetricKind::kSum;
    case Metric::MEAN:
      return privacy::MetricKind::kMean;
    case Metric::RATE:
      return privacy::MetricKind::kRate;
    case Metric::GEOMETRIC_MEAN:
      return privacy::MetricKind::kGeometricMean;
    default:
      return privacy::MetricKind::kQuantiles;
  }
}

// Everything a releaser is built from: the core's parameters and metrics.
struct ReleaserInputs {
  privacy::QueryPrivacyParams params;
  std::vector<privacy::MetricRequest> metrics;
  int gates = 0;
};

absl::StatusOr<ReleaserInputs> InputsOf(const QueryPlan& plan) {
  const DatasetSpec& ds = *plan.dataset;
  ReleaserInputs in;
  in.params.k = ds.privacy.k;
  in.params.bounds = BoundsOf(plan);
  in.params.epsilon = plan.epsilon;
  in.params.delta = plan.delta;
  in.params.confidence = plan.confidence;
  // The noise chooser keeps at least as many such queries affordable in
  // the asking principal's budget (public config) as the Gaussian plan.
  in.params.reference_budget_epsilon = plan.principal_budget.epsilon;
  in.params.reference_budget_delta = plan.principal_budget.delta;
  in.gates = static_cast<int>(plan.gates.size());
  if (plan.metric_gates.size() !=
      static_cast<size_t>(plan.canonical.metrics_size())) {
    return absl::InternalError("plan without contributor gates");
  }
  for (int i = 0; i < plan.canonical.metrics_size(); ++i) {
    const Metric& m = plan.canonical.metrics(i);
    privacy::MetricRequest r;
    r.kind = KindOf(m.kind());
    r.gate = plan.metric_gates[i];
    if (!m.measure().empty()) {
      const MeasureSpec* spec = ds.FindMeasure(m.measure());
      if (spec == nullptr) return absl::InternalError("unplanned measure");
      ASSIGN_OR_RETURN(r.domain,
                       privacy::MeasureDomain::Create(spec->lower, spec->upper,
                                                      spec->granularity));
    }
    r.quantiles.assign(m.quantiles().begin(), m.quantiles().end());
    r.sampling_interval =
        plan.canonical.interval() == cohortd::v1::NOISE_AND_SAMPLING;
    r.adjusted = !plan.ControlsOf(i).empty();
    in.metrics.push_back(std::move(r));
  }
  return in;
}

// Appends the exact bytes of `v` (no rounding, no printing).
template <typename T>
void AppendBits(std::string* key, const T& v) {
  static_assert(std::is_trivially_copyable<T>::value, "plain values only");
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));
  key->append(bytes, sizeof(T));
}

// The memo key of a releaser: every input, doubles by their exact bits,
// so two inputs share a key only if they are identical (a key made of
// printed doubles would merge epsilons that differ in the 7th digit).
std::string MemoKey(const ReleaserInputs& in) {
  std::string key;
  AppendBits(&key, in.params.k);
  AppendBits(&key, in.params.bounds.max_cohorts_per_account);
  AppendBits(&key, in.params.bounds.max_sessions_per_cohort);
  AppendBits(&key, in.params.epsilon);
  AppendBits(&key, in.params.delta);
  AppendBits(&key, in.params.confidence);
  AppendBits(&key, in.params.reference_budget_epsilon);
  AppendBits(&key, in.params.reference_budget_delta);
  AppendBits(&key, in.gates);
  AppendBits(&key, in.metrics.size());
  for (const privacy::MetricRequest& m : in.metrics) {
    AppendBits(&key, m.kind);
    AppendBits(&key, m.gate);
    AppendBits(&key, m.domain.lower_fp);
    AppendBits(&key, m.domain.upper_fp);
    AppendBits(&key, m.domain.granularity);
    AppendBits(&key, m.sampling_interval);
    AppendBits(&key, m.adjusted);
    AppendBits(&key, m.quantiles.size());
    for (double q : m.quantiles) AppendBits(&key, q);
  }
  return key;
}

// An adjusted metric's placeholder Estimate: its metric, the released
// cohort (index into the result) and estimate it sits at, and the cohort's
// index in the statistics.
struct Deferred {
  size_t metric, cohort, estimate;
  size_t c;
};

// Appends the regression rows of one cohort's cells (MetricStatistics::
// adjusted) as `cohort`: each cell's `rows` rows at its levels, whose y
// values sum to the cell's sum_y and are each within [-H, H] (the cell's
// mean, the remainder spread by one unit). AdjustedRegression reads rows
// only through the integer sums X'X (cell counts) and X'y (sums of y), so
// these rows release exactly what the sessions' own rows would.
void AppendAdjustedRows(const std::vector<AdjustedCell>& cells, int32_t cohort,
                        std::vector<int32_t>* cohorts,
                        std::vector<int32_t>* levels, std::vector<int64_t>* y) {
  for (const AdjustedCell& cell : cells) {
    if (cell.rows <= 0) continue;
    const __int128 n = cell.rows;
    const int64_t base = static_cast<int64_t>(cell.sum_y / n);
    __int128 remainder = cell.sum_y - static_cast<__int128>(base) * n;
    for (int64_t r = 0; r < cell.rows; ++r) {
      int64_t v = base;
      if (remainder > 0) {
        ++v;
        --remainder;
      } else if (remainder < 0) {
        --v;
        ++remainder;
      }
      cohorts->push_back(cohort);
      levels->insert(levels->end(), cell.levels.begin(), cell.levels.end());
      y->push_back(v);
    }
  }
}

// Fills the adjusted metrics' placeholders (Metric.adjust_for): one
// AdjustedRegression per adjusted metric over the rows of the cohorts
// where it was released (partition selection and its gate passed), with
// the metric's rho share. When the noisy system is not solvable the
// placeholders are removed (the estimate is suppressed).
absl::Status ReleaseAdjusted(const QueryPlan& plan,
                             const privacy::QueryReleaser& releaser,
                             const BoundedStatistics& stats,
                             const std::vector<Deferred>& deferred,
                             RandomWords& rng, ExecutionResult* result) {
  const cohortd::v1::AggregateRequest& req = plan.canonical;
  std::vector<std::pair<size_t, size_t>> removed;  // (cohort, estimate)
  for (int i = 0; i < req.metrics_size(); ++i) {
    const std::vector<QueryPlan::Control>& controls = plan.ControlsOf(i);
    if (controls.empty()) continue;
    // Released cohorts of this metric, numbered densely in release order.
    std::vector<const Deferred*> mine;
    for (const Deferred& d : deferred) {
      if (d.metric == static_cast<size_t>(i)) mine.push_back(&d);
    }
    if (mine.empty()) continue;
    std::vector<int32_t> cohort, levels;
    std::vector<int64_t> y;
    for (size_t k = 0; k < mine.size(); ++k) {
      const std::vector<AdjustedCell>& cells =
          stats.cohorts[mine[k]->c].metrics[i].adjusted;
      for (const AdjustedCell& cell : cells) {
        if (cell.levels.size() != controls.size()) {
          return absl::InternalError(
              "backend adjusted cells do not fit the plan");
        }
      }
      AppendAdjustedRows(cells, static_cast<int32_t>(k), &cohort, &levels, &y);
    }
    std::vector<int> control_levels;
    for (const QueryPlan::Control& c : controls) {
      control_levels.push_back(static_cast<int>(c.levels.size()));
    }
    const bool is_rate = req.metrics(i).kind() == Metric::RATE;
    privacy::MeasureDomain domain;
    if (!is_rate) {
      const MeasureSpec* spec =
          plan.dataset->FindMeasure(req.metrics(i).measure());
      if (spec == nullptr) return absl::InternalError("unplanned measure");
      ASSIGN_OR_RETURN(domain,
                       privacy::MeasureDomain::Create(spec->lower, spec->upper,
                                                      spec->granularity));
    }
    const int64_t max_abs_y = is_rate ? 1 : domain.upper_fp - domain.lower_fp;
    ASSIGN_OR_RETURN(privacy::AdjustedRegression regression,
                     privacy::AdjustedRegression::Create(
                         {plan.max_cohorts_per_account,
                          plan.dataset->privacy.max_sessions_per_cohort},
                         control_levels, max_abs_y,
                         releaser.budget().rho_per_metric, plan.confidence));
    ASSIGN_OR_RETURN(std::vector<privacy::Estimate> estimates,
                     regression.Release(static_cast<int>(mine.size()), cohort,
                                        levels, y, rng));
    // Back from the centred unit: rate (y + 1) / 2; mean (y + lo + hi) / 2
    // in fixed point.
    auto value = [&](double centred) {
      return is_rate ? std::clamp((centred + 1) / 2, 0.0, 1.0)
                     : domain.ToValue(
                           (centred + domain.lower_fp + domain.upper_fp) / 2);
    };
    for (size_t k = 0; k < mine.size(); ++k) {
      if (estimates.empty()) {
        removed.emplace_back(mine[k]->cohort, mine[k]->estimate);
        continue;
      }
      cohortd::v1::Estimate* e =
          result->cohorts[mine[k]->cohort].mutable_estimates(mine[k]->estimate);
      e->set_value(value(estimates[k].value));
      e->set_ci_low(value(estimates[k].ci_low));
      e->set_ci_high(value(estimates[k].ci_high));
    }
  }
  // Last first, so earlier positions stay valid.
  std::sort(removed.rbegin(), removed.rend());
  for (const auto& [c, e] : removed) {
    result->cohorts[c].mutable_estimates()->DeleteSubrange(static_cast<int>(e),
                                                           1);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<privacy::QueryReleaser> MakeReleaser(const QueryPlan& plan) {
  // Building the mechanisms solves for each interval's exact quantile and
  // partition selection's threshold (sums over the pmf: about a
  // millisecond), yet depends only on the inputs below, which repeat
  // across queries: memoise (bounded, thread-safe). The key is made of the
  // inputs themselves, not of the dataset's address, so a config loaded
  // later at the same address cannot be served a stale releaser.
  ASSIGN_OR_RETURN(ReleaserInputs inputs, InputsOf(plan));
  std::string key = MemoKey(inputs);
  static absl::Mutex mu(absl::kConstInit);
  static auto* cache ABSL_GUARDED_BY(mu) =
      new absl::flat_hash_map<std::string, privacy::QueryReleaser>();
  {
    absl::MutexLock lock(&mu);
    auto it = cache->find(key);
    if (it != cache->end()) return it->second;
  }
  absl::StatusOr<privacy::QueryReleaser> releaser =
      privacy::QueryReleaser::Create(inputs.params, std::move(inputs.metrics),
                                     inputs.gates);
  if (releaser.ok()) {
    absl::MutexLock lock(&mu);
    if (cache->size() >= 1024) cache->clear();
    cache->emplace(std::move(key), *releaser);
  }
  return releaser;
}

absl::StatusOr<std::vector<double>> PredictHalfWidths(const QueryPlan& plan,
                                                      double epsilon,
                                                      int64_t cohort_sessions) {
  ASSIGN_OR_RETURN(ReleaserInputs inputs, InputsOf(plan));
  inputs.params.epsilon = epsilon;
  ASSIGN_OR_RETURN(privacy::QueryReleaser releaser,
                   privacy::QueryReleaser::Create(
                       inputs.params, std::move(inputs.metrics), inputs.gates));
  std::vector<double> widths;
  for (int i = 0; i < plan.canonical.metrics_size(); ++i) {
    absl::StatusOr<double> w = releaser.PredictedHalfWidth(i, cohort_sessions);
    if (!w.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric '", plan.canonical.metrics(i).name(),
                       "': ", w.status().message()));
    }
    widths.push_back(*w);
  }
  return widths;
}

namespace {

// The search of ChooseEpsilonForAccuracy, uncached.
absl::StatusOr<double> SearchEpsilon(const QueryPlan& plan, double wanted,
                                     int64_t n) {
  const double max_epsilon = plan.dataset->privacy.max_epsilon;
  // How far the widest metric is from the accuracy, in log units: > 0
  // misses it, <= 0 meets it; non-increasing in epsilon. Parameters the
  // core refuses (an epsilon so small that sigma exceeds the sampler's
  // range) miss every accuracy.
  auto miss = [&](double epsilon) -> absl::StatusOr<double> {
    absl::StatusOr<std::vector<double>> widths =
        PredictHalfWidths(plan, epsilon, n);
    if (!widths.ok()) {
      if (epsilon == max_epsilon) return widths.status();
      return std::numeric_limits<double>::infinity();
    }
    double widest = 0;
    for (double w : *widths) widest = std::max(widest, w);
    return std::log(widest / wanted);
  };
  // A metric without a data-independent width is the caller's error,
  // whatever the epsilon: the first probe, at the maximum, tells.
  absl::StatusOr<double> at_max = miss(max_epsilon);
  if (!at_max.ok()) {
    return absl::Status(at_max.status().code(),
                        absl::StrCat("accuracy: ", at_max.status().message(),
                                     "; ask for an epsilon instead"));
  }
  // Below a millionth of the maximum is not worth telling apart; above
  // 2^20 times it, no accuracy is worth naming.
  const double floor = max_epsilon * 1e-6;
  const double ceiling = max_epsilon * 0x1p20;
  // Widths fall about as 1 / epsilon, so the first guess is the maximum
  // scaled by the miss; steps of 1.5x then bracket the answer as
  // [low (misses), high (meets)].
  double guess = std::clamp(max_epsilon * std::exp(*at_max), floor, ceiling);
  double f_guess = guess == max_epsilon ? *at_max : *miss(guess);
  double low, f_low, high, f_high;
  if (f_guess <= 0) {
    high = guess;
    f_high = f_guess;
    low = guess;
    f_low = f_guess;
    while (f_low <= 0) {
      if (low <= floor) return floor;
      high = low;
      f_high = f_low;
      low = std::max(low / 1.5, floor);
      f_low = *miss(low);
    }
  } else {
    low = guess;
    f_low = f_guess;
    high = guess;
    f_high = f_guess;
    while (f_high > 0) {
      if (high >= ceiling) {
        return absl::FailedPreconditionError(absl::StrCat(
            "accuracy: no epsilon up to ", ceiling,
            " gives every metric a half-width of ", wanted, " for cohorts of ",
            n, " sessions; ask for a wider interval or larger cohorts"));
      }
      low = high;
      f_low = f_high;
      high = std::min(high * 1.5, ceiling);
      f_high = *miss(high);  // only the maximum's probe can fail
    }
  }
  // Shrinks the bracket on log(epsilon) to a relative width of 1e-4 by
  // false position (Illinois variant), with a bisection step every third
  // probe so the count is bounded whatever the shape (half-widths move in
  // integer steps).
  int side = 0;
  for (int probe = 0; high / low > 1 + 1e-4 && probe < 100; ++probe) {
    const double a = std::log(low), b = std::log(high);
    double x = 0.5 * (a + b);
    if (probe % 3 != 2 && std::isfinite(f_low) && f_low != f_high) {
      x = b - f_high * (b - a) / (f_high - f_low);
    }
    const double margin = 1e-3 * (b - a);  // strictly inside
    const double e = std::exp(std::clamp(x, a + margin, b - margin));
    const double f = *miss(e);
    if (f > 0) {
      low = e;
      f_low = f;
      if (side == -1) f_high /= 2;
      side = -1;
    } else {
      high = e;
      f_high = f;
      if (side == 1) f_low /= 2;
      side = 1;
    }
  }
  // 4 significant digits, rounded up (so it still meets the accuracy).
  const double scale = std::pow(10.0, std::floor(std::log10(high)) - 3);
  const double rounded = std::ceil(high / scale - 1e-9) * scale;
  if (high > max_epsilon) {
    return absl::FailedPreconditionError(absl::StrCat(
        "accuracy: a half-width of ", wanted, " for cohorts of ", n,
        " sessions needs epsilon ", rounded,
        ", above this dataset's per-query maximum of ", max_epsilon));
  }
  if (rounded <= max_epsilon && *miss(rounded) <= 0) return rounded;
  return high;
}

}  // namespace

absl::StatusOr<double> ChooseEpsilonForAccuracy(
    const QueryPlan& plan, const cohortd::v1::Accuracy& accuracy) {
  // The search builds a releaser per probe (tens of milliseconds each),
  // and a repeated question (e.g. one the release cache answers) would
  // search again: memoise on every input of the search (bounded,
  // thread-safe).
  ASSIGN_OR_RETURN(ReleaserInputs inputs, InputsOf(plan));
  std::string key = MemoKey(inputs);
  AppendBits(&key, plan.dataset->privacy.max_epsilon);
  AppendBits(&key, accuracy.half_width());
  AppendBits(&key, accuracy.cohort_sessions());
  static absl::Mutex mu(absl::kConstInit);
  static auto* memo ABSL_GUARDED_BY(mu) =
      new absl::flat_hash_map<std::string, absl::StatusOr<double>>();
  {
    absl::MutexLock lock(&mu);
    auto it = memo->find(key);
    if (it != memo->end()) return it->second;
  }
  absl::StatusOr<double> epsilon =
      SearchEpsilon(plan, accuracy.half_width(), accuracy.cohort_sessions());
  absl::MutexLock lock(&mu);
  if (memo->size() >= 1024) memo->clear();
  memo->emplace(std::move(key), epsilon);
  return epsilon;
}

absl::StatusOr<BoundedStatistics> ComputeBoundedStatistics(
    const QueryPlan& plan, const DatasetView& view,
    absl::string_view bounding_key) {
  const DatasetSpec& ds = *plan.dataset;
  const cohortd::v1::AggregateRequest& req = plan.canonical;
  ASSIGN_OR_RETURN(
      privacy::ContributionBounder bounder,
      privacy::ContributionBounder::Create(BoundsOf(plan), bounding_key));

  // Columns of the group-by and filter dimensions.
  std::vector<int> group_dims;
  std::vector<const CodeColumn*> group_columns;
  for (const std::string& name : req.group_by()) {
    const int dim = view.FindDimension(name);
    if (dim < 0) return absl::InternalError("planned dimension not indexed");
    group_dims.push_back(dim);
    group_columns.push_back(&view.codes(dim));
  }
  ASSIGN_OR_RETURN(CohortKeyer keyer, CohortKeyer::Create(view, group_dims));
  std::vector<CodeSet> filters;
  for (const auto& f : req.filters()) {
    const int dim = view.FindDimension(f.dimension());
    if (dim < 0) return absl::InternalError("planned dimension not indexed");
    filters.push_back(MakeCodeSet(view, dim, f.any_of()));
  }

  // GEOMETRIC_MEAN sums each value's LogFixedPoint, which the plan's
  // releaser's mechanism defines (data-independent; memoised).
  std::optional<privacy::QueryReleaser> releaser;
  for (const Metric& m : req.metrics()) {
    if (m.kind() == Metric::GEOMETRIC_MEAN && !releaser.has_value()) {
      ASSIGN_OR_RETURN(releaser, MakeReleaser(plan));
    }
  }

  // Per-metric columns and accumulators.
  std::vector<MetricSlot> slots(req.metrics_size());
  for (int i = 0; i < req.metrics_size(); ++i) {
    MetricSlot& s = slots[i];
    s.spec = &req.metrics(i);
    s.sampling = req.interval() == cohortd::v1::NOISE_AND_SAMPLING;
    if (!s.spec->measure().empty()) {
      const MeasureSpec* m = ds.FindMeasure(s.spec->measure());
      const int index = view.FindMeasure(s.spec->measure());
      if (m == nullptr || index < 0) {
        return absl::InternalError("planned measure not indexed");
      }
      s.column = &view.measure(index);
      ASSIGN_OR_RETURN(s.domain, privacy::MeasureDomain::Create(
                                     m->lower, m->upper, m->granularity));
      if (s.spec->kind() == Metric::QUANTILES) {
        ASSIGN_OR_RETURN(s.grid, privacy::QuantileTree::Grid(s.domain));
        s.PrepareLeaves(keyer.num_cohorts());
      }
    }
    if (s.spec->kind() == Metric::GEOMETRIC_MEAN) {
      s.geometric = releaser->geometric_mean(i);
      if (s.geometric == nullptr) {
        return absl::InternalError("releaser of another plan");
      }
    }
    if (s.spec->kind() == Metric::RATE) {
      s.rate_dim = view.FindDimension(s.spec->rate_of().dimension());
      if (s.rate_dim < 0) {
        return absl::InternalError("planned dimension not indexed");
      }
      s.rate_of = MakeCodeSet(view, s.rate_dim, s.spec->rate_of().any_of());
    }
    for (const QueryPlan::Control& control : plan.ControlsOf(i)) {
      ControlLevels levels;
      if (control.band != nullptr) {
        const MeasureSpec* m = ds.FindMeasure(control.band->measure);
        const int index = view.FindMeasure(control.band->measure);
        if (m == nullptr || index < 0) {
          return absl::InternalError("planned band measure not indexed");
        }
        levels.measure = &view.measure(index);
        ASSIGN_OR_RETURN(
            levels.domain,
            privacy::MeasureDomain::Create(m->lower, m->upper, m->granularity));
        for (double e : control.band->edges) {
          levels.edges_fp.push_back(std::llround(e / m->granularity));
        }
      } else {
        const int dim = view.FindDimension(control.name);
        if (dim < 0) return absl::InternalError("planned control not indexed");
        levels.codes = &view.codes(dim);
        levels.level_of_code.assign(view.dictionary(dim).cardinality(), -1);
        for (size_t l = 0; l < control.levels.size(); ++l) {
          if (auto code = view.DimensionCode(dim, control.levels[l])) {
            levels.level_of_code[*code] = static_cast<int32_t>(l);
          }
        }
      }
      s.controls.push_back(std::move(levels));
    }
  }
  // Contributor gates: the accounts that reach each gated metric.
  std::vector<GateSlot> gates(plan.gates.size());
  for (size_t g = 0; g < plan.gates.size(); ++g) {
    if (!plan.gates[g].measure.empty()) {
      const int index = view.FindMeasure(plan.gates[g].measure);
      if (index < 0) return absl::InternalError("planned measure not indexed");
      gates[g].measure = &view.measure(index);
    } else {
      const int dim = view.FindDimension(plan.gates[g].label);
      if (dim < 0) {
        return absl::InternalError("planned dimension not indexed");
      }
      gates[g].label = &view.codes(dim);
    }
    if (plan.gates[g].controls_of >= 0) {
      gates[g].controls = slots[plan.gates[g].controls_of].controls;
      if (gates[g].controls.size() != plan.gates[g].controls.size()) {
        return absl::InternalError("planned controls not indexed");
      }
    }
  }
  // Cohort registry: keyer key -> dense cohort number, and each key's
  // stable fingerprint (computed once). Small key spaces (the common case:
  // a few closed dimensions) use flat arrays indexed by key; others, e.g.
  // an open-domain group-by, hash maps.
  const bool dense = keyer.num_cohorts() <= kDenseCohortKeys;
  std::vector<int32_t> dense_cohort;
  std::vector<uint64_t> dense_fingerprint;
  std::vector<uint8_t> dense_fingerprint_known;
  if (dense) {
    dense_cohort.assign(keyer.num_cohorts(), -1);
    dense_fingerprint.assign(keyer.num_cohorts(), 0);
    dense_fingerprint_known.assign(keyer.num_cohorts(), 0);
  }
  absl::flat_hash_map<uint64_t, uint32_t> cohort_of_key;
  absl::flat_hash_map<uint64_t, uint64_t> fingerprint_of_key;
  std::vector<uint64_t> cohort_keys;
  std::vector<int64_t> cohort_accounts, cohort_sessions;
  auto compute_fingerprint = [&](uint64_t key) {
    uint64_t h = 0xcbf29ce484222325ULL;
    const std::vector<uint32_t> codes = keyer.Decode(key);
    for (size_t i = 0; i < codes.size(); ++i) {
      h = Fnv1a(h, view.DimensionValue(group_dims[i], codes[i]));
      h = Fnv1a(h, absl::string_view("\0", 1));
    }
    return h;
  };
  auto cohort_fingerprint = [&](uint64_t key) {
    if (dense) {
      if (!dense_fingerprint_known[key]) {
        dense_fingerprint[key] = compute_fingerprint(key);
        dense_fingerprint_known[key] = 1;
      }
      return dense_fingerprint[key];
    }
    auto [it, inserted] = fingerprint_of_key.try_emplace(key, 0);
    if (inserted) it->second = compute_fingerprint(key);
    return it->second;
  };
  auto cohort_number = [&](uint64_t key) {
    uint32_t c;
    if (dense) {
      if (dense_cohort[key] >= 0) {
        return static_cast<uint32_t>(dense_cohort[key]);
      }
      c = static_cast<uint32_t>(cohort_keys.size());
      dense_cohort[key] = static_cast<int32_t>(c);
    } else {
      auto [it, inserted] = cohort_of_key.try_emplace(
          key, static_cast<uint32_t>(cohort_keys.size()));
      if (!inserted) return it->second;
      c = it->second;
    }
    cohort_keys.push_back(key);
    cohort_accounts.push_back(0);
    cohort_sessions.push_back(0);
    for (MetricSlot& s : slots) s.Grow(cohort_keys.size());
    for (GateSlot& g : gates) g.accounts.push_back(0);
    return c;
  };

  // The bounded scan. An account's sessions are gathered as (cohort key,
  // row) pairs, grouped by key (ascending; rows ascending within a key:
  // the order the bounder's positions and every accumulator see), and at
  // most L0 cohorts and Linf sessions per cohort are kept. Most accounts
  // have one matching session and take a short path with the same
  // result; grouping needs no comparison sort for most of the others.
  const size_t max_cohorts = plan.max_cohorts_per_account;
  const size_t max_sessions = ds.privacy.max_sessions_per_cohort;
  bool any_sampling = false, any_quantiles = false;
  for (const MetricSlot& s : slots) {
    any_sampling |= s.sampling;
    any_quantiles |= s.spec->kind() == Metric::QUANTILES;
  }

  // Column at a time first: which rows pass the filters and carry every
  // group-by label, and their cohort keys (the keyer's mixed radix); a row
  // that does not pass gets kNoKey. These sequential passes over narrow
  // columns cost a fraction of a millisecond at 400k rows; the
  // per-account pass below then only gathers one array.
  const uint32_t num_rows = view.num_sessions();
  std::vector<uint8_t> passes(num_rows, 1);
  for (const CodeSet& f : filters) {
    f.column->Visit([&](const auto* codes) {
      for (uint32_t r = 0; r < num_rows; ++r) passes[r] &= f.accepts[codes[r]];
    });
  }
  // Measure filters: the session carries the measure and its stored
  // (clamped, fixed-point) value is in the planned range.
  for (const QueryPlan::MeasureRange& range : plan.measure_ranges) {
    const int index = view.FindMeasure(range.measure);
    if (index < 0) return absl::InternalError("planned measure not indexed");
    const MeasureColumn& column = view.measure(index);
    // Stored values are offsets from fixed_lower(); the range's too.
    const int64_t base = column.fixed_lower();
    const uint64_t low = static_cast<uint64_t>(range.lower_fp - base);
    const uint64_t high = static_cast<uint64_t>(range.upper_fp - base);
    column.Visit([&](const auto* stored, auto absent) {
      for (uint32_t r = 0; r < num_rows; ++r) {
        const uint64_t v = stored[r];
        passes[r] &= stored[r] != absent && v >= low && v <= high;
      }
    });
  }
  // Keys are below num_cohorts() <= 2^62, so kNoKey is never a key. The
  // first dimension's pass sets the key (no multiply), the last one's
  // folds in `passes`.
  constexpr uint64_t kNoKey = ~uint64_t{0};
  std::vector<uint64_t> row_key(num_rows, 0);
  for (size_t i = 0; i < group_columns.size(); ++i) {
    const uint64_t radix = view.dictionary(group_dims[i]).cardinality();
    const bool first = i == 0, last = i + 1 == group_columns.size();
    group_columns[i]->Visit([&](const auto* codes) {
      for (uint32_t r = 0; r < num_rows; ++r) {
        // No value for a group-by dimension: the row does not pass.
        const bool pass = passes[r] && codes[r] != 0;
        const uint64_t key = first ? codes[r] : row_key[r] * radix + codes[r];
        passes[r] = pass;
        row_key[r] = !last ? key : pass ? key : kNoKey;
      }
    });
  }
  if (group_columns.empty()) {
    for (uint32_t r = 0; r < num_rows; ++r) {
      row_key[r] = passes[r] ? 0 : kNoKey;
    }
  }
  // Each gate's verdict per row (GateSlot::Contributes), in one pass.
  for (GateSlot& g : gates) g.ComputeRows(num_rows);
  // QUANTILES: the cohort each kept row was kept in (MetricSlot::
  // CountLeaves); a row is in one cohort, so it is kept at most once.
  std::vector<uint32_t> row_cohort;
  if (any_quantiles) row_cohort.assign(num_rows, MetricSlot::kNoCohort);

  // Per-account scratch, reused so the loop allocates only on growth.
  // matched[0, n): the account's passing (key, row) pairs; `grouped` is
  // the counting sort's output.
  using KeyRow = std::pair<uint64_t, uint32_t>;
  std::vector<KeyRow> matched_buffer, grouped_buffer;
  std::vector<uint64_t> account_cohorts, cohort_fps, session_fps;
  std::vector<size_t> cohort_begin;
  std::vector<uint32_t> selected_cohorts, selected_sessions, kept_rows;
  std::vector<MetricSlot::Mark> marks;
  // Counting sort of a large account's pairs by dense key: the position of
  // each key among the account's distinct keys (kUnseen: not seen), reset
  // after each account, and the distinct keys with their session counts.
  constexpr uint32_t kUnseen = UINT32_MAX;
  std::vector<uint32_t> key_slot;
  std::vector<std::pair<uint64_t, size_t>> key_counts;
  if (dense) key_slot.assign(keyer.num_cohorts(), kUnseen);

  // Groups matched[0, n) (rows ascending) by key into account_cohorts and
  // cohort_begin ([0, *cohorts) and [0, *cohorts] of buffers holding at
  // least n and n + 1: plain stores, no push_back); returns the pairs in
  // (key, row) order (`matched` itself or the grouped buffer).
  auto group_by_key = [&](KeyRow* matched, size_t n,
                          size_t* cohorts) -> KeyRow* {
    size_t t = 0;
    bool one_key = true;
    for (size_t i = 1; i < n && one_key; ++i) {
      one_key = matched[i].first == matched[0].first;
    }
    if (!one_key && dense && n > 16) {
      // Counting sort: O(n + distinct keys log distinct keys), stable, so
      // rows stay ascending within a key.
      key_counts.clear();
      for (size_t i = 0; i < n; ++i) {
        uint32_t& slot = key_slot[matched[i].first];
        if (slot == kUnseen) {
          slot = static_cast<uint32_t>(key_counts.size());
          key_counts.emplace_back(matched[i].first, 0);
        }
        ++key_counts[slot].second;
      }
      std::sort(key_counts.begin(), key_counts.end());
      size_t next = 0;
      for (const auto& [key, count] : key_counts) {
        key_slot[key] = static_cast<uint32_t>(next);  // now: next position
        account_cohorts[t] = key;
        cohort_begin[t++] = next;
        next += count;
      }
      cohort_begin[t] = n;
      *cohorts = t;
      if (grouped_buffer.size() < n) grouped_buffer.resize(n);
      KeyRow* grouped = grouped_buffer.data();
      for (size_t i = 0; i < n; ++i) {
        grouped[key_slot[matched[i].first]++] = matched[i];
      }
      for (const auto& [key, count] : key_counts) key_slot[key] = kUnseen;
      return grouped;
    }
    if (!one_key) {
      // Small accounts (and hash-keyed group-bys): sorting (key, row)
      // pairs whose rows ascend is a stable sort by key.
      if (n > 16) {
        std::sort(matched, matched + n);
      } else {
        for (size_t i = 1; i < n; ++i) {
          const KeyRow x = matched[i];
          size_t j = i;
          for (; j > 0 && matched[j - 1].first > x.first; --j) {
            matched[j] = matched[j - 1];
          }
          matched[j] = x;
        }
      }
    }
    for (size_t i = 0; i < n; ++i) {
      if (i == 0 || matched[i].first != matched[i - 1].first) {
        account_cohorts[t] = matched[i].first;
        cohort_begin[t++] = i;
      }
    }
    cohort_begin[t] = n;
    *cohorts = t;
    return matched;
  };

  // Accumulates one account's kept sessions `rows` (ascending) in cohort c.
  auto keep = [&](uint32_t c, absl::Span<const uint32_t> rows) {
    const int64_t sessions = static_cast<int64_t>(rows.size());
    cohort_accounts[c] += 1;
    cohort_sessions[c] += sessions;
    if (any_sampling) {
      marks.clear();
      for (const MetricSlot& s : slots) {
        marks.push_back(s.sampling ? s.MarkOf(c) : MetricSlot::Mark());
      }
    }
    for (MetricSlot& s : slots) s.AddRows(c, rows);
    if (any_sampling) {
      for (size_t i = 0; i < slots.size(); ++i) {
        if (slots[i].sampling) slots[i].RecordAccount(c, marks[i], sessions);
      }
    }
    if (any_quantiles) {
      for (uint32_t row : rows) row_cohort[row] = c;
    }
    // An account counts for a gate when one of its kept sessions in the
    // cohort contributes to the gate's metrics.
    for (GateSlot& g : gates) {
      for (uint32_t row : rows) {
        if (g.contributes[row]) {
          g.accounts[c] += 1;
          break;
        }
      }
    }
  };

  // cohort_number's common case, inline: a dense key already numbered.
  auto cohort_of = [&](uint64_t key) -> uint32_t {
    if (dense && dense_cohort[key] >= 0) {
      return static_cast<uint32_t>(dense_cohort[key]);
    }
    return cohort_number(key);
  };

  view.ForEachAccount([&](const AccountRows& account) {
    const size_t most = account.num_sessions();
    if (matched_buffer.size() < most) matched_buffer.resize(most);
    KeyRow* matched = matched_buffer.data();
    size_t n = 0;
    // Rows come in ascending order (sorted region, then the tail sorted by
    // row); were they not, sorting the pairs restores the same order.
    bool ascending = true;
    uint32_t last = 0;
    account.ForEachRow([&](uint32_t row) {
      const uint64_t key = row_key[row];
      if (key == kNoKey) return;
      ascending &= n == 0 || row > last;
      last = row;
      matched[n++] = {key, row};
    });
    if (n == 0) return;
    if (n == 1) {  // one session: one cohort, kept whole
      const uint32_t row = matched[0].second;
      const uint32_t c = cohort_of(matched[0].first);
      if (any_sampling) {
        keep(c, absl::MakeConstSpan(&row, 1));
        return;
      }
      // keep() for one row, inline (two accounts in three take this path).
      cohort_accounts[c] += 1;
      cohort_sessions[c] += 1;
      for (MetricSlot& s : slots) {
        if (s.spec->kind() != Metric::QUANTILES) s.Add(c, row);
      }
      if (any_quantiles) row_cohort[row] = c;
      for (GateSlot& g : gates) g.accounts[c] += g.contributes[row];
      return;
    }
    if (!ascending) std::sort(matched, matched + n);
    if (account_cohorts.size() < n) {
      account_cohorts.resize(n);
      cohort_begin.resize(n + 1);
      kept_rows.resize(n);
    }
    size_t cohorts;
    matched = group_by_key(matched, n, &cohorts);

    const bool bound_cohorts = cohorts > max_cohorts;
    if (bound_cohorts) {
      cohort_fps.clear();
      for (size_t i = 0; i < cohorts; ++i) {
        cohort_fps.push_back(cohort_fingerprint(account_cohorts[i]));
      }
      bounder.SelectCohorts(view.AccountFingerprint(account.account),
                            cohort_fps, &selected_cohorts);
    }
    const size_t kept_cohorts =
        bound_cohorts ? selected_cohorts.size() : cohorts;
    for (size_t k = 0; k < kept_cohorts; ++k) {
      const size_t pos = bound_cohorts ? selected_cohorts[k] : k;
      const uint32_t c = cohort_of(account_cohorts[pos]);
      const size_t begin = cohort_begin[pos], end = cohort_begin[pos + 1];
      size_t kept = 0;
      if (end - begin > max_sessions) {
        session_fps.clear();
        for (size_t i = begin; i < end; ++i) {
          session_fps.push_back(view.RowFingerprint(matched[i].second));
        }
        bounder.SelectSessions(cohort_fingerprint(account_cohorts[pos]),
                               session_fps, &selected_sessions);
        for (uint32_t j : selected_sessions) {
          kept_rows[kept++] = matched[begin + j].second;
        }
      } else {
        for (size_t i = begin; i < end; ++i) {
          kept_rows[kept++] = matched[i].second;
        }
      }
      keep(c, absl::MakeConstSpan(kept_rows.data(), kept));
    }
  });
  for (MetricSlot& s : slots) {
    if (s.spec->kind() == Metric::QUANTILES) s.CountLeaves(row_cohort);
  }

  // The statistics, in the order of the cohorts' values.
  std::vector<std::pair<std::vector<std::string>, uint32_t>> order;
  order.reserve(cohort_keys.size());
  for (uint32_t c = 0; c < cohort_keys.size(); ++c) {
    std::vector<std::string> values;
    const std::vector<uint32_t> codes = keyer.Decode(cohort_keys[c]);
    for (size_t i = 0; i < codes.size(); ++i) {
      values.emplace_back(view.DimensionValue(group_dims[i], codes[i]));
    }
    order.emplace_back(std::move(values), c);
  }
  std::sort(order.begin(), order.end());

  // Adjusted metrics: each cohort's regression rows as cells.
  std::vector<std::vector<std::vector<AdjustedCell>>> cells(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!slots[i].controls.empty()) {
      cells[i] = slots[i].AdjustedCells(cohort_keys.size());
    }
  }
  BoundedStatistics stats;
  stats.cohorts.reserve(order.size());
  for (auto& [values, c] : order) {
    CohortStatistics cohort;
    cohort.key = std::move(values);
    cohort.accounts = cohort_accounts[c];
    cohort.sessions = cohort_sessions[c];
    for (const GateSlot& g : gates) {
      cohort.gate_accounts.push_back(g.accounts[c]);
    }
    cohort.metrics.resize(slots.size());
    for (size_t i = 0; i < slots.size(); ++i) {
      MetricSlot& s = slots[i];
      MetricStatistics& m = cohort.metrics[i];
      if (s.sampling) m.account_totals = std::move(s.account_totals[c]);
      if (!cells[i].empty()) m.adjusted = std::move(cells[i][c]);
      switch (s.spec->kind()) {
        case Metric::SESSIONS:
          m.sessions = cohort_sessions[c];
          break;
        case Metric::SUM:
          m.sum_fp = s.sum[c];
          break;
        case Metric::MEAN:
        case Metric::GEOMETRIC_MEAN:
          m.sum_fp = s.sum[c];
          m.sessions = s.b[c];
          break;
        case Metric::RATE:
          m.matching = s.a[c];
          m.sessions = s.b[c];
          break;
        case Metric::QUANTILES: {
          const absl::Span<const int64_t> counts = s.LeafCounts(c);
          for (size_t leaf = 0; leaf < counts.size(); ++leaf) {
            if (counts[leaf] > 0) {
              m.leaf_counts.emplace_back(static_cast<int64_t>(leaf),
                                         counts[leaf]);
            }
          }
          break;
        }
        default:
          break;
      }
    }
    stats.cohorts.push_back(std::move(cohort));
  }
  return stats;
}

absl::StatusOr<ExecutionResult> ReleaseStatistics(
    const QueryPlan& plan, const BoundedStatistics& stats,
    const privacy::QueryReleaser& releaser, RandomWords& rng) {
  const cohortd::v1::AggregateRequest& req = plan.canonical;
  const size_t num_metrics = static_cast<size_t>(req.metrics_size());
  const bool sampling = req.interval() == cohortd::v1::NOISE_AND_SAMPLING;
  // Each QUANTILES metric's leaf grid, to expand its sparse histogram into
  // the dense leaf counts the quantile tree releases from.
  std::vector<int64_t> leaves(num_metrics, 0);
  for (size_t i = 0; i < num_metrics; ++i) {
    const Metric& m = req.metrics(static_cast<int>(i));
    if (m.kind() != Metric::QUANTILES) continue;
    const MeasureSpec* spec = plan.dataset->FindMeasure(m.measure());
    if (spec == nullptr) return absl::InternalError("unplanned measure");
    ASSIGN_OR_RETURN(privacy::MeasureDomain domain,
                     privacy::MeasureDomain::Create(spec->lower, spec->upper,
                                                    spec->granularity));
    ASSIGN_OR_RETURN(privacy::QuantileLeafGrid grid,
                     privacy::QuantileTree::Grid(domain));
    leaves[i] = grid.leaves;
  }

  ExecutionResult result;
  result.candidate_cohorts = stats.cohorts.size();
  std::vector<Deferred> deferred;
  std::vector<privacy::MetricInput> inputs(num_metrics);
  std::vector<std::vector<int64_t>> dense(num_metrics);
  for (size_t ci = 0; ci < stats.cohorts.size(); ++ci) {
    const CohortStatistics& c = stats.cohorts[ci];
    if (c.metrics.size() != num_metrics ||
        c.gate_accounts.size() != plan.gates.size() ||
        c.key.size() != static_cast<size_t>(req.group_by_size())) {
      return absl::InternalError("backend statistics do not fit the plan");
    }
    for (size_t i = 0; i < num_metrics; ++i) {
      const MetricStatistics& m = c.metrics[i];
      privacy::MetricInput& in = inputs[i];
      in = privacy::MetricInput();
      in.sessions = m.sessions;
      in.sum_fp = m.sum_fp;
      in.matching = m.matching;
      if (sampling) in.account_totals = m.account_totals;
      if (leaves[i] > 0) {
        dense[i].assign(static_cast<size_t>(leaves[i]), 0);
        for (const auto& [leaf, count] : m.leaf_counts) {
          if (leaf < 0 || leaf >= leaves[i] || count < 0) {
            return absl::InternalError("backend histogram outside the grid");
          }
          dense[i][static_cast<size_t>(leaf)] += count;
        }
        in.leaf_counts = dense[i];
      }
    }
    ASSIGN_OR_RETURN(
        privacy::CohortRelease release,
        releaser.ReleaseCohort(c.accounts, c.gate_accounts, inputs, rng));
    if (!release.released) continue;
    cohortd::v1::Cohort cohort;
    for (size_t i = 0; i < c.key.size(); ++i) {
      (*cohort.mutable_key())[req.group_by(static_cast<int>(i))] = c.key[i];
    }
    for (size_t i = 0; i < num_metrics; ++i) {
      const privacy::MetricOutput& out = release.metrics[i];
      // A metric whose contributor gate failed is omitted: the cohort
      // carries no Estimate with its name (API: a suppressed estimate).
      if (out.suppressed) continue;
      if (out.deferred) {
        deferred.push_back({i, result.cohorts.size(),
                            static_cast<size_t>(cohort.estimates_size()), ci});
      }
      cohortd::v1::Estimate* e = cohort.add_estimates();
      e->set_metric(req.metrics(static_cast<int>(i)).name());
      SetEstimate(out.estimate, e);
      for (const auto& q : out.quantiles) {
        cohortd::v1::Quantile* p = e->add_quantiles();
        p->set_q(q.q);
        p->set_value(q.estimate.value);
        p->set_ci_low(q.estimate.ci_low);
        p->set_ci_high(q.estimate.ci_high);
        // A box plot's centre line doubles as the estimate's value.
        if (q.q == 0.5) SetEstimate(q.estimate, e);
      }
    }
    result.cohorts.push_back(std::move(cohort));
  }
  RETURN_IF_ERROR(
      ReleaseAdjusted(plan, releaser, stats, deferred, rng, &result));
  return result;
}

absl::StatusOr<ExecutionResult> ExecuteQuery(
    const QueryPlan& plan, const DatasetView& view,
    const privacy::QueryReleaser& releaser, absl::string_view bounding_key,
    RandomWords& rng) {
  ASSIGN_OR_RETURN(BoundedStatistics stats,
                   ComputeBoundedStatistics(plan, view, bounding_key));
  return ReleaseStatistics(plan, stats, releaser, rng);
}

}  // namespace cohortd
