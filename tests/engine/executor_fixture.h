// The executor over a real ColumnarIndex, shared by executor_test and
// executor_analyst_test: sessions are added per account with labels and
// measures, committed to the index, and run through the planner, a
// releaser and ExecuteQuery with a seeded deterministic random source and
// a very large epsilon (values within a unit of the bounded truth).
#ifndef COHORTD_TESTS_QUERY_EXECUTOR_FIXTURE_H_
#define COHORTD_TESTS_QUERY_EXECUTOR_FIXTURE_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/crypto/csprng.h"
#include "server/engine/executor.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"
#include "tests/privacy/deterministic_random.h"

namespace cohortd::testing {

inline constexpr int64_t kFixtureStart = 1767225600;  // 2026-01-01
inline constexpr char kFixtureBoundingKey[] = "0123456789abcdef";

class ExecutorFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = TestConfig();
    // Noise of a fraction of a unit: values are the bounded truth +- 1.
    config_.datasets[0].privacy.max_epsilon = 5000;
    auto index =
        ColumnarIndex::Create({&config_.datasets[0]}, ColumnarIndex::Options());
    ASSERT_OK(index);
    index_ = *std::move(index);
  }

  // Adds `n` sessions of `account` with the given labels.
  void Add(const std::string& account, int n,
           std::map<std::string, std::string> labels,
           std::map<std::string, double> measures = {}) {
    for (int i = 0; i < n; ++i) {
      cohortd::internal::StoredSession record;
      record.set_account_pseudonym(
          absl::StrCat(account, std::string(32, '#')).substr(0, 32));
      record.set_session_start_unix_seconds(kFixtureStart + serial_);
      auto& source = (*record.mutable_sources())["test@1"];
      for (const auto& [k, v] : labels) (*source.mutable_labels())[k] = v;
      for (const auto& [k, v] : measures) (*source.mutable_measures())[k] = v;
      records_.push_back(std::move(record));
      ids_.push_back(absl::StrCat("session-", serial_++));
    }
  }

  absl::StatusOr<ExecutionResult> Run(
      const cohortd::v1::AggregateRequest& request, uint64_t seed = 1) {
    std::vector<CommittedSession> sessions;
    for (size_t i = 0; i < records_.size(); ++i) {
      sessions.push_back(CommittedSession::FromRecord(ids_[i], records_[i]));
    }
    index_->OnCommitted(config_.datasets[0], sessions);
    auto plan = PlanQuery(config_, request);
    if (!plan.ok()) return plan.status();
    auto releaser = MakeReleaser(*plan);
    if (!releaser.ok()) return releaser.status();
    auto view = index_->Read("sessions");
    if (!view.ok()) return view.status();
    DeterministicRandom source(seed);
    RandomWords rng(&source);
    return ExecuteQuery(*plan, **view, *releaser, kFixtureBoundingKey, rng);
  }

  static cohortd::v1::AggregateRequest ByWorkMode(
      std::vector<cohortd::v1::Metric> metrics) {
    cohortd::v1::AggregateRequest r;
    r.set_dataset("sessions");
    r.add_group_by("work_mode");
    r.set_epsilon(5000);
    for (auto& m : metrics) *r.add_metrics() = m;
    return r;
  }

  static cohortd::v1::Metric Kind(cohortd::v1::Metric::Kind kind,
                                  std::string measure = "") {
    cohortd::v1::Metric m;
    m.set_kind(kind);
    m.set_measure(measure);
    return m;
  }

  // cohort value -> metric name -> estimate
  static std::map<std::string, std::map<std::string, cohortd::v1::Estimate>>
  Table(const ExecutionResult& result, const std::string& dimension) {
    std::map<std::string, std::map<std::string, cohortd::v1::Estimate>> t;
    for (const auto& c : result.cohorts) {
      for (const auto& e : c.estimates()) {
        t[c.key().at(dimension)][e.metric()] = e;
      }
    }
    return t;
  }

  Config config_;
  std::unique_ptr<ColumnarIndex> index_;
  std::vector<cohortd::internal::StoredSession> records_;
  std::vector<std::string> ids_;
  int serial_ = 0;
};

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_QUERY_EXECUTOR_FIXTURE_H_
