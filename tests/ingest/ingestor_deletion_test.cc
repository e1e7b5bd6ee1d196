// Ingestor::DeleteSessions: deletions go through the committer like pushes,
// are durable, bump the data versions of the months they touch, reach the
// listener (here the real columnar index), and run the writer atomically.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/ingest/ingestor.h"
#include "server/index/columnar_index.h"
#include "server/storage/keys.h"
#include "server/storage/mem_store.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;

constexpr int64_t kJan2026 = 1767225600;
constexpr int64_t kFeb2026 = 1769904000;

cohortd::v1::Observation Obs(const std::string& session,
                             const std::string& account, int64_t start) {
  cohortd::v1::Observation obs;
  obs.set_session_id(session);
  obs.set_account_id(account);
  obs.mutable_session_start()->set_seconds(start);
  obs.set_source("telemetry");
  (*obs.mutable_labels())["work_mode"] = "fix";
  return obs;
}

class IngestorDeletionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::TestConfig();
    ASSERT_OK_AND_ASSIGN(pseudonymizer_,
                         Pseudonymizer::Create(std::string(32, 'k')));
    metrics_ = NewInMemoryMetrics();
    ASSERT_OK_AND_ASSIGN(
        index_,
        ColumnarIndex::Build(config_, &store_, ColumnarIndex::Options()));
    ASSERT_OK_AND_ASSIGN(
        ingestor_, Ingestor::Create(&config_, &store_, pseudonymizer_.get(),
                                    metrics_.get(), index_.get()));
    // alice: 3 sessions in January, 1 in February; bob: 2 in January.
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    for (int i = 0; i < 3; ++i) {
      *request.add_observations() =
          Obs(absl::StrCat("a", i), "alice", kJan2026);
    }
    *request.add_observations() = Obs("a3", "alice", kFeb2026);
    for (int i = 0; i < 2; ++i) {
      *request.add_observations() = Obs(absl::StrCat("b", i), "bob", kJan2026);
    }
    ASSERT_OK_AND_ASSIGN(auto response, ingestor_->Push(request));
    ASSERT_EQ(response.accepted(), 6);
  }

  std::string PseudonymOf(const std::string& account) {
    const Digest256 d = pseudonymizer_->Pseudonymize(account);
    return std::string(reinterpret_cast<const char*>(d.data()), d.size());
  }
  SessionPredicate OfAccount(const std::string& account) {
    return [p = PseudonymOf(account)](const DeletedSession& session) {
      return session.account_pseudonym == p;
    };
  }
  // Every key of the store (no data versions are written any more: the
  // cache keys on sealed snapshots).
  std::vector<std::string> AllKeys() {
    std::vector<std::string> out;
    EXPECT_OK(store_.Scan("", [&](absl::string_view k, absl::string_view) {
      out.emplace_back(k);
      return true;
    }));
    return out;
  }
  bool Stored(const std::string& session) {
    return store_.Get(keys::SessionHeaderKey("sessions", session)).ok();
  }
  uint32_t IndexedSessions() {
    auto view = index_->Read("sessions");
    EXPECT_OK(view);
    return view.ok() ? (*view)->num_sessions() : 0;
  }

  Config config_;
  MemStore store_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<InMemoryMetrics> metrics_;
  std::unique_ptr<ColumnarIndex> index_;
  std::unique_ptr<Ingestor> ingestor_;
};

TEST_F(IngestorDeletionTest, DeletesOneAccountFromStoreAndIndex) {
  ASSERT_OK_AND_ASSIGN(int64_t deleted, ingestor_->DeleteSessions(
                                            "sessions", OfAccount("alice")));
  EXPECT_EQ(deleted, 4);
  for (const char* s : {"a0", "a1", "a2", "a3"}) EXPECT_FALSE(Stored(s)) << s;
  EXPECT_TRUE(Stored("b0"));
  EXPECT_TRUE(Stored("b1"));
  EXPECT_EQ(IndexedSessions(), 2u);
  ASSERT_OK_AND_ASSIGN(auto view, index_->Read("sessions"));
  EXPECT_EQ(view->num_accounts(), 1u);
  for (const std::string& key : AllKeys()) {
    EXPECT_FALSE(absl::StartsWith(key, keys::kDataVersionPrefix)) << key;
  }
}

// The scan runs outside the committer; a session the account gets while
// the scan runs (here: pushed and committed from inside the scan) is not
// in the scan's snapshot but must be deleted too.
TEST_F(IngestorDeletionTest, SessionCommittedDuringTheScanIsDeletedToo) {
  const std::string alice = PseudonymOf("alice");
  bool pushed = false;
  ASSERT_OK_AND_ASSIGN(
      int64_t deleted,
      ingestor_->DeleteSessions("sessions", [&](const DeletedSession& session) {
        if (!pushed) {
          pushed = true;
          std::thread pusher([&] {
            cohortd::v1::PushRequest request;
            request.set_dataset("sessions");
            *request.add_observations() = Obs("late", "alice", kFeb2026);
            EXPECT_OK(ingestor_->Push(request));
          });
          pusher.join();
        }
        return session.account_pseudonym == alice;
      }));
  EXPECT_EQ(deleted, 5);
  EXPECT_FALSE(Stored("late"));
  EXPECT_FALSE(Stored("a0"));
  EXPECT_EQ(IndexedSessions(), 2u);
}

TEST_F(IngestorDeletionTest, NothingMatchingWritesNothing) {
  const std::vector<std::string> before = AllKeys();
  ASSERT_OK_AND_ASSIGN(int64_t deleted, ingestor_->DeleteSessions(
                                            "sessions", OfAccount("carol")));
  EXPECT_EQ(deleted, 0);
  EXPECT_EQ(AllKeys(), before);
  EXPECT_EQ(IndexedSessions(), 6u);
}

TEST_F(IngestorDeletionTest, WriterAddsToTheSameWriteAndSeesTheCount) {
  int64_t seen = -1;
  ASSERT_OK_AND_ASSIGN(int64_t deleted,
                       ingestor_->DeleteSessions(
                           "sessions", OfAccount("bob"),
                           [&](int64_t sessions, WriteBatch* batch,
                               const std::function<absl::Status()>& write) {
                             seen = sessions;
                             batch->Put("a/test-erasure",
                                        absl::StrCat(sessions));
                             return write();
                           }));
  EXPECT_EQ(deleted, 2);
  EXPECT_EQ(seen, 2);
  EXPECT_EQ(store_.Get("a/test-erasure").value_or(""), "2");
  EXPECT_FALSE(Stored("b0"));
}

TEST_F(IngestorDeletionTest, WriterErrorDeletesNothing) {
  EXPECT_THAT(
      ingestor_->DeleteSessions(
          "sessions", OfAccount("bob"),
          [](int64_t, WriteBatch*, const std::function<absl::Status()>&) {
            return absl::UnavailableError("journal down");
          }),
      StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(Stored("b0"));
  EXPECT_EQ(IndexedSessions(), 6u);
}

TEST_F(IngestorDeletionTest, WriterIsCalledEvenWhenNothingMatches) {
  int calls = 0;
  ASSERT_OK_AND_ASSIGN(int64_t deleted,
                       ingestor_->DeleteSessions(
                           "sessions", OfAccount("carol"),
                           [&](int64_t sessions, WriteBatch* batch,
                               const std::function<absl::Status()>& write) {
                             ++calls;
                             EXPECT_EQ(sessions, 0);
                             batch->Put("a/test-erasure", "0");
                             return write();
                           }));
  EXPECT_EQ(deleted, 0);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(store_.Get("a/test-erasure").ok());
}

TEST_F(IngestorDeletionTest, ErasedAccountCanPushAgainAsNewData) {
  ASSERT_OK(ingestor_->DeleteSessions("sessions", OfAccount("alice")));
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  *request.add_observations() = Obs("a0", "alice", kJan2026);
  ASSERT_OK_AND_ASSIGN(auto response, ingestor_->Push(request));
  EXPECT_EQ(response.accepted(), 1);  // not "unchanged": it was gone
  EXPECT_TRUE(Stored("a0"));
  EXPECT_EQ(IndexedSessions(), 3u);
}

TEST_F(IngestorDeletionTest, UnknownDatasetAndShutdown) {
  EXPECT_THAT(ingestor_->DeleteSessions("nope", OfAccount("alice")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ingestor_->Shutdown();
  EXPECT_THAT(ingestor_->DeleteSessions("sessions", OfAccount("alice")),
              StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace cohortd
