// What a query backend hands the privacy core: per candidate cohort, the
// exact statistics of the sessions kept by contribution bounding (L0
// cohorts and Linf sessions per account, measures clamped and in fixed
// point). These numbers are un-noised and derived from records: they never
// leave the process; only QueryReleaser's noisy output does (see
// server/engine/executor.h ReleaseStatistics).
//
// Quantiles travel as a histogram over the quantile tree's leaves rather
// than as raw values: the tree's node counts, hence its release, depend
// only on how many kept values fall in each leaf (quantile_tree.h), so the
// histogram loses nothing, and a remote engine returns at most 4096 counts
// per cohort instead of one value per session.
//
// Likewise an adjusted metric's regression rows (one per kept session)
// travel as cells: rows of equal control levels, their count and sum of
// y. The regression reads its rows only through integer sums (X'X cell
// counts, X'y sums of y: privacy/adjusted_regression.h), so the cells
// lose nothing either. NOISE_AND_SAMPLING needs each account's totals
// (its sampling variance is a sum of a non-linear term per account), and
// these do travel, one per contributing account.
#ifndef COHORTD_SERVER_BACKEND_BOUNDED_STATISTICS_H_
#define COHORTD_SERVER_BACKEND_BOUNDED_STATISTICS_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "server/privacy/contribution_bounding.h"
#include "server/privacy/quantile_tree.h"
#include "server/privacy/sampling_interval.h"

namespace cohortd {

// Kept sessions of an adjusted metric (Metric.adjust_for) in one cohort
// that carry the metric and the same level of every control.
struct AdjustedCell {
  // One level per control, in plan.ControlsOf(metric) order (index into
  // the control's public levels).
  std::vector<int32_t> levels;
  int64_t rows = 0;
  // Sum of the rows' centred values y (privacy/adjusted_regression.h).
  __int128 sum_y = 0;

  bool operator==(const AdjustedCell& o) const {
    return levels == o.levels && rows == o.rows && sum_y == o.sum_y;
  }
};

// Exact statistics of one metric in one cohort; fields a kind does not use
// stay zero / empty (as privacy::MetricInput).
struct MetricStatistics {
  // SESSIONS; MEAN, GEOMETRIC_MEAN (count); RATE (labelled)
  int64_t sessions = 0;
  // SUM, MEAN; GEOMETRIC_MEAN: the sum of GeometricMeanMetric::
  // LogFixedPoint of the clamped values (privacy/aggregations.h).
  __int128 sum_fp = 0;
  int64_t matching = 0;  // RATE
  // QUANTILES: (leaf, count) for every leaf of the metric's
  // privacy::QuantileTree::Grid(domain) holding at least one kept value,
  // ascending by leaf.
  std::vector<std::pair<int64_t, int64_t>> leaf_counts;
  // NOISE_AND_SAMPLING: each contributing account's kept totals
  // (privacy/sampling_interval.h), in no particular order.
  std::vector<privacy::AccountTotal> account_totals;
  // Adjusted metrics: the cohort's regression rows as cells, ascending by
  // levels.
  std::vector<AdjustedCell> adjusted;

  // account_totals compare as multisets.
  bool operator==(const MetricStatistics& o) const {
    return sessions == o.sessions && sum_fp == o.sum_fp &&
           matching == o.matching && leaf_counts == o.leaf_counts &&
           SortedTotals(account_totals) == SortedTotals(o.account_totals) &&
           adjusted == o.adjusted;
  }
  static std::vector<std::pair<int64_t, int64_t>> SortedTotals(
      const std::vector<privacy::AccountTotal>& totals) {
    std::vector<std::pair<int64_t, int64_t>> sorted;
    for (const privacy::AccountTotal& t : totals) sorted.emplace_back(t.y, t.n);
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }
};

// One candidate cohort: at least one account kept a session in it.
struct CohortStatistics {
  // The cohort's values, one per plan.canonical.group_by, in that order.
  std::vector<std::string> key;
  int64_t accounts = 0;  // distinct accounts after bounding
  int64_t sessions = 0;  // kept sessions
  // Per contributor gate (plan.gates): accounts with at least one kept
  // session contributing to the gate's metrics.
  std::vector<int64_t> gate_accounts;
  // Per canonical metric, in request order.
  std::vector<MetricStatistics> metrics;

  bool operator==(const CohortStatistics& o) const {
    return key == o.key && accounts == o.accounts && sessions == o.sessions &&
           gate_accounts == o.gate_accounts && metrics == o.metrics;
  }
};

// Every candidate cohort of one query, sorted by key.
struct BoundedStatistics {
  std::vector<CohortStatistics> cohorts;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_BACKEND_BOUNDED_STATISTICS_H_
