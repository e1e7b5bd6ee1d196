// RetentionJob: one pass at a fake "now" deletes exactly the sessions that
// started before now - retention, from the store and the index, audits
// only passes that delete something, and leaves datasets without a
// retention alone.
#include "server/ingest/retention.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/index/columnar_index.h"
#include "server/storage/keys.h"
#include "server/storage/mem_store.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

constexpr int64_t kJan2025 = 1735689600;  // 2025-01-01T00:00:00Z
constexpr int64_t kJan2026 = 1767225600;  // 2026-01-01T00:00:00Z

struct Audited {
  std::string principal, dataset, reason;
  int64_t sessions;
};

class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::TestConfig();
    config_.datasets[0].retention = absl::Hours(24 * 400);
    DatasetSpec forever = config_.datasets[0];
    forever.name = "forever";
    forever.retention = absl::ZeroDuration();
    config_.datasets.push_back(forever);
    ASSERT_OK_AND_ASSIGN(pseudonymizer_,
                         Pseudonymizer::Create(std::string(32, 'k')));
    metrics_ = NewInMemoryMetrics();
    ASSERT_OK_AND_ASSIGN(
        index_,
        ColumnarIndex::Build(config_, &store_, ColumnarIndex::Options()));
    ASSERT_OK_AND_ASSIGN(
        ingestor_, Ingestor::Create(&config_, &store_, pseudonymizer_.get(),
                                    metrics_.get(), index_.get()));
    // Two datasets alike: 5 sessions at 2025-01-01 + i days, 5 at 2026-01-01.
    for (const char* dataset : {"sessions", "forever"}) {
      cohortd::v1::PushRequest request;
      request.set_dataset(dataset);
      for (int i = 0; i < 10; ++i) {
        cohortd::v1::Observation* obs = request.add_observations();
        obs->set_session_id(absl::StrCat("s", i));
        obs->set_account_id(absl::StrCat("acct", i % 3));
        obs->mutable_session_start()->set_seconds(i < 5 ? kJan2025 + i * 86400
                                                        : kJan2026);
        obs->set_source("telemetry");
      }
      ASSERT_OK_AND_ASSIGN(auto response, ingestor_->Push(request));
      ASSERT_EQ(response.accepted(), 10);
    }
    job_ = std::make_unique<RetentionJob>(
        &config_, ingestor_.get(), &clock_,
        [this](const std::string& principal, const std::string& dataset,
               absl::string_view reason, int64_t sessions, WriteBatch* batch,
               const std::function<absl::Status()>& write) {
          audited_.push_back(
              {principal, dataset, std::string(reason), sessions});
          return write();
        });
  }

  uint32_t Indexed(const std::string& dataset) {
    auto view = index_->Read(dataset);
    EXPECT_OK(view);
    return view.ok() ? (*view)->num_sessions() : 0;
  }
  bool Stored(const std::string& dataset, const std::string& session) {
    return store_.Get(keys::SessionHeaderKey(dataset, session)).ok();
  }

  Config config_;
  MemStore store_;
  // 2026-02-05 + 1 s: 400 days back is 2025-01-01T00:00:01, so only the
  // session of 2025-01-01 is older.
  FakeClock clock_{absl::FromUnixSeconds(kJan2025 + 400 * 86400 + 1)};
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<InMemoryMetrics> metrics_;
  std::unique_ptr<ColumnarIndex> index_;
  std::unique_ptr<Ingestor> ingestor_;
  std::unique_ptr<RetentionJob> job_;
  std::vector<Audited> audited_;
};

TEST_F(RetentionTest, DeletesExactlyTheSessionsOlderThanRetention) {
  ASSERT_OK_AND_ASSIGN(auto deleted, job_->RunOnce());
  EXPECT_THAT(deleted, ElementsAre(Pair("sessions", 1)));
  EXPECT_FALSE(Stored("sessions", "s0"));
  EXPECT_TRUE(Stored("sessions", "s1"));
  EXPECT_EQ(Indexed("sessions"), 9u);
  ASSERT_EQ(audited_.size(), 1u);
  EXPECT_EQ(audited_[0].principal, "cohortd/retention");
  EXPECT_EQ(audited_[0].dataset, "sessions");
  EXPECT_EQ(audited_[0].reason, "retention");
  EXPECT_EQ(audited_[0].sessions, 1);

  // Nothing newly expired: nothing deleted, nothing audited.
  ASSERT_OK_AND_ASSIGN(deleted, job_->RunOnce());
  EXPECT_THAT(deleted, ElementsAre(Pair("sessions", 0)));
  EXPECT_EQ(audited_.size(), 1u);

  // Three days later three more have expired; ten more, the last of 2025
  // (the 2026 sessions are still younger than 400 days).
  clock_.Advance(absl::Hours(24 * 3));
  ASSERT_OK_AND_ASSIGN(deleted, job_->RunOnce());
  EXPECT_THAT(deleted, ElementsAre(Pair("sessions", 3)));
  clock_.Advance(absl::Hours(24 * 10));
  ASSERT_OK_AND_ASSIGN(deleted, job_->RunOnce());
  EXPECT_THAT(deleted, ElementsAre(Pair("sessions", 1)));
  EXPECT_EQ(Indexed("sessions"), 5u);
  for (int i = 5; i < 10; ++i) {
    EXPECT_TRUE(Stored("sessions", absl::StrCat("s", i)));
  }
  // The dataset without retention kept everything.
  EXPECT_EQ(Indexed("forever"), 10u);
  EXPECT_TRUE(Stored("forever", "s0"));
}

TEST_F(RetentionTest, ThreadRunsAPassAtStartThenStops) {
  absl::Notification first_pass_deleted;
  RetentionJob job(
      &config_, ingestor_.get(), &clock_,
      [&](const std::string&, const std::string&, absl::string_view,
          int64_t sessions, WriteBatch*,
          const std::function<absl::Status()>& write) {
        absl::Status status = write();
        if (sessions > 0 && !first_pass_deleted.HasBeenNotified()) {
          first_pass_deleted.Notify();
        }
        return status;
      });
  job.Start();
  // An event, not a timing assertion: the pass at start must happen.
  ASSERT_TRUE(
      first_pass_deleted.WaitForNotificationWithTimeout(absl::Seconds(60)));
  job.Stop();
  EXPECT_FALSE(Stored("sessions", "s0"));
  EXPECT_TRUE(Stored("sessions", "s1"));
  EXPECT_EQ(Indexed("forever"), 10u);
}

}  // namespace
}  // namespace cohortd
