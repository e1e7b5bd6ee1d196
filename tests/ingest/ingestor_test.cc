#include "server/ingest/ingestor.h"

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
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

// Fails every write once armed, as a full disk would; counts the bytes of
// keys and values of each write, so tests can check that a push's work is
// O(push).
class FailingStore : public MemStore {
 public:
  absl::Status Write(const WriteBatch& batch, bool sync) override {
    if (fail_) return absl::UnavailableError("disk full");
    size_t bytes = 0;
    for (const auto& op : batch.ops()) bytes += op.key.size() + op.value.size();
    {
      absl::MutexLock lock(&mu_);
      write_bytes_.push_back(bytes);
    }
    return MemStore::Write(batch, sync);
  }
  // Counts the keys read, by Get or MultiGet.
  absl::StatusOr<std::string> Get(absl::string_view key) override {
    ++keys_read_;
    return MemStore::Get(key);
  }
  absl::Status MultiGet(
      absl::Span<const absl::string_view> keys,
      const std::function<void(size_t, absl::string_view)>& found) override {
    keys_read_ += keys.size();
    return MemStore::MultiGet(keys, found);
  }
  size_t TakeKeysRead() { return keys_read_.exchange(0); }
  void Arm() { fail_ = true; }
  std::vector<size_t> write_bytes() {
    absl::MutexLock lock(&mu_);
    return write_bytes_;
  }

 private:
  std::atomic<bool> fail_{false};
  std::atomic<size_t> keys_read_{0};
  absl::Mutex mu_;
  std::vector<size_t> write_bytes_ ABSL_GUARDED_BY(mu_);
};

// Folds the deltas it is told into the merged view of each session, as an
// index would.
class RecordingListener : public IngestListener {
 public:
  struct View {
    std::map<std::string, std::string> labels;
    std::map<std::string, double> measures;
  };
  void OnCommitted(const DatasetSpec& dataset,
                   const std::vector<CommittedSession>& sessions) override {
    for (const auto& s : sessions) {
      seen.push_back(s.session_id);
      View& view = views[s.session_id];
      for (const auto& [name, value] : s.labels) {
        if (value.has_value()) {
          view.labels[name] = *value;
        } else {
          view.labels.erase(name);
        }
      }
      for (const auto& [name, value] : s.measures) {
        if (value.has_value()) {
          view.measures[name] = *value;
        } else {
          view.measures.erase(name);
        }
      }
      last_delta_size = s.labels.size() + s.measures.size();
    }
  }
  void OnDeleted(const DatasetSpec& dataset,
                 const std::vector<DeletedSession>& sessions) override {
    for (const auto& s : sessions) deleted.push_back(s.session_id);
  }
  std::vector<std::string> seen;
  std::map<std::string, View> views;
  size_t last_delta_size = 0;
  std::vector<std::string> deleted;
};

// A catalog of open-domain values as the index keeps it, for the cap.
class FakeCatalog : public OpenDomainCatalog {
 public:
  bool HasValue(const DatasetSpec&, int dim,
                absl::string_view value) const override {
    return values.count({dim, std::string(value)}) > 0;
  }
  size_t NumValues(const DatasetSpec&, int dim) const override {
    size_t n = 0;
    for (const auto& [d, v] : values) n += d == dim;
    return n;
  }
  std::set<std::pair<int, std::string>> values;
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
                                     metrics_.get(), &listener_, &catalog_);
    ASSERT_OK(ingestor);
    ingestor_ = std::move(ingestor).value();
  }

  // The session as the store holds it (header and contributions), in the
  // format-1 shape that the assertions read easily.
  cohortd::internal::StoredSession Stored(const std::string& session) {
    auto value = store_.Get(keys::SessionHeaderKey("sessions", session));
    EXPECT_OK(value);
    cohortd::internal::StoredSessionHeader header;
    EXPECT_TRUE(header.ParseFromString(value.value_or("")));
    cohortd::internal::StoredSession record;
    record.set_account_pseudonym(header.account_pseudonym());
    record.set_session_start_unix_seconds(header.session_start_unix_seconds());
    EXPECT_OK(store_.Scan(
        keys::SessionRecordPrefix("sessions", session),
        [&](absl::string_view k, absl::string_view v) {
          std::string d, id, source;
          EXPECT_TRUE(keys::ParseSessionRecordKey(k, &d, &id, &source));
          if (source.empty()) return true;
          EXPECT_TRUE((*record.mutable_sources())[source].ParseFromArray(
              v.data(), static_cast<int>(v.size())));
          return true;
        }));
    EXPECT_EQ(header.source_count(), record.sources_size());
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
  FakeCatalog catalog_;
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
  EXPECT_EQ(metrics_->Value(
                "cohortd_ingest_rejections_total",
                {{"dataset", "sessions"}, {"reason", "value_not_in_domain"}}),
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
  EXPECT_EQ(record.sources().at("telemetry").measures().at("lines_added"), 120);
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
  EXPECT_EQ(listener_.views["s1"].labels.at("work_mode"), "build");
  EXPECT_EQ(listener_.views["s1"].measures.at("lines_added"), 120);
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

// The release cache keys on sealed snapshots (index/snapshot.h), so ingest
// writes no per-month data versions any more: only sessions and the
// ingest sequence.
TEST_F(IngestorTest, WritesOnlySessionsAndTheSequence) {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  *request.add_observations() = Obs("jan", "a", "t", kJan2026);
  *request.add_observations() = Obs("feb", "a", "t", kFeb2026);
  MustPush(request);
  std::vector<std::string> others;
  ASSERT_OK(store_.Scan("", [&](absl::string_view k, absl::string_view) {
    if (!absl::StartsWith(k, keys::kSessionPrefix)) others.emplace_back(k);
    return true;
  }));
  EXPECT_THAT(others, ::testing::ElementsAre(keys::IngestSequenceKey()));
}

// A contribution written in another valid encoding (field order, map
// order: e.g. protobuf's serializer) with the same content is recognised as
// unchanged, and a changed one replaces it.
TEST_F(IngestorTest, SameContentInAnotherEncodingIsUnchanged) {
  auto obs = Obs("s1", "acct", "telemetry");
  (*obs.mutable_labels())["outcome"] = "success";
  (*obs.mutable_labels())["work_mode"] = "fix";
  (*obs.mutable_measures())["lines_added"] = 3;
  (*obs.mutable_measures())["actions_per_prompt"] = 12.5;
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  *request.add_observations() = obs;
  ASSERT_EQ(MustPush(request).accepted(), 1);

  const std::string key = keys::ContributionKey("sessions", "s1", "telemetry");
  ASSERT_OK_AND_ASSIGN(std::string stored, store_.Get(key));
  cohortd::internal::SourceContribution parsed;
  ASSERT_TRUE(parsed.ParseFromString(stored));
  EXPECT_EQ(parsed.labels().at("work_mode"), "fix");
  EXPECT_EQ(parsed.measures().at("actions_per_prompt"), 12.5);
  EXPECT_GT(parsed.sequence(), 0u);
  // The sequence first, then the maps in reverse name order.
  cohortd::internal::SourceContribution sequence_only;
  sequence_only.set_sequence(parsed.sequence());
  std::string reordered = sequence_only.SerializeAsString();
  for (const char* name : {"work_mode", "outcome"}) {
    cohortd::internal::SourceContribution one;
    (*one.mutable_labels())[name] = parsed.labels().at(name);
    reordered += one.SerializeAsString();
  }
  for (const char* name : {"lines_added", "actions_per_prompt"}) {
    cohortd::internal::SourceContribution one;
    (*one.mutable_measures())[name] = parsed.measures().at(name);
    reordered += one.SerializeAsString();
  }
  ASSERT_NE(reordered, stored);
  WriteBatch batch;
  batch.Put(key, reordered);
  ASSERT_OK(store_.Write(batch, /*sync=*/true));

  cohortd::v1::PushResponse again = MustPush(request);
  EXPECT_EQ(again.unchanged(), 1);
  EXPECT_EQ(again.accepted(), 0);
  EXPECT_EQ(store_.Get(key).value_or(""), reordered);

  (*request.mutable_observations(0)->mutable_labels()).erase("work_mode");
  ASSERT_EQ(MustPush(request).accepted(), 1);
  EXPECT_EQ(Stored("s1").sources().at("telemetry").labels_size(), 1);
  EXPECT_EQ(listener_.views["s1"].labels.count("work_mode"), 0u);
  EXPECT_EQ(listener_.views["s1"].measures.at("lines_added"), 3);
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
  EXPECT_THAT(store_.Get(keys::SessionHeaderKey("sessions", "s1")),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(IngestorTest, ShutdownRefusesNewPushes) {
  ingestor_->Shutdown();
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  *request.add_observations() = Obs("s1", "a", "t");
  EXPECT_THAT(ingestor_->Push(request), StatusIs(absl::StatusCode::kUnavailable,
                                                 HasSubstr("shutting down")));
}

// The defect of issue 13: one client adding many sources to one session
// made every push rewrite the whole session. Now a push writes its own
// contribution, the small header and two counters, whatever the session
// holds: assert on the bytes each push writes.
TEST_F(IngestorTest, ManySourcesOnOneSessionEachPushWritesOnlyItself) {
  constexpr int kSources = 20000;
  config_.ingest.max_sources_per_session = kSources;
  Reopen();
  for (int i = 0; i < kSources; ++i) {
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    auto obs = Obs("busy", "acct", absl::StrCat("src-", i));
    (*obs.mutable_measures())["lines_added"] = i % 100;
    *request.add_observations() = obs;
    ASSERT_EQ(MustPush(request).accepted(), 1);
  }
  const std::vector<size_t> bytes = store_.write_bytes();
  ASSERT_EQ(bytes.size(), kSources);
  // Key and value of one contribution, the header (32-byte pseudonym) and
  // the ingest sequence: about 150 bytes. The
  // whole session record would be over 20,000 x 20 bytes by the end.
  constexpr size_t kMaxBytesPerPush = 300;
  for (int i = 0; i < kSources; ++i) {
    ASSERT_LE(bytes[i], kMaxBytesPerPush) << "push " << i;
  }
  EXPECT_LE(bytes.back(), bytes.front() + 16);  // only the counters grow
  EXPECT_EQ(Stored("busy").sources_size(), kSources);
  EXPECT_EQ(listener_.last_delta_size, 1);
}

TEST_F(IngestorTest, ReadsHeadersAndOnlyTheStoredSessionsContributions) {
  // A session new to the store has no contributions to read: a push of
  // new sessions reads one header per session, whatever its sources.
  cohortd::v1::PushRequest fresh;
  fresh.set_dataset("sessions");
  for (int s = 0; s < 3; ++s) {
    for (int source = 0; source < 4; ++source) {
      *fresh.add_observations() =
          Obs(absl::StrCat("r", s), "acct", absl::StrCat("src-", source));
    }
  }
  store_.TakeKeysRead();
  ASSERT_EQ(MustPush(fresh).accepted(), 12);
  EXPECT_EQ(store_.TakeKeysRead(), 3u);
  // A stored session: its header and each contribution the push names
  // (a changed one, a new one), once each; a new session: its header.
  cohortd::v1::PushRequest again;
  again.set_dataset("sessions");
  auto changed = Obs("r0", "acct", "src-0");
  (*changed.mutable_labels())["work_mode"] = "fix";
  *again.add_observations() = changed;
  *again.add_observations() = Obs("r0", "acct", "src-9");
  *again.add_observations() = Obs("r0", "acct", "src-9");
  *again.add_observations() = Obs("r7", "acct", "src-0");
  *again.add_observations() = Obs("r7", "acct", "src-1");
  const cohortd::v1::PushResponse response = MustPush(again);
  EXPECT_EQ(response.accepted(), 4);
  EXPECT_EQ(response.unchanged(), 1);
  EXPECT_EQ(store_.TakeKeysRead(), 2u + 2u);
  EXPECT_EQ(Stored("r0").sources_size(), 5);
  EXPECT_EQ(Stored("r0").sources().at("src-0").labels().at("work_mode"), "fix");
  EXPECT_EQ(Stored("r7").sources_size(), 2);
}

TEST_F(IngestorTest, DroppedLabelFallsBackToTheLatestOtherSource) {
  auto push = [&](const std::string& source,
                  std::map<std::string, std::string> labels) {
    cohortd::v1::PushRequest request;
    request.set_dataset("sessions");
    auto obs = Obs("s1", "acct", source);
    for (const auto& [k, v] : labels) (*obs.mutable_labels())[k] = v;
    *request.add_observations() = obs;
    EXPECT_EQ(MustPush(request).accepted(), 1);
  };
  push("a", {{"work_mode", "build"}, {"outcome", "success"}});
  push("b", {{"work_mode", "fix"}});
  push("c", {{"work_mode", "test"}});
  EXPECT_EQ(listener_.views["s1"].labels.at("work_mode"), "test");
  // b drops work_mode while c wins it: nothing changes.
  push("b", {{"expertise", "novice"}});
  EXPECT_EQ(listener_.views["s1"].labels.at("work_mode"), "test");
  // c drops it: the latest other source that has it (a) wins.
  push("c", {{"expertise", "expert"}});
  EXPECT_EQ(listener_.views["s1"].labels.at("work_mode"), "build");
  EXPECT_EQ(listener_.views["s1"].labels.at("expertise"), "expert");
  // a drops it too: nobody has it.
  push("a", {{"outcome", "success"}});
  EXPECT_EQ(listener_.views["s1"].labels.count("work_mode"), 0);
  EXPECT_EQ(listener_.views["s1"].labels.at("outcome"), "success");

  // In one push: a source replaced twice, another setting the name between.
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  auto x = Obs("s1", "acct", "b");
  (*x.mutable_labels())["work_mode"] = "write";
  auto y = Obs("s1", "acct", "c");
  (*y.mutable_labels())["work_mode"] = "fix";
  auto z = Obs("s1", "acct", "c");
  (*z.mutable_labels())["outcome"] = "failure";
  *request.add_observations() = x;
  *request.add_observations() = y;
  *request.add_observations() = z;
  EXPECT_EQ(MustPush(request).accepted(), 3);
  EXPECT_EQ(listener_.views["s1"].labels.at("work_mode"), "write");
  EXPECT_EQ(listener_.views["s1"].labels.at("outcome"), "failure");
}

TEST_F(IngestorTest, SourceCapRejectsANewSourceNamingFieldAndLimit) {
  config_.ingest.max_sources_per_session = 2;
  Reopen();
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  *request.add_observations() = Obs("s1", "acct", "one");
  *request.add_observations() = Obs("s1", "acct", "two");
  *request.add_observations() = Obs("s1", "acct", "three");
  *request.add_observations() = Obs("s2", "acct", "three");
  auto response = MustPush(request);
  EXPECT_EQ(response.accepted(), 3);
  ASSERT_THAT(response.rejected(), SizeIs(1));
  EXPECT_EQ(response.rejected(0).index(), 2);
  EXPECT_EQ(response.rejected(0).field(), "source");
  EXPECT_THAT(response.rejected(0).reason(),
              HasSubstr("ingest.max_sources_per_session = 2"));
  // A known source may still change.
  cohortd::v1::PushRequest update;
  update.set_dataset("sessions");
  auto obs = Obs("s1", "acct", "two");
  (*obs.mutable_labels())["work_mode"] = "fix";
  *update.add_observations() = obs;
  EXPECT_EQ(MustPush(update).accepted(), 1);
  EXPECT_EQ(Stored("s1").sources_size(), 2);
  EXPECT_EQ(metrics_->Value("cohortd_ingest_rejections_total",
                            {{"dataset", "sessions"}, {"reason", "limit"}}),
            1);
}

TEST_F(IngestorTest, OpenDomainCapRejectsANewValueNamingFieldAndLimit) {
  config_.ingest.max_open_domain_values = 3;
  Reopen();
  const int topic = 3;  // task_topic in TestDataset
  catalog_.values = {{topic, "a"}, {topic, "b"}};
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (const char* value : {"a", "c", "c", "d", "b"}) {
    auto obs =
        Obs(absl::StrCat("s-", request.observations_size()), "acct", "topics");
    (*obs.mutable_labels())["task_topic"] = value;
    *request.add_observations() = obs;
  }
  auto response = MustPush(request);
  EXPECT_EQ(response.accepted(), 4);
  ASSERT_THAT(response.rejected(), SizeIs(1));
  EXPECT_EQ(response.rejected(0).index(), 3);
  EXPECT_EQ(response.rejected(0).field(), "labels.task_topic");
  EXPECT_THAT(response.rejected(0).reason(),
              HasSubstr("ingest.max_open_domain_values = 3"));
}

}  // namespace
}  // namespace cohortd
