// ColumnarIndex::OnDeleted (erasure and retention): removed sessions leave
// every column and the account index; the rest keep their values, stay
// grouped by account, and can still be updated and joined by new ones.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/index/columnar_index.h"
#include "server/storage/keys.h"
#include "server/storage/mem_store.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::cohortd::internal::SourceContribution;
using ::cohortd::internal::StoredSession;
using ::testing::UnorderedElementsAre;

constexpr int64_t kJan2026 = 1767225600;  // 2026-01-01T00:00:00Z
constexpr int64_t kFeb2026 = 1769904000;  // 2026-02-01T00:00:00Z

std::string Pseudonym(int account) {
  return absl::StrFormat("%032d", account);  // 32 bytes, like an HMAC
}

// A session of `account` whose lines_added is `tag`, so it can be found.
StoredSession Tagged(int account, int tag, int64_t start = kJan2026,
                     const std::string& work_mode = "fix") {
  StoredSession record;
  record.set_account_pseudonym(Pseudonym(account));
  record.set_session_start_unix_seconds(start);
  SourceContribution& c = (*record.mutable_sources())["telemetry"];
  c.set_sequence(1);
  (*c.mutable_labels())["work_mode"] = work_mode;
  (*c.mutable_measures())["lines_added"] = tag;
  return record;
}

// Account fingerprint -> the tags of its sessions, via ForEachAccount.
std::map<uint64_t, std::set<int>> TagsByAccount(const DatasetView& view) {
  const MeasureColumn& lines = view.measure(view.FindMeasure("lines_added"));
  std::map<uint64_t, std::set<int>> tags;
  view.ForEachAccount([&](const AccountRows& account) {
    std::set<int>& mine = tags[view.AccountFingerprint(account.account)];
    account.ForEachRow(
        [&](uint32_t row) { mine.insert(static_cast<int>(*lines.Get(row))); });
  });
  return tags;
}

std::set<std::set<int>> Groups(const DatasetView& view) {
  std::set<std::set<int>> groups;
  for (const auto& [account, tags] : TagsByAccount(view)) groups.insert(tags);
  return groups;
}

DeletedSession Of(const std::string& id, const StoredSession& record) {
  return {id, record.account_pseudonym(), record.session_start_unix_seconds()};
}

class ColumnarIndexRemovalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::TestConfig();
    ColumnarIndex::Options options;
    options.min_compaction_rows = 4;  // so tests cross compactions
    ASSERT_OK_AND_ASSIGN(index_,
                         ColumnarIndex::Build(config_, &store_, options));
  }
  const DatasetSpec& spec() const { return config_.datasets[0]; }

  // Commits `session` as ingest would, remembering its record.
  void Add(const std::string& id, StoredSession record) {
    records_[id] = std::move(record);
    index_->OnCommitted(spec(),
                        {CommittedSession::FromRecord(id, records_[id])});
  }
  void Delete(const std::vector<std::string>& ids) {
    std::vector<DeletedSession> removed;
    for (const std::string& id : ids) removed.push_back(Of(id, records_[id]));
    index_->OnDeleted(spec(), removed);
  }

  Config config_;
  MemStore store_;
  std::unique_ptr<ColumnarIndex> index_;
  std::map<std::string, StoredSession> records_;
};

TEST_F(ColumnarIndexRemovalTest, RemovesOneAccountFromSortedRegionAndTail) {
  // Accounts 1-3 with sessions spread over sorted region and tail.
  int tag = 0;
  for (int round = 0; round < 3; ++round) {
    for (int account = 1; account <= 3; ++account) {
      ++tag;
      Add(absl::StrFormat("a%d-%d", account, round),
          Tagged(account, account * 100 + round));
    }
  }
  Delete({"a2-0", "a2-1", "a2-2"});

  ASSERT_OK_AND_ASSIGN(auto view, index_->Read("sessions"));
  EXPECT_EQ(view->num_sessions(), 6u);
  EXPECT_EQ(view->num_accounts(), 2u);
  EXPECT_THAT(Groups(*view),
              UnorderedElementsAre(std::set<int>{100, 101, 102},
                                   std::set<int>{300, 301, 302}));
}

TEST_F(ColumnarIndexRemovalTest, KeepsOtherColumnsAligned) {
  Add("keep", Tagged(1, 7, kJan2026, "write"));
  Add("gone", Tagged(2, 8, kFeb2026, "build"));
  Add("also", Tagged(3, 9, kFeb2026, "test"));
  Delete({"gone"});

  ASSERT_OK_AND_ASSIGN(auto view, index_->Read("sessions"));
  ASSERT_EQ(view->num_sessions(), 2u);
  const int wm = view->FindDimension("work_mode");
  const int month = view->FindDimension("month");
  const MeasureColumn& lines = view->measure(view->FindMeasure("lines_added"));
  std::map<int, std::pair<std::string, std::string>> by_tag;
  for (uint32_t row = 0; row < view->num_sessions(); ++row) {
    by_tag[static_cast<int>(*lines.Get(row))] = {
        std::string(view->DimensionValue(wm, view->codes(wm)[row])),
        std::string(view->DimensionValue(month, view->codes(month)[row]))};
  }
  EXPECT_EQ(by_tag[7],
            std::make_pair(std::string("write"), std::string("2026-01")));
  EXPECT_EQ(by_tag[9],
            std::make_pair(std::string("test"), std::string("2026-02")));
  EXPECT_EQ(by_tag.count(8), 0u);
}

TEST_F(ColumnarIndexRemovalTest, RemainingSessionsUpdateInPlaceAndNewOnesJoin) {
  for (int i = 0; i < 10; ++i) {
    Add(absl::StrFormat("s%d", i), Tagged(i % 3, i));
  }
  Delete({"s0", "s3", "s6", "s9"});  // all of account 0
  // An update of a remaining session replaces its row, adds none.
  Add("s4", Tagged(1, 44));
  // A deleted id pushed again is a new session.
  Add("s0", Tagged(5, 50));
  Add("s10", Tagged(2, 10));

  ASSERT_OK_AND_ASSIGN(auto view, index_->Read("sessions"));
  EXPECT_EQ(view->num_sessions(), 8u);
  EXPECT_EQ(view->num_accounts(), 3u);
  EXPECT_THAT(Groups(*view), UnorderedElementsAre(std::set<int>{1, 44, 7},
                                                  std::set<int>{2, 5, 8, 10},
                                                  std::set<int>{50}));
}

TEST_F(ColumnarIndexRemovalTest, UnknownOrMismatchedSessionsAreIgnored) {
  Add("s1", Tagged(1, 1));
  records_["nope"] = Tagged(1, 2);
  // Same id, other account: not this index's session.
  records_["s1-other"] = Tagged(2, 1);
  std::vector<DeletedSession> removed = {Of("nope", records_["nope"]),
                                         Of("s1", records_["s1-other"])};
  index_->OnDeleted(spec(), removed);
  ASSERT_OK_AND_ASSIGN(auto view, index_->Read("sessions"));
  EXPECT_EQ(view->num_sessions(), 1u);
}

TEST_F(ColumnarIndexRemovalTest, RemovingEverythingLeavesAnEmptyUsableIndex) {
  Add("s1", Tagged(1, 1));
  Add("s2", Tagged(2, 2));
  Delete({"s1", "s2"});
  {
    ASSERT_OK_AND_ASSIGN(auto view, index_->Read("sessions"));
    EXPECT_EQ(view->num_sessions(), 0u);
    EXPECT_EQ(view->num_accounts(), 0u);
  }
  Add("s3", Tagged(1, 3));
  ASSERT_OK_AND_ASSIGN(auto view, index_->Read("sessions"));
  EXPECT_THAT(Groups(*view), UnorderedElementsAre(std::set<int>{3}));
}

// Colliding session fingerprints: the overflow map survives renumbering.
uint64_t WeakHash(absl::string_view id) { return id.size(); }

TEST(ColumnarIndexRemovalCollisionTest, OverflowSessionsSurviveRemoval) {
  Config config = testing::TestConfig();
  MemStore store;
  ColumnarIndex::Options options;
  options.session_id_hash = WeakHash;
  options.min_compaction_rows = 2;
  ASSERT_OK_AND_ASSIGN(auto index,
                       ColumnarIndex::Build(config, &store, options));
  const DatasetSpec& spec = config.datasets[0];
  // "aa", "bb", "cc" all hash to 2; different accounts.
  std::map<std::string, StoredSession> r = {
      {"aa", Tagged(1, 1)}, {"bb", Tagged(2, 2)}, {"cc", Tagged(3, 3)}};
  for (auto& [id, record] : r) {
    index->OnCommitted(spec, {CommittedSession::FromRecord(id, record)});
  }
  index->OnDeleted(spec, {Of("aa", r["aa"])});
  // Updating the survivors must find their rows, not add new ones.
  r["bb"] = Tagged(2, 20);
  r["cc"] = Tagged(3, 30);
  index->OnCommitted(spec, {CommittedSession::FromRecord("bb", r["bb"]),
                            CommittedSession::FromRecord("cc", r["cc"])});
  index->OnDeleted(spec, {Of("cc", r["cc"])});
  ASSERT_OK_AND_ASSIGN(auto view, index->Read("sessions"));
  EXPECT_EQ(view->num_sessions(), 1u);
  EXPECT_THAT(Groups(*view), UnorderedElementsAre(std::set<int>{20}));
}

}  // namespace
}  // namespace cohortd
