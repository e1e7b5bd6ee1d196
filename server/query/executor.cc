#include "server/query/executor.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/common/status_macros.h"
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

// Accumulators and mechanism of one metric.
struct MetricSlot {
  const Metric* spec = nullptr;
  const MeasureColumn* column = nullptr;  // SUM, MEAN, QUANTILES
  privacy::MeasureDomain domain;          // SUM, MEAN, QUANTILES
  CodeSet rate_of;                        // RATE
  int rate_dim = -1;
  // Per cohort: SUM/MEAN (sum, count); RATE (matching a, labelled b).
  // Sums accumulate in 128 bits: no data can overflow them (at most 2^32
  // rows of fixed-point values below 2^40), so no error depends on it.
  std::vector<__int128> sum;
  std::vector<int64_t> a, b;
  // QUANTILES: sessions are counted into the quantile tree's leaves, not
  // kept as values (no sort per cohort): each row's leaf, computed in one
  // column pass (kNoLeaf: measure absent), then per cohort either a
  // histogram counted directly (when cohorts x leaves is small: a few
  // closed dimensions) or the leaves of its kept sessions, counted into a
  // scratch histogram at release (memory bounded by the sessions, e.g.
  // for an open-domain group-by).
  static constexpr uint32_t kNoLeaf = UINT32_MAX;
  static constexpr uint64_t kMaxHistogramCells = uint64_t{1} << 20;
  privacy::QuantileLeafGrid grid;
  bool histograms = false;
  std::vector<uint32_t> row_leaf;
  std::vector<int64_t> histogram;  // cohort c's at [c L, (c + 1) L)
  std::vector<std::vector<uint32_t>> leaves;
  std::vector<int64_t> leaf_counts;

  // QUANTILES: each row's leaf in `grid` (values clamped into the domain);
  // `max_cohorts`: how many cohorts the query can have at most.
  void ComputeRowLeaves(uint32_t num_rows, uint64_t max_cohorts) {
    histograms =
        max_cohorts <= kMaxHistogramCells / static_cast<uint64_t>(grid.leaves);
    row_leaf.resize(num_rows);
    column->Visit([&](const auto* stored, auto absent) {
      const int64_t lower = column->fixed_lower();
      for (uint32_t r = 0; r < num_rows; ++r) {
        row_leaf[r] = stored[r] == absent
                          ? kNoLeaf
                          : static_cast<uint32_t>(grid.LeafOf(
                                static_cast<int64_t>(stored[r]) + lower));
      }
    });
    leaf_counts.assign(grid.leaves, 0);
  }

  // QUANTILES: cohort c's sessions per leaf.
  absl::Span<const int64_t> LeafCounts(uint32_t c) {
    if (histograms) {
      return absl::MakeConstSpan(histogram).subspan(c * grid.leaves,
                                                    grid.leaves);
    }
    std::fill(leaf_counts.begin(), leaf_counts.end(), 0);
    for (uint32_t leaf : leaves[c]) ++leaf_counts[leaf];
    return leaf_counts;
  }

  void Grow(size_t cohorts) {
    a.resize(cohorts, 0);
    b.resize(cohorts, 0);
    if (spec->kind() == Metric::SUM || spec->kind() == Metric::MEAN) {
      sum.resize(cohorts, 0);
    }
    if (spec->kind() == Metric::QUANTILES) {
      if (histograms) {
        histogram.resize(cohorts * grid.leaves, 0);
      } else {
        leaves.resize(cohorts);
      }
    }
  }

  // Adds one kept session of cohort `c`.
  void Add(uint32_t c, uint32_t row) {
    switch (spec->kind()) {
      case Metric::QUANTILES:
        if (row_leaf[row] == kNoLeaf) return;
        if (histograms) {
          ++histogram[c * grid.leaves + row_leaf[row]];
        } else {
          leaves[c].push_back(row_leaf[row]);
        }
        return;
      case Metric::SUM:
      case Metric::MEAN: {
        if (!column->Has(row)) return;  // absent measures do not count
        sum[c] +=
            std::clamp(column->Fixed(row), domain.lower_fp, domain.upper_fp);
        b[c] += 1;
        return;
      }
      case Metric::RATE:
        // The share among sessions that carry the predicate's label at
        // all: an unclassified session is neither a match nor a miss.
        if ((*rate_of.column)[row] == 0) return;
        a[c] += rate_of.Contains(row) ? 1 : 0;
        b[c] += 1;
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
  std::vector<int64_t> accounts;  // per cohort

  bool Contributes(uint32_t row) const {
    return measure != nullptr ? measure->Has(row) : (*label)[row] != 0;
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
  AppendBits(&key, in.gates);
  AppendBits(&key, in.metrics.size());
  for (const privacy::MetricRequest& m : in.metrics) {
    AppendBits(&key, m.kind);
    AppendBits(&key, m.gate);
    AppendBits(&key, m.domain.lower_fp);
    AppendBits(&key, m.domain.upper_fp);
    AppendBits(&key, m.domain.granularity);
    AppendBits(&key, m.quantiles.size());
    for (double q : m.quantiles) AppendBits(&key, q);
  }
  return key;
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

  // Per-metric columns and accumulators.
  std::vector<MetricSlot> slots(req.metrics_size());
  for (int i = 0; i < req.metrics_size(); ++i) {
    MetricSlot& s = slots[i];
    s.spec = &req.metrics(i);
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
        s.ComputeRowLeaves(view.num_sessions(), keyer.num_cohorts());
      }
    }
    if (s.spec->kind() == Metric::RATE) {
      s.rate_dim = view.FindDimension(s.spec->rate_of().dimension());
      if (s.rate_dim < 0) {
        return absl::InternalError("planned dimension not indexed");
      }
      s.rate_of = MakeCodeSet(view, s.rate_dim, s.spec->rate_of().any_of());
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

  // Per-account scratch, reused so the loop allocates only on growth.
  std::vector<std::pair<uint64_t, uint32_t>> matched;  // (key, row)
  std::vector<uint64_t> account_cohorts, cohort_fps, session_fps;
  std::vector<size_t> cohort_begin;
  std::vector<uint32_t> selected_cohorts, selected_sessions;
  const size_t max_cohorts = plan.max_cohorts_per_account;
  const size_t max_sessions = ds.privacy.max_sessions_per_cohort;
  // Positions 0..n-1: what the bounder selects when nothing exceeds its
  // limit, so the hashing can be skipped then with the same result.
  auto select_all = [](size_t n, std::vector<uint32_t>* selected) {
    selected->resize(n);
    for (size_t i = 0; i < n; ++i) (*selected)[i] = static_cast<uint32_t>(i);
  };

  // Column at a time first: which rows pass the filters and carry every
  // group-by label, and their cohort keys (the keyer's mixed radix). These
  // sequential passes over narrow columns cost a fraction of a millisecond
  // at 400k rows; the per-account pass below then only gathers.
  const uint32_t num_rows = view.num_sessions();
  std::vector<uint8_t> passes(num_rows, 1);
  for (const CodeSet& f : filters) {
    f.column->Visit([&](const auto* codes) {
      for (uint32_t r = 0; r < num_rows; ++r) passes[r] &= f.accepts[codes[r]];
    });
  }
  std::vector<uint64_t> row_key(num_rows, 0);
  for (size_t i = 0; i < group_columns.size(); ++i) {
    const uint64_t radix = view.dictionary(group_dims[i]).cardinality();
    group_columns[i]->Visit([&](const auto* codes) {
      for (uint32_t r = 0; r < num_rows; ++r) {
        passes[r] &= codes[r] != 0;  // no value for a group-by dimension
        row_key[r] = row_key[r] * radix + codes[r];
      }
    });
  }

  view.ForEachAccount([&](const AccountRows& account) {
    matched.clear();
    account.ForEachRow([&](uint32_t row) {
      if (passes[row]) matched.emplace_back(row_key[row], row);
    });
    if (matched.empty()) return;
    if (matched.size() > 1) std::sort(matched.begin(), matched.end());

    account_cohorts.clear();
    cohort_begin.clear();
    for (size_t i = 0; i < matched.size(); ++i) {
      if (i == 0 || matched[i].first != matched[i - 1].first) {
        account_cohorts.push_back(matched[i].first);
        cohort_begin.push_back(i);
      }
    }
    cohort_begin.push_back(matched.size());
    if (account_cohorts.size() > max_cohorts) {
      cohort_fps.clear();
      for (uint64_t key : account_cohorts) {
        cohort_fps.push_back(cohort_fingerprint(key));
      }
      bounder.SelectCohorts(view.AccountFingerprint(account.account),
                            cohort_fps, &selected_cohorts);
    } else {
      select_all(account_cohorts.size(), &selected_cohorts);
    }

    for (uint32_t pos : selected_cohorts) {
      const uint32_t c = cohort_number(account_cohorts[pos]);
      const size_t begin = cohort_begin[pos], end = cohort_begin[pos + 1];
      if (end - begin > max_sessions) {
        session_fps.clear();
        for (size_t i = begin; i < end; ++i) {
          session_fps.push_back(view.RowFingerprint(matched[i].second));
        }
        bounder.SelectSessions(cohort_fingerprint(account_cohorts[pos]),
                               session_fps, &selected_sessions);
      } else {
        select_all(end - begin, &selected_sessions);
      }
      cohort_accounts[c] += 1;
      cohort_sessions[c] += static_cast<int64_t>(selected_sessions.size());
      for (uint32_t j : selected_sessions) {
        const uint32_t row = matched[begin + j].second;
        for (MetricSlot& s : slots) s.Add(c, row);
      }
      // An account counts for a gate when one of its kept sessions in the
      // cohort contributes to the gate's metrics.
      for (GateSlot& g : gates) {
        for (uint32_t j : selected_sessions) {
          if (g.Contributes(matched[begin + j].second)) {
            g.accounts[c] += 1;
            break;
          }
        }
      }
    }
  });

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
      switch (s.spec->kind()) {
        case Metric::SESSIONS:
          m.sessions = cohort_sessions[c];
          break;
        case Metric::SUM:
          m.sum_fp = s.sum[c];
          break;
        case Metric::MEAN:
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
  std::vector<privacy::MetricInput> inputs(num_metrics);
  std::vector<std::vector<int64_t>> dense(num_metrics);
  for (const CohortStatistics& c : stats.cohorts) {
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
