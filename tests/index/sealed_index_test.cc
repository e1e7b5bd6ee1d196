// The persisted sealed index (server/index/sealed_index.h) and the restart
// semantics of SnapshotIndex::Open (server/index/snapshot.h "Restart").
#include "server/index/sealed_index.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/index/snapshot.h"
#include "server/storage/keys.h"
#include "server/storage/mem_store.h"
#include "tests/common/status_matchers.h"
#include "tests/common/test_config.h"

namespace cohortd {
namespace {

using ::cohortd::internal::SourceContribution;
using ::cohortd::internal::StoredSession;
using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int64_t kJan2026 = 1767225600;  // 2026-01-01T00:00:00Z
constexpr int64_t kMonth = 31 * 86400;

std::string Pseudonym(int account) {
  return absl::StrFormat("%032d", account);  // 32 bytes, like an HMAC
}

// Session `n`: of account n % 7, in one of three months, with a closed
// label, an open-domain topic and two measures (one sometimes absent).
StoredSession Record(int n, int version = 0) {
  StoredSession record;
  record.set_account_pseudonym(Pseudonym(n % 7));
  record.set_session_start_unix_seconds(kJan2026 + (n % 3) * kMonth + n);
  SourceContribution& c = (*record.mutable_sources())["telemetry"];
  c.set_sequence(1 + version);
  static const char* kModes[] = {"build", "fix", "test", "write"};
  (*c.mutable_labels())["work_mode"] = kModes[(n + version) % 4];
  (*c.mutable_labels())["task_topic"] = absl::StrCat("topic-", n % 5 + version);
  (*c.mutable_measures())["lines_added"] = n * 3 + version;
  if (n % 4 != 0) (*c.mutable_measures())["planning_user_share"] = 0.25;
  return record;
}

std::string SessionId(int n) { return absl::StrCat("session-", n); }

// Stores `record` as ingest does (format 2: header + one key per source).
void Put(Store* store, const std::string& session_id,
         const StoredSession& record) {
  WriteBatch batch;
  internal::StoredSessionHeader header;
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

void Erase(Store* store, int n) {
  WriteBatch batch;
  batch.Delete(keys::SessionHeaderKey("sessions", SessionId(n)));
  batch.Delete(keys::ContributionKey("sessions", SessionId(n), "telemetry"));
  ASSERT_OK(store->Write(batch, /*sync=*/true));
}

// Everything a query can observe of a dataset, per account in dense-id
// order: account fingerprint, then per row its fingerprint, every label
// and every measure.
std::string Dump(const DatasetView& view) {
  std::string out;
  view.ForEachAccount([&](const AccountRows& account) {
    absl::StrAppend(&out, "account ", view.AccountFingerprint(account.account),
                    ":\n");
    account.ForEachRow([&](uint32_t row) {
      absl::StrAppend(&out, "  ", view.RowFingerprint(row));
      for (size_t d = 0; d < view.spec().dimensions.size(); ++d) {
        absl::StrAppend(
            &out, " ",
            view.DimensionValue(static_cast<int>(d), view.codes(d)[row]));
      }
      for (size_t m = 0; m < view.spec().measures.size(); ++m) {
        auto v = view.measure(static_cast<int>(m)).Get(row);
        absl::StrAppend(&out, " ", v.has_value() ? absl::StrCat(*v) : "-");
      }
      absl::StrAppend(&out, "\n");
    });
  });
  for (size_t d = 0; d < view.spec().dimensions.size(); ++d) {
    absl::StrAppend(&out, "dict ", d, ": ",
                    view.dictionary(static_cast<int>(d)).cardinality(), "\n");
  }
  return out;
}

std::string Dump(const ColumnarIndex& index) {
  auto view = index.Read("sessions");
  EXPECT_OK(view);
  return view.ok() ? Dump(**view) : "";
}

// A weak session fingerprint (16 values), so ids collide and the overflow
// map is exercised.
uint64_t WeakHash(absl::string_view id) { return SessionFingerprint(id) % 16; }

class SealedIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::TestConfig();
    config_.snapshot_every = absl::Hours(1);
    options_.min_compaction_rows = 8;  // compactions and a tail, both
    options_.session_id_hash = WeakHash;
  }
  const DatasetSpec& spec() const { return config_.datasets[0]; }

  std::unique_ptr<ColumnarIndex> EmptyIndex() {
    auto index = ColumnarIndex::Create({&spec()}, options_);
    EXPECT_OK(index);
    return std::move(index).value();
  }

  static void Commit(ColumnarIndex* index, const DatasetSpec& spec, int n,
                     int version = 0) {
    index->OnCommitted(
        spec, {CommittedSession::FromRecord(SessionId(n), Record(n, version))});
  }

  Config config_;
  ColumnarIndex::Options options_;
  MemStore store_;
};

TEST_F(SealedIndexTest, RoundTripRestoresEverythingAndKeepsWorking) {
  for (int n = 0; n < 40; ++n) Put(&store_, SessionId(n), Record(n));
  ASSERT_OK_AND_ASSIGN(auto index,
                       ColumnarIndex::Build(config_, &store_, options_));
  // A tail after the load's compaction, with an update of a sealed row.
  for (int n = 40; n < 45; ++n) Commit(index.get(), spec(), n);
  Commit(index.get(), spec(), 3, /*version=*/1);
  const absl::Time sealed_at = absl::FromUnixSeconds(kJan2026 + 99);
  ASSERT_OK_AND_ASSIGN(uint64_t bytes,
                       SaveSealedIndex(&store_, spec(), "id-1", sealed_at,
                                       *index->FindDataset("sessions")));
  EXPECT_GT(bytes, 0u);

  auto loaded = EmptyIndex();
  ASSERT_OK_AND_ASSIGN(
      absl::optional<SealedIndexInfo> info,
      LoadSealedIndex(&store_, spec(), loaded->FindDataset("sessions")));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->snapshot_id, "id-1");
  EXPECT_EQ(info->sealed_at, sealed_at);
  // (The weak fingerprint merges a few colliding sessions of one account
  // and month, as documented; both indexes alike.)
  EXPECT_EQ(info->sessions, index->FindDataset("sessions")->NumSessions());
  EXPECT_GT(info->sessions, 40u);
  EXPECT_EQ(info->image_bytes, bytes);
  const std::string before = Dump(*index);
  ASSERT_THAT(before, HasSubstr("topic-4"));
  EXPECT_EQ(Dump(*loaded), before);

  // The rebuilt lookup sets work: updates, inserts (through compactions)
  // and removals give the same result on both.
  for (ColumnarIndex* i : {index.get(), loaded.get()}) {
    for (int n = 0; n < 45; n += 4) Commit(i, spec(), n, /*version=*/2);
    for (int n = 45; n < 70; ++n) Commit(i, spec(), n);
    std::vector<DeletedSession> gone;
    for (int n : {1, 44, 60}) {
      const StoredSession r = Record(n);
      gone.push_back({SessionId(n), r.account_pseudonym(),
                      r.session_start_unix_seconds()});
    }
    i->OnDeleted(spec(), gone);
  }
  EXPECT_EQ(Dump(*loaded), Dump(*index));
  EXPECT_GT(loaded->FindDataset("sessions")->NumSessions(), 60u);
}

TEST_F(SealedIndexTest, NothingStoredOrAnotherConfigIsNotAnImage) {
  auto index = EmptyIndex();
  ASSERT_OK_AND_ASSIGN(
      auto none,
      LoadSealedIndex(&store_, spec(), index->FindDataset("sessions")));
  EXPECT_FALSE(none.has_value());

  for (int n = 0; n < 5; ++n) Commit(index.get(), spec(), n);
  ASSERT_OK(SaveSealedIndex(&store_, spec(), "id", absl::Now(),
                            *index->FindDataset("sessions"))
                .status());
  Config changed = config_;
  changed.datasets[0].privacy.k += 1;  // changes answers: another config
  auto other = ColumnarIndex::Create({&changed.datasets[0]}, options_);
  ASSERT_OK(other);
  ASSERT_OK_AND_ASSIGN(auto ignored,
                       LoadSealedIndex(&store_, changed.datasets[0],
                                       (*other)->FindDataset("sessions")));
  EXPECT_FALSE(ignored.has_value());
}

class SealedIndexDamageTest : public SealedIndexTest {
 protected:
  void SetUp() override {
    SealedIndexTest::SetUp();
    auto index = EmptyIndex();
    for (int n = 0; n < 30; ++n) Commit(index.get(), spec(), n);
    ASSERT_OK(SaveSealedIndex(&store_, spec(), "id", absl::Now(),
                              *index->FindDataset("sessions"))
                  .status());
  }
  // Flips one bit of the value at `key`.
  void Flip(const std::string& key, size_t offset) {
    ASSERT_OK_AND_ASSIGN(std::string value, store_.Get(key));
    ASSERT_LT(offset, value.size());
    value[offset] ^= 0x10;
    WriteBatch batch;
    batch.Put(key, value);
    ASSERT_OK(store_.Write(batch, true));
  }
  absl::Status Load() {
    auto index = EmptyIndex();
    absl::StatusOr<absl::optional<SealedIndexInfo>> loaded =
        LoadSealedIndex(&store_, spec(), index->FindDataset("sessions"));
    auto view = index->Read("sessions");
    // Whatever failed, the dataset is left empty, never half loaded.
    EXPECT_EQ((*view)->num_sessions(), 0u);
    return loaded.status();
  }
};

TEST_F(SealedIndexDamageTest, FlippedImageBitIsDataLoss) {
  Flip(SealedIndexChunkKey("sessions", 0), 100);
  EXPECT_THAT(Load(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("SHA-256")));
}

TEST_F(SealedIndexDamageTest, FlippedHeaderBitIsDataLoss) {
  Flip(SealedIndexHeaderKey("sessions"), 30);
  EXPECT_THAT(Load(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("x/sessions/h")));
}

TEST_F(SealedIndexDamageTest, MissingChunkIsDataLoss) {
  WriteBatch batch;
  batch.Delete(SealedIndexChunkKey("sessions", 0));
  ASSERT_OK(store_.Write(batch, true));
  EXPECT_THAT(Load(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("incomplete")));
}

TEST_F(SealedIndexDamageTest, VerifySealedIndexReportsTheSame) {
  ASSERT_OK_AND_ASSIGN(auto info, VerifySealedIndex(&store_, spec()));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->sessions, 30u);
  Flip(SealedIndexChunkKey("sessions", 0), 7);
  EXPECT_THAT(VerifySealedIndex(&store_, spec()).status(),
              StatusIs(absl::StatusCode::kDataLoss));
}

// --- SnapshotIndex::Open: restart semantics -------------------------------

class RestartTest : public SealedIndexTest {
 protected:
  // A "process": an index and its snapshot layer over the shared store.
  struct Process {
    std::unique_ptr<ColumnarIndex> index;
    std::unique_ptr<SnapshotIndex> snapshots;
  };
  Process Open() {
    Process p;
    p.index = EmptyIndex();
    auto snapshots =
        SnapshotIndex::Open(&config_, p.index.get(), &store_, &clock_);
    EXPECT_OK(snapshots);
    p.snapshots = std::move(snapshots).value();
    return p;
  }
  static uint32_t Visible(const Process& p) {
    auto read = p.snapshots->Read("sessions");
    EXPECT_OK(read);
    return read.ok() ? read->view->num_sessions() : 0;
  }
  static Snapshot Current(const Process& p) {
    auto current = p.snapshots->Current("sessions");
    EXPECT_OK(current);
    return current.ok() ? *current : Snapshot();
  }
  // Ingest's view of a push: stored, then told to the listener.
  void Ingest(const Process& p, int n, int version = 0) {
    Put(&store_, SessionId(n), Record(n, version));
    p.snapshots->OnCommitted(spec(), {CommittedSession::FromRecord(
                                         SessionId(n), Record(n, version))});
  }

  FakeClock clock_{absl::FromUnixSeconds(kJan2026 + 600)};
};

TEST_F(RestartTest, RestartServesTheSealedSnapshotAndBuffersTheRest) {
  for (int n = 0; n < 10; ++n) Put(&store_, SessionId(n), Record(n));
  Snapshot first;
  std::string sealed_dump;
  {
    Process p = Open();  // first start: built from the store, sealed
    EXPECT_FALSE(p.snapshots->Restored("sessions"));
    first = Current(p);
    EXPECT_EQ(Visible(p), 10u);
    sealed_dump = Dump(*p.index);
    // Committed after the seal: buffered, then the process ends.
    for (int n = 10; n < 14; ++n) Ingest(p, n);
    Ingest(p, 2, /*version=*/1);
    EXPECT_EQ(Visible(p), 10u);
  }
  clock_.Advance(absl::Minutes(5));
  Process p = Open();
  EXPECT_TRUE(p.snapshots->Restored("sessions"));
  const Snapshot restored = Current(p);
  EXPECT_EQ(restored.id, first.id);
  EXPECT_EQ(restored.sealed_at, first.sealed_at);
  EXPECT_EQ(Visible(p), 10u);
  EXPECT_EQ(Dump(*p.index), sealed_dump);
  // The open-domain catalog knows what the rebuild will bring once it ran.
  p.snapshots->Start();
  Ingest(p, 20);
  EXPECT_EQ(Visible(p), 10u);  // nothing moves before the seal
  ASSERT_OK_AND_ASSIGN(Snapshot next, p.snapshots->Seal("sessions"));
  EXPECT_NE(next.id, first.id);
  EXPECT_FALSE(p.snapshots->Restored("sessions"));
  EXPECT_EQ(Visible(p), 15u);
  // The seal equals a fresh build of everything stored.
  Config fresh_config = config_;
  ASSERT_OK_AND_ASSIGN(auto fresh,
                       ColumnarIndex::Build(fresh_config, &store_, options_));
  // Rows may sit in another order (commits vs. one load): compare per
  // session through a sorted dump of the lines.
  auto sorted = [](const std::string& dump) {
    std::vector<std::string> lines = absl::StrSplit(dump, '\n');
    std::sort(lines.begin(), lines.end());
    return lines;
  };
  EXPECT_EQ(sorted(Dump(*p.index)), sorted(Dump(*fresh)));
  p.snapshots->Stop();

  // And the next restart serves that seal.
  Process again = Open();
  EXPECT_EQ(Current(again).id, next.id);
  EXPECT_EQ(Visible(again), 15u);
}

// Bounded buffer after a restart (issue 13): the next index to fold into
// is the background rebuild, so a fold before it is done keeps the buffer;
// once it is done the buffer goes into it, and the seal equals a fresh
// build of the store.
TEST_F(RestartTest, FoldAfterARestartGoesIntoTheRebuild) {
  for (int n = 0; n < 10; ++n) Put(&store_, SessionId(n), Record(n));
  {
    Process p = Open();
    for (int n = 10; n < 14; ++n) Ingest(p, n);  // after the seal
  }
  Process p = Open();
  Ingest(p, 20);
  Ingest(p, 3, /*version=*/1);
  ASSERT_OK_AND_ASSIGN(size_t folded, p.snapshots->Fold("sessions"));
  EXPECT_EQ(folded, 0u);  // no rebuild yet: nothing to fold into
  EXPECT_EQ(p.snapshots->PendingSessions("sessions"), 2u);
  p.snapshots->Start();
  // Bounded wait for the rebuild (a hang fails; nothing is timed).
  for (int i = 0; i < 3000 && folded == 0; ++i) {
    ASSERT_OK_AND_ASSIGN(folded, p.snapshots->Fold("sessions"));
    if (folded == 0) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(folded, 2u);
  EXPECT_EQ(p.snapshots->PendingSessions("sessions"), 0u);
  EXPECT_EQ(Visible(p), 10u);
  Ingest(p, 21);
  ASSERT_OK(p.snapshots->Seal("sessions").status());
  EXPECT_EQ(Visible(p), 16u);
  ASSERT_OK_AND_ASSIGN(auto fresh,
                       ColumnarIndex::Build(config_, &store_, options_));
  auto sorted = [](const std::string& dump) {
    std::vector<std::string> lines = absl::StrSplit(dump, '\n');
    std::sort(lines.begin(), lines.end());
    return lines;
  };
  EXPECT_EQ(sorted(Dump(*p.index)), sorted(Dump(*fresh)));
  p.snapshots->Stop();
}

TEST_F(RestartTest, DeletionAfterTheSealStaysVisibleUntilTheNextSeal) {
  for (int n = 0; n < 6; ++n) Put(&store_, SessionId(n), Record(n));
  { Process p = Open(); }
  Erase(&store_, 4);  // e.g. an erasure committed before the restart
  Process p = Open();
  EXPECT_EQ(Visible(p), 6u);
  p.snapshots->Start();
  ASSERT_OK(p.snapshots->Seal("sessions").status());
  EXPECT_EQ(Visible(p), 5u);
  p.snapshots->Stop();
}

TEST_F(RestartTest, BoundaryPassedWhileDownSealsAtOnce) {
  for (int n = 0; n < 6; ++n) Put(&store_, SessionId(n), Record(n));
  Snapshot first;
  {
    Process p = Open();
    first = Current(p);
  }
  Put(&store_, SessionId(6), Record(6));
  clock_.Advance(absl::Hours(2));  // a boundary passed while down
  Process p = Open();
  EXPECT_EQ(Current(p).id, first.id);
  p.snapshots->Start();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (Current(p).id == first.id && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_NE(Current(p).id, first.id);
  EXPECT_EQ(Visible(p), 7u);
  p.snapshots->Stop();
}

TEST_F(RestartTest, SameDayRestartDoesNotSeal) {
  for (int n = 0; n < 6; ++n) Put(&store_, SessionId(n), Record(n));
  Snapshot first;
  {
    Process p = Open();
    first = Current(p);
  }
  Process p = Open();
  p.snapshots->Start();
  // The schedule thread runs; no boundary is due before the next hour.
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Current(p).id, first.id);
  p.snapshots->Stop();
}

TEST_F(RestartTest, DamagedImageStopsTheOpen) {
  for (int n = 0; n < 6; ++n) Put(&store_, SessionId(n), Record(n));
  { Process p = Open(); }
  ASSERT_OK_AND_ASSIGN(std::string chunk,
                       store_.Get(SealedIndexChunkKey("sessions", 0)));
  chunk[chunk.size() / 2] ^= 1;
  WriteBatch batch;
  batch.Put(SealedIndexChunkKey("sessions", 0), chunk);
  ASSERT_OK(store_.Write(batch, true));
  auto index = EmptyIndex();
  EXPECT_THAT(
      SnapshotIndex::Open(&config_, index.get(), &store_, &clock_).status(),
      StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace cohortd
