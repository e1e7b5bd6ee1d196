#include "server/ingest/ingestor.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/storage/keys.h"
#include "server/storage/mem_store.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr int64_t kJan2026 = 1767225600;
constexpr int64_t kFeb2026 = 1769904000;

cohortd::v1::Observation Obs(const std::string& session,
                             const std::string& account,
                             const std::string& source,
                             int64_t start = kJan2026) {
  cohortd::v1::Observation obs;
  obs.set_session_id(session);
  obs.set_account_id(account);
  obs.mutable_session_start()->set_seconds(start);
  obs.set_source(source);
  return obs;
}

// Fails every write once armed, as a full disk would.
class FailingStore : public MemStore {
 public:
  absl::Status Write(const WriteBatch& batch, bool sync) override {
    if (fail_) return absl::UnavailableError("disk full");
    return MemStore::Write(batch, sync);
  }
  void Arm() { fail_ = true; }

 private:
  std::atomic<bool> fail_{false};
};

class RecordingListener : public IngestListener {
 public:
  void OnCommitted(const DatasetSpec& dataset,
                   const std::vector<CommittedSession>& sessions) override {
    for (const auto& s : sessions) {
      seen.push_back(s.session_id);
      last_source_count = s.record->sources_size();
    }
  }
  std::vector<std::string> seen;
  int last_source_count = 0;
};

class IngestorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::TestConfig();
    auto p = Pseudonymizer::Create(std::string(32, 'k'));
    ASSERT_OK(p);
    pseudonymizer_ = std::move(p).value();
    metrics_ = NewInMemoryMetrics();
    Reopen();
  }

  void Reopen() {
    ingestor_.reset();
    auto ingestor = Ingestor::Create(&config_, &store_, pseudonymizer_.get(),
                                     metrics_.get(), &listener_);
    ASSERT_OK(ingestor);
    ingestor_ = std::move(ingestor).value();
  }

  cohortd::internal::StoredSession Stored(const std::string& session) {
    auto value = store_.Get(keys::SessionKey("sessions", session));
    EXPECT_OK(value);
    cohortd::internal::StoredSession record;
    EXPECT_TRUE(record.ParseFromString(value.value_or("")));
    return record;
  }

  cohortd::v1::PushResponse MustPush(const cohortd::v1::PushRequest& r) {
    auto response = ingestor_->Push(r);
    EXPECT_OK(response);
    return response.value_or(cohortd::v1::PushResponse());
  }

  Config config_;
  FailingStore store_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<InMemoryMetrics> metrics_;
  RecordingListener listener_;
  std::unique_ptr<Ingestor> ingestor_;
};

TEST_F(IngestorTest, ThousandWithTenBadStoresTheRestAndRepeatIsUnchanged) {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int i = 0; i < 1000; ++i) {
    auto obs = Obs(absl::StrCat("s", i), absl::StrCat("a", i % 97),
                   "work_mode_classifier@3");
    (*obs.mutable_labels())["work_mode"] = i % 100 == 7 ? "dance" : "fix";
    *request.add_observations() = obs;
  }
  auto first = MustPush(request);
  EXPECT_EQ(first.accepted(), 990);
  EXPECT_EQ(first.unchanged(), 0);
  ASSERT_THAT(first.rejected(), SizeIs(10));
  for (int j = 0; j < 10; ++j) {
    EXPECT_EQ(first.rejected(j).index(), j * 100 + 7);
    EXPECT_EQ(first.rejected(j).field(), "labels.work_mode");
    EXPECT_THAT(first.rejected(j).reason(), HasSubstr("'dance'"));
  }
  auto second = MustPush(request);
  EXPECT_EQ(second.accepted(), 0);
  EXPECT_EQ(second.unchanged(), 990);
  EXPECT_THAT(second.rejected(), SizeIs(10));

  EXPECT_EQ(metrics_->Value("cohortd_ingest_observations_total",
                            {{"dataset", "sessions"}, {"outcome", "accepted"}}),
            990);
  EXPECT_EQ(metrics_->Value("cohortd_ingest_rejections_total",
                            {{"dataset", "sessions"},
                             {"reason", "value_not_in_domain"}}),
            20);
}

TEST_F(IngestorTest, MergesSourcesIntoOneRecordWithoutRawAccountId) {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  auto a = Obs("s1", "raw-account-42", "work_mode_classifier@3");
  (*a.mutable_labels())["work_mode"] = "build";
  auto b = Obs("s1", "raw-account-42", "telemetry");
  (*b.mutable_measures())["lines_added"] = 120;
  *request.add_observations() = a;
  *request.add_observations() = b;
  EXPECT_EQ(MustPush(request).accepted(), 2);

  auto record = Stored("s1");
  EXPECT_EQ(record.sources_size(), 2);
  EXPECT_EQ(record.sources().at("telemetry").measures().at("lines_added"),
            120);
  const Digest256 expected = pseudonymizer_->Pseudonymize("raw-account-42");
  EXPECT_EQ(record.account_pseudonym(),
            std::string(expected.begin(), expected.end()));

  // The raw id appears nowhere in the store.
  ASSERT_OK(store_.Scan("", [](absl::string_view k, absl::string_view v) {
    EXPECT_EQ(k.find("raw-account-42"), absl::string_view::npos);
    EXPECT_EQ(v.find("raw-account-42"), absl::string_view::npos);
    return true;
  }));
  EXPECT_THAT(listener_.seen, ::testing::ElementsAre("s1"));
  EXPECT_EQ(listener_.last_source_count, 2);
}

TEST_F(IngestorTest, NewContentFromSameSourceReplacesOnlyThatSource) {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  auto a = Obs("s1", "acct", "outcome_classifier@1");
  (*a.mutable_labels())["outcome"] = "partial";
  auto t = Obs("s1", "acct", "telemetry");
  (*t.mutable_measures())["lines_added"] = 5;
  *request.add_observations() = a;
  *request.add_observations() = t;
  MustPush(request);

  cohortd::v1::PushRequest update;
  update.set_dataset("sessions");
  (*a.mutable_labels())["outcome"] = "success";
  *update.add_observations() = a;
  auto response = MustPush(update);
  EXPECT_EQ(response.accepted(), 1);

  auto record = Stored("s1");
  EXPECT_EQ(record.sources().at("outcome_classifier@1").labels().at("outcome"),
            "success");
  EXPECT_EQ(record.sources().at("telemetry").measures().at("lines_added"), 5);
  EXPECT_GT(record.sources().at("outcome_classifier@1").sequence(),
            record.sources().at("telemetry").sequence());
}

TEST_F(IngestorTest, RejectsSessionOfAnotherAccountOrAnotherStart) {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  *request.add_observations() = Obs("s1", "alice", "telemetry");
  MustPush(request);

  cohortd::v1::PushRequest conflicting;
  conflicting.set_dataset("sessions");
  *conflicting.add_observations() = Obs("s1", "bob", "classifier@1");
  *conflicting.add_observations() =
      Obs("s1", "alice", "classifier@1", kJan2026 + 60);
  *conflicting.add_observations() = Obs("s2", "bob", "classifier@1");
  auto response = MustPush(conflicting);
  EXPECT_EQ(response.accepted(), 1);
  ASSERT_THAT(response.rejected(), SizeIs(2));
  EXPECT_EQ(response.rejected(0).index(), 0);
  EXPECT_EQ(response.rejected(0).field(), "account_id");
  EXPECT_THAT(response.rejected(0).reason(), HasSubstr("different account"));
  EXPECT_EQ(response.rejected(1).index(), 1);
  EXPECT_EQ(response.rejected(1).field(), "session_start");
  EXPECT_EQ(Stored("s1").sources_size(), 1);
}

TEST_F(IngestorTest, WholeCallErrors) {
  cohortd::v1::PushRequest request;
  request.set_dataset("nope");
  EXPECT_THAT(ingestor_->Push(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("datasets: sessions")));
  request.set_dataset("sessions");
  for (int i = 0; i <= config_.max_batch_size; ++i) {
    *request.add_observations() = Obs(absl::StrCat(i), "a", "t");
  }
  EXPECT_THAT(ingestor_->Push(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("maximum of 1000")));
}

TEST_F(IngestorTest, DataVersionMovesOnlyForTouchedMonth) {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  *request.add_observations() = Obs("jan", "a", "t", kJan2026);
  MustPush(request);
  const std::string jan = keys::DataVersionKey("sessions", "2026-01");
  const std::string feb = keys::DataVersionKey("sessions", "2026-02");
  EXPECT_EQ(store_.Get(jan).value_or(""), "1");

  request.mutable_observations(0)->set_session_id("feb");
  request.mutable_observations(0)->mutable_session_start()->set_seconds(
      kFeb2026);
  MustPush(request);
  EXPECT_EQ(store_.Get(jan).value_or(""), "1");
  EXPECT_EQ(store_.Get(feb).value_or(""), "1");

  // An unchanged push moves nothing; the version survives a restart.
  MustPush(request);
  Reopen();
  (*request.mutable_observations(0)->mutable_labels())["work_mode"] = "fix";
  MustPush(request);
  EXPECT_EQ(store_.Get(feb).value_or(""), "2");
}

TEST_F(IngestorTest, ConcurrentPushesAllCommit) {
  constexpr int kThreads = 8;
  constexpr int kPushes = 25;
  constexpr int kPerPush = 20;
  std::vector<std::thread> threads;
  std::atomic<int> accepted{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int p = 0; p < kPushes; ++p) {
        cohortd::v1::PushRequest request;
        request.set_dataset("sessions");
        for (int i = 0; i < kPerPush; ++i) {
          // Threads share sessions (one source each), so merges race.
          *request.add_observations() =
              Obs(absl::StrCat("s", p * kPerPush + i), absl::StrCat("a", i),
                  absl::StrCat("src", t));
        }
        auto r = ingestor_->Push(request);
        ASSERT_OK(r);
        accepted += r->accepted();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(accepted, kThreads * kPushes * kPerPush);
  EXPECT_EQ(Stored("s0").sources_size(), kThreads);
  EXPECT_EQ(Stored(absl::StrCat("s", kPushes * kPerPush - 1)).sources_size(),
            kThreads);
}

TEST_F(IngestorTest, StoreFailureAcknowledgesNothing) {
  store_.Arm();
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  *request.add_observations() = Obs("s1", "a", "t");
  EXPECT_THAT(ingestor_->Push(request),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store_.Get(keys::SessionKey("sessions", "s1")),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(IngestorTest, ShutdownRefusesNewPushes) {
  ingestor_->Shutdown();
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  *request.add_observations() = Obs("s1", "a", "t");
  EXPECT_THAT(ingestor_->Push(request),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("shutting down")));
}

}  // namespace
}  // namespace cohortd
