#include "server/index/columnar_index.h"

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/ingest/validator.h"
#include "server/storage/keys.h"
#include "server/storage/mem_store.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::cohortd::internal::SourceContribution;
using ::cohortd::internal::StoredSession;
using ::cohortd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr int64_t kJan2026 = 1767225600;  // 2026-01-01T00:00:00Z
constexpr int64_t kFeb2026 = 1769904000;  // 2026-02-01T00:00:00Z

std::string Pseudonym(int account) {
  return absl::StrFormat("%032d", account);  // 32 bytes, like an HMAC
}

struct Push {
  std::string source;
  uint64_t sequence = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, double> measures;
};

StoredSession Record(int account, int64_t start,
                     const std::vector<Push>& pushes) {
  StoredSession record;
  record.set_account_pseudonym(Pseudonym(account));
  record.set_session_start_unix_seconds(start);
  for (const Push& push : pushes) {
    SourceContribution& c = (*record.mutable_sources())[push.source];
    c.set_sequence(push.sequence);
    for (const auto& [k, v] : push.labels) (*c.mutable_labels())[k] = v;
    for (const auto& [k, v] : push.measures) (*c.mutable_measures())[k] = v;
  }
  return record;
}

// A record whose lines_added measure tags it, so tests can find its row.
StoredSession Tagged(int account, int tag, int64_t start = kJan2026,
                     std::map<std::string, std::string> labels = {}) {
  return Record(account, start,
                {{"telemetry", 1, std::move(labels), {{"lines_added", tag}}}});
}

// Stores `record` as ingest does (storage format 2: a header and one key
// per source).
void Put(MemStore* store, const std::string& session_id,
         const StoredSession& record) {
  WriteBatch batch;
  cohortd::internal::StoredSessionHeader header;
  header.set_account_pseudonym(record.account_pseudonym());
  header.set_session_start_unix_seconds(record.session_start_unix_seconds());
  header.set_source_count(record.sources_size());
  batch.Put(keys::SessionHeaderKey("sessions", session_id),
            header.SerializeAsString());
  for (const auto& [source, c] : record.sources()) {
    batch.Put(keys::ContributionKey("sessions", session_id, source),
              c.SerializeAsString());
  }
  ASSERT_OK(store->Write(batch, /*sync=*/true));
}

class ColumnarIndexTest : public ::testing::Test {
 protected:
  void SetUp() override { config_ = testing::TestConfig(); }

  const DatasetSpec& spec() const { return config_.datasets[0]; }

  std::unique_ptr<ColumnarIndex> BuildIndex(
      ColumnarIndex::Options options = {}) {
    auto index = ColumnarIndex::Build(config_, &store_, options);
    EXPECT_OK(index);
    return index.ok() ? std::move(index).value() : nullptr;
  }

  // Commits one session through the listener interface, as ingest does.
  static void Commit(ColumnarIndex* index, const DatasetSpec& spec,
                     const std::string& session_id,
                     const StoredSession& record) {
    index->OnCommitted(spec,
                       {CommittedSession::FromRecord(session_id, record)});
  }

  Config config_;
  MemStore store_;
};

// The row whose lines_added is `tag`; fails the test if not exactly one.
uint32_t RowOf(const DatasetView& view, int tag) {
  const MeasureColumn& lines = view.measure(view.FindMeasure("lines_added"));
  std::vector<uint32_t> rows;
  for (uint32_t row = 0; row < view.num_sessions(); ++row) {
    if (lines.Get(row) == tag) rows.push_back(row);
  }
  EXPECT_EQ(rows.size(), 1u) << "tag " << tag;
  return rows.empty() ? 0 : rows[0];
}

std::string Label(const DatasetView& view, const std::string& dim,
                  uint32_t row) {
  const int d = view.FindDimension(dim);
  return std::string(view.DimensionValue(d, view.codes(d)[row]));
}

// Account id -> the tags of its sessions, via ForEachAccount.
std::map<uint32_t, std::set<int>> TagsByAccount(const DatasetView& view) {
  const MeasureColumn& lines = view.measure(view.FindMeasure("lines_added"));
  std::map<uint32_t, std::set<int>> tags;
  view.ForEachAccount([&](const AccountRows& account) {
    account.ForEachRow([&](uint32_t row) {
      tags[account.account].insert(static_cast<int>(*lines.Get(row)));
    });
  });
  return tags;
}

TEST_F(ColumnarIndexTest, BuildMergesSourcesByLaterSequence) {
  Put(&store_, "s1",
      Record(1, kJan2026,
             {{"classifier-a",
               5,
               {{"work_mode", "fix"}, {"expertise", "novice"}},
               {{"actions_per_prompt", 3}}},
              {"classifier-b",
               7,
               {{"work_mode", "build"}},
               {{"actions_per_prompt", 9}, {"lines_added", 1}}},
              {"classifier-c", 6, {{"outcome", "failure"}}, {}}}));
  auto index = BuildIndex();
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  ASSERT_EQ(view->num_sessions(), 1u);
  EXPECT_EQ(Label(*view, "work_mode", 0), "build");   // seq 7 beats seq 5
  EXPECT_EQ(Label(*view, "expertise", 0), "novice");  // only source
  EXPECT_EQ(Label(*view, "outcome", 0), "failure");
  EXPECT_EQ(view->measure(view->FindMeasure("actions_per_prompt")).Get(0),
            900);  // 9 / 0.01
}

TEST_F(ColumnarIndexTest, EqualSequencesResolveBySourceName) {
  Put(&store_, "s1",
      Record(1, kJan2026,
             {{"b", 3, {{"work_mode", "test"}}, {}},
              {"a", 3, {{"work_mode", "fix"}}, {}}}));
  auto index = BuildIndex();
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  EXPECT_EQ(Label(*view, "work_mode", 0), "test");
}

TEST_F(ColumnarIndexTest, OnCommittedReplacesChangedSessionInPlace) {
  Put(&store_, "s1", Tagged(1, 1, kJan2026, {{"work_mode", "fix"}}));
  Put(&store_, "s2", Tagged(1, 2, kJan2026, {{"work_mode", "fix"}}));
  auto index = BuildIndex();

  StoredSession changed = Tagged(1, 1, kJan2026, {{"work_mode", "write"}});
  Commit(index.get(), spec(), "s1", changed);

  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  EXPECT_EQ(view->num_sessions(), 2u);
  EXPECT_EQ(view->num_accounts(), 1u);
  EXPECT_EQ(Label(*view, "work_mode", RowOf(*view, 1)), "write");
  EXPECT_EQ(Label(*view, "work_mode", RowOf(*view, 2)), "fix");
}

TEST_F(ColumnarIndexTest, DeltaPatchesOnlyTheNamesItListsAndClearsAbsent) {
  Put(&store_, "s1",
      Record(1, kJan2026,
             {{"a",
               1,
               {{"work_mode", "fix"}, {"outcome", "success"}},
               {{"lines_added", 7}}}}));
  auto index = BuildIndex();
  CommittedSession delta;
  delta.session_id = "s1";
  delta.account_pseudonym = Pseudonym(1);
  delta.session_start_unix_seconds = kJan2026;
  delta.labels = {{"work_mode", "build"},
                  {"outcome", absl::nullopt},
                  {"not_in_schema", "x"}};
  delta.measures = {{"actions_per_prompt", 2.5}};
  index->OnCommitted(spec(), {delta});

  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  ASSERT_EQ(view->num_sessions(), 1u);
  EXPECT_EQ(Label(*view, "work_mode", 0), "build");
  EXPECT_EQ(Label(*view, "outcome", 0), "");  // absent
  const MeasureColumn& lines = view->measure(view->FindMeasure("lines_added"));
  EXPECT_EQ(lines.Get(0), lines.Encode(7));  // untouched
  EXPECT_TRUE(view->measure(view->FindMeasure("actions_per_prompt")).Has(0));
}

TEST_F(ColumnarIndexTest, CatalogsOpenDomainValues) {
  Put(&store_, "s1",
      Record(1, kJan2026, {{"a", 1, {{"task_topic", "parsing"}}, {}}}));
  Put(&store_, "s2",
      Record(2, kJan2026, {{"a", 2, {{"task_topic", "ui"}}, {}}}));
  auto index = BuildIndex();
  const int topic = 3;
  EXPECT_TRUE(index->HasValue(spec(), topic, "ui"));
  EXPECT_FALSE(index->HasValue(spec(), topic, "db"));
  EXPECT_EQ(index->NumValues(spec(), topic), 2u);
}

TEST_F(ColumnarIndexTest, NewSessionsAppearGroupedByAccount) {
  Put(&store_, "a1", Tagged(1, 11));
  Put(&store_, "b1", Tagged(2, 21));
  Put(&store_, "a2", Tagged(1, 12));
  auto index = BuildIndex();
  {
    ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
    EXPECT_THAT(
        TagsByAccount(*view),
        ElementsAre(::testing::Pair(::testing::_, UnorderedElementsAre(11, 12)),
                    ::testing::Pair(::testing::_, ElementsAre(21))));
  }
  // Into the tail: an existing account's session and a new account's.
  StoredSession a3 = Tagged(1, 13);
  StoredSession c1 = Tagged(3, 31);
  StoredSession b2 = Tagged(2, 22);
  index->OnCommitted(spec(), {CommittedSession::FromRecord("a3", a3),
                              CommittedSession::FromRecord("c1", c1),
                              CommittedSession::FromRecord("b2", b2)});

  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  EXPECT_EQ(view->num_sessions(), 6u);
  EXPECT_EQ(view->num_accounts(), 3u);
  std::map<uint32_t, std::set<int>> tags = TagsByAccount(*view);
  std::set<std::set<int>> groups;
  for (const auto& [account, t] : tags) groups.insert(t);
  EXPECT_THAT(groups,
              UnorderedElementsAre(std::set<int>{11, 12, 13},
                                   std::set<int>{21, 22}, std::set<int>{31}));
}

TEST_F(ColumnarIndexTest, CompactionKeepsEverySessionAndAccount) {
  ColumnarIndex::Options options;
  options.min_compaction_rows = 4;
  auto index = BuildIndex(options);
  std::map<int, std::set<int>> expected;  // account -> tags
  std::vector<StoredSession> records;
  for (int i = 0; i < 200; ++i) {
    const int account = (i * 7) % 23;
    Commit(index.get(), spec(), absl::StrFormat("s%d", i), Tagged(account, i));
    expected[account].insert(i);
    if (i % 3 == 0) {  // and rewrite an older session
      const int old = i / 2;
      Commit(index.get(), spec(), absl::StrFormat("s%d", old),
             Tagged((old * 7) % 23, old));
    }
  }
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  EXPECT_EQ(view->num_sessions(), 200u);
  EXPECT_EQ(view->num_accounts(), 23u);
  std::set<std::set<int>> want;
  for (const auto& [account, tags] : expected) want.insert(tags);
  std::set<std::set<int>> got;
  for (const auto& [account, tags] : TagsByAccount(*view)) got.insert(tags);
  EXPECT_EQ(got, want);
}

TEST_F(ColumnarIndexTest, OpenDomainDictionaryGrowsAndWidens) {
  auto index = BuildIndex();
  for (int i = 0; i < 300; ++i) {
    Commit(index.get(), spec(), absl::StrFormat("s%d", i),
           Tagged(i, i, kJan2026,
                  {{"task_topic", absl::StrFormat("topic-%d", i % 280)}}));
  }
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  const int topic = view->FindDimension("task_topic");
  EXPECT_EQ(view->dictionary(topic).cardinality(), 281u);
  EXPECT_EQ(view->codes(topic).width(), 2);
  EXPECT_EQ(Label(*view, "task_topic", RowOf(*view, 299)), "topic-19");
  EXPECT_EQ(view->DimensionCode(topic, "topic-0"), 1u);
  EXPECT_EQ(view->DimensionCode(topic, "never-seen"), absl::nullopt);
}

TEST_F(ColumnarIndexTest, MonthIsDerivedFromSessionStartInUtc) {
  Put(&store_, "s1", Tagged(1, 1, kJan2026));
  Put(&store_, "s2", Tagged(1, 2, kFeb2026 - 1));  // last second of January
  Put(&store_, "s3", Tagged(2, 3, kFeb2026));
  auto index = BuildIndex();
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  EXPECT_EQ(Label(*view, "month", RowOf(*view, 1)), "2026-01");
  EXPECT_EQ(Label(*view, "month", RowOf(*view, 2)), "2026-01");
  EXPECT_EQ(Label(*view, "month", RowOf(*view, 3)), MonthOf(kFeb2026));
  EXPECT_EQ(view->dictionary(view->FindDimension("month")).cardinality(), 3u);
}

TEST_F(ColumnarIndexTest, MeasuresAreClampedToFixedPoint) {
  auto index = BuildIndex();
  auto commit = [&](int tag, double actions, double share) {
    Commit(index.get(), spec(), absl::StrFormat("s%d", tag),
           Record(1, kJan2026,
                  {{"t",
                    1,
                    {},
                    {{"lines_added", tag},
                     {"actions_per_prompt", actions},
                     {"planning_user_share", share}}}}));
  };
  commit(1, 3.14159, 0.7004);
  commit(2, 250, 1.5);  // above upper: clamped
  commit(3, -4, -0.2);  // below lower: clamped
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  const MeasureColumn& actions =
      view->measure(view->FindMeasure("actions_per_prompt"));
  const MeasureColumn& share =
      view->measure(view->FindMeasure("planning_user_share"));
  EXPECT_EQ(actions.Get(RowOf(*view, 1)), 314);
  EXPECT_EQ(share.Get(RowOf(*view, 1)), 700);
  EXPECT_EQ(actions.Get(RowOf(*view, 2)), 20000);
  EXPECT_EQ(share.Get(RowOf(*view, 2)), 1000);
  EXPECT_EQ(actions.Get(RowOf(*view, 3)), 0);
  EXPECT_EQ(share.Get(RowOf(*view, 3)), 0);
  EXPECT_EQ(actions.width(), 2);  // 20000 steps fit 16 bits
  EXPECT_DOUBLE_EQ(actions.granularity(), 0.01);
}

TEST_F(ColumnarIndexTest, AbsentLabelsAndMeasuresAreNotZero) {
  Put(&store_, "s1", Record(1, kJan2026, {{"t", 1, {}, {}}}));
  Put(&store_, "s2",
      Record(1, kJan2026,
             {{"t",
               1,
               {{"work_mode", "no-such-mode"}},
               {{"actions_per_prompt", 0}}}}));
  auto index = BuildIndex();
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  const int mode = view->FindDimension("work_mode");
  const MeasureColumn& actions =
      view->measure(view->FindMeasure("actions_per_prompt"));
  int absent = 0;
  int zero = 0;
  for (uint32_t row = 0; row < 2; ++row) {
    EXPECT_EQ(view->codes(mode)[row], 0u);  // none, or outside the domain
    EXPECT_EQ(view->DimensionValue(mode, 0), "");
    if (!actions.Has(row)) ++absent;
    if (actions.Get(row) == 0) ++zero;
  }
  EXPECT_EQ(absent, 1);
  EXPECT_EQ(zero, 1);
}

uint64_t ConstantHash(absl::string_view) { return 42; }

TEST_F(ColumnarIndexTest, SessionIdHashCollisionsAreToldApart) {
  ColumnarIndex::Options options;
  options.session_id_hash = ConstantHash;
  auto index = BuildIndex(options);
  Commit(index.get(), spec(), "a", Tagged(1, 1, kJan2026));
  Commit(index.get(), spec(), "b", Tagged(2, 2, kJan2026));  // other account
  Commit(index.get(), spec(), "c", Tagged(1, 3, kFeb2026));  // other month
  // Updates find their own rows, including the overflowed ones.
  Commit(index.get(), spec(), "b",
         Tagged(2, 2, kJan2026, {{"work_mode", "test"}}));
  Commit(index.get(), spec(), "c",
         Tagged(1, 3, kFeb2026, {{"work_mode", "fix"}}));
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  EXPECT_EQ(view->num_sessions(), 3u);
  EXPECT_EQ(Label(*view, "work_mode", RowOf(*view, 1)), "");
  EXPECT_EQ(Label(*view, "work_mode", RowOf(*view, 2)), "test");
  EXPECT_EQ(Label(*view, "work_mode", RowOf(*view, 3)), "fix");
}

TEST_F(ColumnarIndexTest, FingerprintsSurviveCompactionAndRestart) {
  ColumnarIndex::Options options;
  options.min_compaction_rows = 2;
  Put(&store_, "a1", Tagged(1, 1));
  Put(&store_, "b1", Tagged(2, 2));
  auto index = BuildIndex(options);
  Commit(index.get(), spec(), "a2", Tagged(1, 3));
  Commit(index.get(), spec(), "c1", Tagged(3, 4));  // compacts
  auto rebuilt = BuildIndex(options);  // another "process": same store
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  ASSERT_OK_AND_ASSIGN(auto other, rebuilt->Read("sessions"));
  EXPECT_EQ(view->RowFingerprint(RowOf(*view, 1)), SessionFingerprint("a1"));
  EXPECT_EQ(view->RowFingerprint(RowOf(*view, 4)), SessionFingerprint("c1"));
  EXPECT_EQ(other->RowFingerprint(RowOf(*other, 2)),
            view->RowFingerprint(RowOf(*view, 2)));
  EXPECT_NE(SessionFingerprint("a1"), SessionFingerprint("a2"));
  std::set<uint64_t> accounts;
  for (uint32_t a = 0; a < view->num_accounts(); ++a) {
    accounts.insert(view->AccountFingerprint(a));
  }
  EXPECT_EQ(accounts.size(), 3u);
}

TEST_F(ColumnarIndexTest, CohortKeyerIsMixedRadix) {
  Put(&store_, "s1",
      Tagged(1, 1, kJan2026, {{"work_mode", "test"}, {"outcome", "partial"}}));
  auto index = BuildIndex();
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  const int mode = view->FindDimension("work_mode");
  const int outcome = view->FindDimension("outcome");
  ASSERT_OK_AND_ASSIGN(CohortKeyer keyer,
                       CohortKeyer::Create(*view, {mode, outcome}));
  EXPECT_EQ(keyer.num_cohorts(), 5u * 5u);  // 4 values + absent, each
  const uint64_t key = keyer.Key(0);
  EXPECT_EQ(key, 3u * 5u + 2u);
  EXPECT_THAT(keyer.Decode(key), ElementsAre(3u, 2u));
  EXPECT_THAT(CohortKeyer::Create(*view, {7}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ColumnarIndexTest, ErrorsAreReported) {
  auto index = BuildIndex();
  EXPECT_THAT(index->Read("nope"), StatusIs(absl::StatusCode::kNotFound));

  WriteBatch batch;
  batch.Put(keys::SessionHeaderKey("sessions", "bad"), "\xff\xff not a proto");
  ASSERT_OK(store_.Write(batch, /*sync=*/true));
  EXPECT_THAT(ColumnarIndex::Build(config_, &store_, {}),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("bad")));
  // A contribution without its header, and a format-1 key.
  MemStore orphan;
  WriteBatch contribution;
  contribution.Put(keys::ContributionKey("sessions", "x", "src"), "");
  ASSERT_OK(orphan.Write(contribution, /*sync=*/true));
  EXPECT_THAT(ColumnarIndex::Build(config_, &orphan, {}),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("no header")));
  MemStore garbled;
  Put(&garbled, "z", Tagged(1, 1));
  WriteBatch garble;
  garble.Put(keys::ContributionKey("sessions", "z", "telemetry"), "\x0a\xff");
  ASSERT_OK(garbled.Write(garble, /*sync=*/true));
  EXPECT_THAT(ColumnarIndex::Build(config_, &garbled, {}),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("telemetry")));
  MemStore old;
  WriteBatch v1;
  v1.Put(keys::SessionKey("sessions", "y"), "");
  ASSERT_OK(old.Write(v1, /*sync=*/true));
  EXPECT_THAT(ColumnarIndex::Build(config_, &old, {}),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("format 2")));

  DatasetSpec bad = spec();
  bad.measures[0].granularity = 0;
  EXPECT_THAT(ColumnarIndex::Create({&bad}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ColumnarIndexTest, MemoryBytesIsSane) {
  for (int i = 0; i < 20000; ++i) {
    Put(&store_, absl::StrFormat("session-%08d", i),
        Record(i / 3, kJan2026 + i * 60,
               {{"t",
                 1,
                 {{"work_mode", "fix"}, {"task_topic", "t"}},
                 {{"lines_added", i}, {"actions_per_prompt", 4}}}}));
  }
  auto index = BuildIndex();
  const size_t bytes = index->MemoryBytes();
  // 5 one-byte codes, 2+2+2 bytes of measures, ~20 bytes of session index
  // and ~20 of account index per session (3 sessions per account).
  EXPECT_GT(bytes, 20000u * 20);
  EXPECT_LT(bytes, 20000u * 100);
}

TEST_F(ColumnarIndexTest, ConcurrentReadersSeeWholeCommits) {
  ColumnarIndex::Options options;
  options.min_compaction_rows = 64;  // compact often, under readers
  auto index = BuildIndex(options);
  constexpr int kCommits = 300;
  constexpr int kPerCommit = 10;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int c = 0; c < kCommits; ++c) {
      std::vector<StoredSession> records;
      for (int i = 0; i < kPerCommit; ++i) {
        records.push_back(
            Tagged((c * kPerCommit + i) % 97, c * kPerCommit + i));
      }
      std::vector<CommittedSession> sessions;
      for (int i = 0; i < kPerCommit; ++i) {
        sessions.push_back(CommittedSession::FromRecord(
            absl::StrFormat("s%d", c * kPerCommit + i), records[i]));
      }
      index->OnCommitted(spec(), sessions);
    }
    done = true;
  });
  std::atomic<int> failures{0};
  auto reader = [&] {
    uint32_t last = 0;
    while (!done) {
      auto view = index->Read("sessions");
      if (!view.ok()) {
        ++failures;
        return;
      }
      uint32_t seen = 0;
      (*view)->ForEachAccount(
          [&](const AccountRows& rows) { seen += rows.num_sessions(); });
      const uint32_t n = (*view)->num_sessions();
      if (seen != n || n % kPerCommit != 0 || n < last) ++failures;
      last = n;
    }
  };
  std::thread r1(reader);
  std::thread r2(reader);
  writer.join();
  r1.join();
  r2.join();
  EXPECT_EQ(failures, 0);
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  EXPECT_EQ(view->num_sessions(), uint32_t{kCommits * kPerCommit});
  EXPECT_EQ(view->num_accounts(), 97u);
}

}  // namespace
}  // namespace cohortd
