// What a query backend hands the privacy core: per candidate cohort, the
// exact statistics of the sessions kept by contribution bounding (L0
// cohorts and Linf sessions per account, measures clamped and in fixed
// point). These numbers are un-noised and derived from records: they never
// leave the process; only QueryReleaser's noisy output does (see
// server/query/executor.h ReleaseStatistics).
//
// Quantiles travel as a histogram over the quantile tree's leaves rather
// than as raw values: the tree's node counts, hence its release, depend
// only on how many kept values fall in each leaf (quantile_tree.h), so the
// histogram loses nothing, and a remote engine returns at most 4096 counts
// per cohort instead of one value per session.
#ifndef COHORTD_SERVER_BACKEND_BOUNDED_STATISTICS_H_
#define COHORTD_SERVER_BACKEND_BOUNDED_STATISTICS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "server/privacy/contribution_bounding.h"
#include "server/privacy/quantile_tree.h"

namespace cohortd {

// Exact statistics of one metric in one cohort; fields a kind does not use
// stay zero / empty (as privacy::MetricInput).
struct MetricStatistics {
  int64_t sessions = 0;  // SESSIONS; MEAN (count); RATE (labelled)
  __int128 sum_fp = 0;   // SUM, MEAN
  int64_t matching = 0;  // RATE
  // QUANTILES: (leaf, count) for every leaf of the metric's
  // privacy::QuantileTree::Grid(domain) holding at least one kept value,
  // ascending by leaf.
  std::vector<std::pair<int64_t, int64_t>> leaf_counts;

  bool operator==(const MetricStatistics& o) const {
    return sessions == o.sessions && sum_fp == o.sum_fp &&
           matching == o.matching && leaf_counts == o.leaf_counts;
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
