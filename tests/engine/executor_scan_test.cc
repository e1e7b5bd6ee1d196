// The executor's bounded scan (ComputeBoundedStatistics) against the
// straightforward one it replaced (issue 12 item 4): per account, its
// passing (cohort key, row) pairs sorted, then the keyed bounder's choice
// of at most L0 cohorts and Linf sessions per cohort, each kept session
// counted into its cohort. The fast scan groups without a comparison
// sort, takes a short path for one-session accounts and counts quantile
// leaves after the account loop; it must keep exactly the same sessions,
// so every statistic (hence every release, draw for draw) is the same.
//
// The data has what exercises each path: one-session accounts, accounts
// with a few sessions, heavy accounts over more than L0 cohorts and more
// than Linf sessions in a cohort (counting sort, hashing), absent labels
// and measures, values beyond the measure's bounds, and rows both in the
// index's sorted region and in its tail.
#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/engine/executor.h"
#include "server/engine/query_plan.h"
#include "server/index/columnar_index.h"
#include "server/privacy/contribution_bounding.h"
#include "server/privacy/quantile_tree.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd::testing {
namespace {

using cohortd::v1::Metric;

constexpr int64_t kStart = 1767225600;  // 2026-01-01
constexpr char kKey[] = "0123456789abcdef";

// The executor's stable cohort fingerprint: FNV-1a 64 over each group-by
// value followed by a NUL byte.
uint64_t CohortFingerprint(const std::vector<std::string>& values) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const std::string& v : values) {
    for (unsigned char c : v + std::string(1, '\0')) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
  }
  return h;
}

// What the reference keeps per cohort (by its values).
struct Expected {
  int64_t accounts = 0;
  int64_t sessions = 0;
  int64_t gate_accounts = 0;          // accounts with a kept session carrying
                                      // the quantile measure
  std::map<int64_t, int64_t> leaves;  // leaf -> kept sessions
};

// The straightforward bounded scan of `plan` (its canonical group-by
// order, at most one filter) with the quantiles of `measure`.
std::map<std::vector<std::string>, Expected> ReferenceScan(
    const QueryPlan& plan, const DatasetView& view,
    const std::string& measure) {
  const cohortd::v1::AggregateRequest& req = plan.canonical;
  EXPECT_LE(req.filters_size(), 1);
  const std::string filter_dim =
      req.filters_size() == 0 ? "" : req.filters(0).dimension();
  std::vector<std::string> filter_values;
  if (req.filters_size() == 1) {
    filter_values.assign(req.filters(0).any_of().begin(),
                         req.filters(0).any_of().end());
  }
  const DatasetSpec& ds = *plan.dataset;
  auto bounder = privacy::ContributionBounder::Create(
      {plan.max_cohorts_per_account, ds.privacy.max_sessions_per_cohort}, kKey);
  EXPECT_TRUE(bounder.ok());
  std::vector<int> dims;
  for (const std::string& name : req.group_by()) {
    dims.push_back(view.FindDimension(name));
  }
  const int filter = filter_dim.empty() ? -1 : view.FindDimension(filter_dim);
  const MeasureColumn& column = view.measure(view.FindMeasure(measure));
  const MeasureSpec* spec = ds.FindMeasure(measure);
  const privacy::MeasureDomain domain = *privacy::MeasureDomain::Create(
      spec->lower, spec->upper, spec->granularity);
  const privacy::QuantileLeafGrid grid = *privacy::QuantileTree::Grid(domain);

  std::map<std::vector<std::string>, Expected> out;
  view.ForEachAccount([&](const AccountRows& account) {
    // (codes, row), sorted. The bounder's choice is a set (the lowest
    // keyed hashes), so it does not depend on this order.
    std::vector<std::pair<std::vector<uint32_t>, uint32_t>> matched;
    account.ForEachRow([&](uint32_t row) {
      if (filter >= 0) {
        const std::string value(
            view.DimensionValue(filter, view.codes(filter)[row]));
        if (std::find(filter_values.begin(), filter_values.end(), value) ==
            filter_values.end()) {
          return;
        }
      }
      std::vector<uint32_t> codes;
      for (int dim : dims) {
        if (view.codes(dim)[row] == 0) return;
        codes.push_back(view.codes(dim)[row]);
      }
      matched.emplace_back(std::move(codes), row);
    });
    std::sort(matched.begin(), matched.end());
    std::vector<std::vector<std::string>> cohorts;
    std::vector<std::vector<uint32_t>> rows;
    for (size_t i = 0; i < matched.size(); ++i) {
      if (i == 0 || matched[i].first != matched[i - 1].first) {
        std::vector<std::string> values;
        for (size_t d = 0; d < dims.size(); ++d) {
          values.emplace_back(
              view.DimensionValue(dims[d], matched[i].first[d]));
        }
        cohorts.push_back(std::move(values));
        rows.emplace_back();
      }
      rows.back().push_back(matched[i].second);
    }
    std::vector<uint64_t> cohort_fps;
    for (const auto& values : cohorts) {
      cohort_fps.push_back(CohortFingerprint(values));
    }
    std::vector<uint32_t> kept_cohorts, kept_sessions;
    bounder->SelectCohorts(view.AccountFingerprint(account.account), cohort_fps,
                           &kept_cohorts);
    for (uint32_t k : kept_cohorts) {
      std::vector<uint64_t> session_fps;
      for (uint32_t row : rows[k]) {
        session_fps.push_back(view.RowFingerprint(row));
      }
      bounder->SelectSessions(cohort_fps[k], session_fps, &kept_sessions);
      Expected& e = out[cohorts[k]];
      e.accounts += 1;
      e.sessions += static_cast<int64_t>(kept_sessions.size());
      bool carries = false;
      for (uint32_t j : kept_sessions) {
        const uint32_t row = rows[k][j];
        if (!column.Has(row)) continue;
        carries = true;
        ++e.leaves[grid.LeafOf(column.Fixed(row))];
      }
      if (carries) e.gate_accounts += 1;
    }
  });
  return out;
}

class ExecutorScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = TestConfig();
    ColumnarIndex::Options options;
    // Compactions every few hundred rows: the scan sees a sorted region
    // and, after the last batch, a tail.
    options.min_compaction_rows = 200;
    auto index = ColumnarIndex::Create({&config_.datasets[0]}, options);
    ASSERT_OK(index);
    index_ = *std::move(index);
    Load();
  }

  // ~2,000 sessions of 500 accounts, committed in batches of 150.
  void Load() {
    std::mt19937_64 rng(20261201);
    auto uniform = [&](int n) {
      return static_cast<int>(rng() % static_cast<uint64_t>(n));
    };
    const std::vector<std::string> modes = {"build", "fix", "test", "write"};
    const std::vector<std::string> levels = {
        "novice", "beginner", "intermediate", "advanced", "expert"};
    const std::vector<std::string> outcomes = {"success", "partial", "failure",
                                               "unclear"};
    std::vector<cohortd::internal::StoredSession> records;
    std::vector<std::string> ids;
    int serial = 0;
    for (int a = 0; a < 500; ++a) {
      // 60% one session, 25% two to four, 12% five to twelve, 3% heavy.
      const int kind = uniform(100);
      const int n = kind < 60   ? 1
                    : kind < 85 ? 2 + uniform(3)
                    : kind < 97 ? 5 + uniform(8)
                                : 40 + uniform(60);
      for (int i = 0; i < n; ++i) {
        cohortd::internal::StoredSession r;
        r.set_account_pseudonym(
            absl::StrCat("account-", a, std::string(32, '#')).substr(0, 32));
        r.set_session_start_unix_seconds(kStart + serial);
        auto& source = (*r.mutable_sources())["test@1"];
        auto& labels = *source.mutable_labels();
        if (uniform(20) != 0) labels["work_mode"] = modes[uniform(4)];
        if (uniform(20) != 0) labels["expertise"] = levels[uniform(5)];
        labels["outcome"] = outcomes[uniform(4)];
        labels["task_topic"] = absl::StrCat("topic-", uniform(6));
        if (uniform(7) != 0) {
          // Up to 250: some values beyond the bound of 200 are clamped.
          (*source.mutable_measures())["actions_per_prompt"] =
              static_cast<double>(uniform(25000)) / 100;
        }
        records.push_back(std::move(r));
        ids.push_back(absl::StrCat("session-", serial++));
      }
    }
    for (size_t first = 0; first < records.size(); first += 150) {
      std::vector<CommittedSession> batch;
      for (size_t i = first; i < std::min(records.size(), first + 150); ++i) {
        batch.push_back(CommittedSession::FromRecord(ids[i], records[i]));
      }
      index_->OnCommitted(config_.datasets[0], batch);
    }
  }

  // Runs the box plot by `group_by` through ComputeBoundedStatistics and
  // the reference, and compares every statistic.
  void ExpectSameAsReference(
      const std::vector<std::string>& group_by,
      const std::string& filter_dim = "",
      const std::vector<std::string>& filter_values = {}) {
    cohortd::v1::AggregateRequest request;
    request.set_dataset("sessions");
    for (const std::string& g : group_by) request.add_group_by(g);
    if (!filter_dim.empty()) {
      auto* f = request.add_filters();
      f->set_dimension(filter_dim);
      for (const std::string& v : filter_values) f->add_any_of(v);
    }
    auto* q = request.add_metrics();
    q->set_kind(Metric::QUANTILES);
    q->set_measure("actions_per_prompt");
    request.add_metrics()->set_kind(Metric::SESSIONS);
    auto plan = PlanQuery(config_, request);
    ASSERT_OK(plan);
    ASSERT_EQ(plan->gates.size(), 1u);  // the quantile measure's
    auto view = index_->Read("sessions");
    ASSERT_OK(view);
    auto stats = ComputeBoundedStatistics(*plan, **view, kKey);
    ASSERT_OK(stats);
    const std::map<std::vector<std::string>, Expected> expected =
        ReferenceScan(*plan, **view, "actions_per_prompt");

    ASSERT_EQ(stats->cohorts.size(), expected.size());
    ASSERT_FALSE(expected.empty());
    auto want = expected.begin();
    for (const CohortStatistics& c : stats->cohorts) {
      ASSERT_EQ(c.key, want->first);
      const Expected& e = want->second;
      EXPECT_EQ(c.accounts, e.accounts);
      EXPECT_EQ(c.sessions, e.sessions);
      ASSERT_EQ(c.gate_accounts.size(), 1u);
      EXPECT_EQ(c.gate_accounts[0], e.gate_accounts);
      ASSERT_EQ(c.metrics.size(), 2u);
      EXPECT_EQ(c.metrics[1].sessions, e.sessions);
      const std::vector<std::pair<int64_t, int64_t>> leaves(e.leaves.begin(),
                                                            e.leaves.end());
      EXPECT_EQ(c.metrics[0].leaf_counts, leaves) << "cohort " << c.key[0];
      ++want;
    }
  }

  Config config_;
  std::unique_ptr<ColumnarIndex> index_;
};

TEST_F(ExecutorScanTest, DataExercisesBothBounds) {
  // Some account has more than L0 cohorts and more than Linf sessions in
  // one cohort under the two-dimension group-by below.
  auto view = index_->Read("sessions");
  ASSERT_OK(view);
  const int mode = (*view)->FindDimension("work_mode");
  const int level = (*view)->FindDimension("expertise");
  bool over_l0 = false, over_linf = false;
  (*view)->ForEachAccount([&](const AccountRows& account) {
    std::map<std::pair<uint32_t, uint32_t>, int> per_cohort;
    account.ForEachRow([&](uint32_t row) {
      const uint32_t m = (*view)->codes(mode)[row];
      const uint32_t l = (*view)->codes(level)[row];
      if (m != 0 && l != 0) ++per_cohort[{m, l}];
    });
    over_l0 |= per_cohort.size() > 4;
    for (const auto& [cohort, n] : per_cohort) over_linf |= n > 8;
  });
  EXPECT_TRUE(over_l0);
  EXPECT_TRUE(over_linf);
}

TEST_F(ExecutorScanTest, BoxPlotByTwoDimensionsKeepsTheSameSessions) {
  ExpectSameAsReference({"work_mode", "expertise"});
}

TEST_F(ExecutorScanTest, BoxPlotByOneDimensionKeepsTheSameSessions) {
  ExpectSameAsReference({"expertise"});
}

TEST_F(ExecutorScanTest, FilteredBoxPlotKeepsTheSameSessions) {
  ExpectSameAsReference({"work_mode", "expertise"}, "outcome",
                        {"success", "partial"});
}

TEST_F(ExecutorScanTest, OpenDomainBoxPlotKeepsTheSameSessions) {
  ExpectSameAsReference({"task_topic", "work_mode"});
}

}  // namespace
}  // namespace cohortd::testing
