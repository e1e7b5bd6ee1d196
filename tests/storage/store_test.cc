// One contract test suite run against both Store implementations, so the
// in-memory store that other modules' tests use behaves like production.
#include "server/storage/store.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/write_batch.h"
#include "server/storage/keys.h"
#include "server/storage/mem_store.h"
#include "server/storage/rocksdb_store.h"
#include "tests/common/status_matchers.h"

namespace cohortd {
namespace {

using ::cohortd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

enum class Kind { kMem, kRocksDb };

std::string KindName(const ::testing::TestParamInfo<Kind>& info) {
  return info.param == Kind::kMem ? "Mem" : "RocksDb";
}

class StoreTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/store_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl + "/db";  // not yet there: Open must create it
    ASSERT_OK_AND_ASSIGN(store_, Open());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(std::filesystem::path(dir_).parent_path());
  }

  absl::StatusOr<std::unique_ptr<Store>> Open() {
    if (GetParam() == Kind::kMem) return std::unique_ptr<Store>(new MemStore);
    RocksDbStoreOptions options;
    options.block_cache_bytes = 8 << 20;
    options.write_buffer_bytes = 4 << 20;
    return OpenRocksDbStore(dir_, options);
  }

  // Closes and reopens the store (DurableStoreTest only).
  void Reopen() {
    store_.reset();
    ASSERT_OK_AND_ASSIGN(store_, Open());
  }

  absl::Status Put(absl::string_view key, absl::string_view value,
                   bool sync = false) {
    WriteBatch batch;
    batch.Put(key, value);
    return store_->Write(batch, sync);
  }

  std::vector<std::pair<std::string, std::string>> ScanAll(
      absl::string_view prefix) {
    std::vector<std::pair<std::string, std::string>> out;
    EXPECT_OK(
        store_->Scan(prefix, [&](absl::string_view k, absl::string_view v) {
          out.emplace_back(std::string(k), std::string(v));
          return true;
        }));
    return out;
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, GetMissingKeyIsNotFound) {
  EXPECT_THAT(store_->Get("s/nope"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreTest, PutOverwriteDelete) {
  ASSERT_OK(Put("k", "v1"));
  EXPECT_EQ(*store_->Get("k"), "v1");
  ASSERT_OK(Put("k", "v2"));
  EXPECT_EQ(*store_->Get("k"), "v2");
  WriteBatch del;
  del.Delete("k");
  ASSERT_OK(store_->Write(del, /*sync=*/true));
  EXPECT_THAT(store_->Get("k"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreTest, BinaryKeysAndValues) {
  const std::string key("k\0\xff", 3);
  const std::string value("\0\x01\0", 3);
  ASSERT_OK(Put(key, value));
  EXPECT_EQ(*store_->Get(key), value);
}

TEST_P(StoreTest, ScanRespectsPrefixBoundaries) {
  for (const char* key : {"a", "a/", "a/1", "a/2", "a0", "b", "`"}) {
    ASSERT_OK(Put(key, key));
  }
  ASSERT_OK(Put("a/\xff", "ff"));
  EXPECT_THAT(ScanAll("a/"),
              ElementsAre(Pair("a/", "a/"), Pair("a/1", "a/1"),
                          Pair("a/2", "a/2"), Pair("a/\xff", "ff")));
  EXPECT_THAT(ScanAll("a/1"), ElementsAre(Pair("a/1", "a/1")));
  EXPECT_THAT(ScanAll("a/3"), ElementsAre());
  EXPECT_THAT(ScanAll("c"), ElementsAre());
}

TEST_P(StoreTest, ScanPrefixOfAllFfBytesHasNoUpperBound) {
  ASSERT_OK(Put("\xfe", "before"));
  ASSERT_OK(Put("\xff", "1"));
  ASSERT_OK(Put("\xff\xff", "2"));
  ASSERT_OK(Put("\xff\xff\x01", "3"));
  EXPECT_THAT(ScanAll("\xff\xff"),
              ElementsAre(Pair("\xff\xff", "2"), Pair("\xff\xff\x01", "3")));
  EXPECT_THAT(ScanAll("\xff"), ::testing::SizeIs(3));
}

TEST_P(StoreTest, ScanStopsWhenCallbackReturnsFalse) {
  for (int i = 0; i < 5; ++i) ASSERT_OK(Put(absl::StrCat("p/", i), "v"));
  int calls = 0;
  ASSERT_OK(store_->Scan(
      "p/", [&](absl::string_view, absl::string_view) { return ++calls < 2; }));
  EXPECT_EQ(calls, 2);
}

TEST_P(StoreTest, ScanSeesASnapshot) {
  ASSERT_OK(Put("p/1", "old"));
  ASSERT_OK(Put("p/3", "v"));
  std::vector<std::string> seen;
  ASSERT_OK(store_->Scan("p/", [&](absl::string_view k, absl::string_view v) {
    seen.push_back(absl::StrCat(k, "=", v));
    if (k == "p/1") {
      // Writes during the scan are not visible to it.
      EXPECT_OK(Put("p/2", "new"));
      EXPECT_OK(Put("p/3", "changed"));
    }
    return true;
  }));
  EXPECT_THAT(seen, ElementsAre("p/1=old", "p/3=v"));
  EXPECT_EQ(*store_->Get("p/3"), "changed");
}

TEST_P(StoreTest, BatchAppliesInOrder) {
  ASSERT_OK(Put("x", "0"));
  WriteBatch batch;
  batch.Put("a", "1");
  batch.Put("b", "2");
  batch.Delete("a");
  batch.Delete("x");
  batch.Put("x", "3");
  ASSERT_OK(store_->Write(batch, /*sync=*/true));
  EXPECT_THAT(store_->Get("a"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(*store_->Get("b"), "2");
  EXPECT_EQ(*store_->Get("x"), "3");
}

TEST_P(StoreTest, ReusedBatchesWriteOnlyWhatTheyHoldSinceClear) {
  // The committer and RocksDbStore::Write reuse one batch (and one encoding
  // buffer per thread), a small write after a large one included: nothing
  // of an earlier batch may leak into a later one.
  WriteBatch batch;
  std::string big(1 << 20, 'v');
  for (int i = 0; i < 40; ++i) batch.Put(absl::StrCat("big/", i), big);
  ASSERT_OK(store_->Write(batch, /*sync=*/true));
  batch.Clear();
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(batch.byte_size(), 0u);
  batch.Put("small/a", "");
  batch.Put(std::string("small/\0b", 8), std::string("\0\xff", 2));
  batch.Delete("big/3");
  ASSERT_OK(store_->Write(batch, /*sync=*/true));
  EXPECT_EQ(*store_->Get("small/a"), "");
  EXPECT_EQ(*store_->Get(std::string("small/\0b", 8)),
            std::string("\0\xff", 2));
  EXPECT_THAT(store_->Get("big/3"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(store_->Get("big/39")->size(), big.size());
  std::vector<std::string> keys;
  ASSERT_OK(store_->Scan("small/", [&](absl::string_view k, absl::string_view) {
    keys.emplace_back(k);
    return true;
  }));
  EXPECT_EQ(keys.size(), 2u);
}

TEST(WriteBatchTest, OpsViewKeysAndValuesInOrder) {
  WriteBatch batch;
  batch.Put("k1", "v1");
  batch.Delete("gone");
  std::string value = "moved";
  batch.PutValue("k2", std::move(value));
  batch.Put("k3", std::string(300, 'x'));  // the buffer grows: views follow
  const std::vector<WriteBatch::Op> ops = batch.ops();
  ASSERT_EQ(ops.size(), 4u);
  EXPECT_FALSE(ops[0].is_delete);
  EXPECT_EQ(ops[0].key, "k1");
  EXPECT_EQ(ops[0].value, "v1");
  EXPECT_TRUE(ops[1].is_delete);
  EXPECT_EQ(ops[1].key, "gone");
  EXPECT_EQ(ops[1].value, "");
  EXPECT_EQ(ops[2].key, "k2");
  EXPECT_EQ(ops[2].value, "moved");
  EXPECT_EQ(ops[3].value, std::string(300, 'x'));
  EXPECT_EQ(batch.size(), 4u);
  EXPECT_EQ(batch.byte_size(), 2u + 2 + 4 + 2 + 5 + 2 + 300);
}

TEST(WriteBatchTest, EncodingIsRocksDbWireFormat) {
  // RocksDbStore hands the encoding to RocksDB as is: it must be byte for
  // byte what rocksdb::WriteBatch writes for the same operations (long
  // keys and values take multi-byte varint lengths).
  WriteBatch batch;
  rocksdb::WriteBatch expected;
  const std::string long_key(200, 'k');
  const std::string long_value(70000, 'v');
  batch.Put("k1", "v1");
  ASSERT_TRUE(expected.Put("k1", "v1").ok());
  batch.Delete("gone");
  ASSERT_TRUE(expected.Delete("gone").ok());
  batch.PutParts(long_key, long_value, "\x18\x05");
  ASSERT_TRUE(expected.Put(long_key, long_value + "\x18\x05").ok());
  batch.Put("empty", "");
  ASSERT_TRUE(expected.Put("empty", "").ok());
  EXPECT_EQ(batch.encoded(), expected.Data());
  EXPECT_EQ(batch.size(), 4u);
  const std::vector<WriteBatch::Op> ops = batch.ops();
  ASSERT_EQ(ops.size(), 4u);
  EXPECT_EQ(ops[2].key, long_key);
  EXPECT_EQ(ops[2].value, long_value + "\x18\x05");
  EXPECT_EQ(ops[3].value, "");
  // Clear keeps the buffer and starts a fresh, empty encoding.
  const size_t capacity = batch.capacity();
  batch.Clear();
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(batch.encoded(), rocksdb::WriteBatch().Data());
  EXPECT_EQ(batch.capacity(), capacity);
}

TEST_P(StoreTest, MultiGetReportsExactlyTheStoredKeysByPosition) {
  WriteBatch batch;
  // More keys than RocksDbStore's chunk of 1,024, unsorted, one repeated.
  std::vector<std::string> keys;
  for (int i = 0; i < 2500; ++i) {
    const std::string key = absl::StrCat("mg/", (i * 7919) % 2500);
    if (i % 3 != 0) batch.Put(key, absl::StrCat("value of ", key));
    keys.push_back(key);
  }
  keys.push_back(keys[1]);
  ASSERT_OK(store_->Write(batch, /*sync=*/true));
  std::vector<absl::string_view> views(keys.begin(), keys.end());
  std::map<size_t, std::string> found;
  ASSERT_OK(store_->MultiGet(views, [&](size_t i, absl::string_view value) {
    EXPECT_TRUE(found.emplace(i, std::string(value)).second) << i;
  }));
  size_t expected = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    absl::StatusOr<std::string> value = store_->Get(keys[i]);
    if (!value.ok()) {
      EXPECT_EQ(found.count(i), 0u) << keys[i];
      continue;
    }
    ++expected;
    ASSERT_EQ(found.count(i), 1u) << keys[i];
    EXPECT_EQ(found[i], *value);
  }
  EXPECT_EQ(found.size(), expected);
  EXPECT_GT(expected, 1600u);
}

TEST_P(StoreTest, PartsAreStoredAsOneValue) {
  WriteBatch batch;
  batch.PutParts("parts/a", "body", "+suffix");
  batch.PutParts("parts/b", "", "only-suffix");
  ASSERT_OK(store_->Write(batch, /*sync=*/true));
  EXPECT_EQ(*store_->Get("parts/a"), "body+suffix");
  EXPECT_EQ(*store_->Get("parts/b"), "only-suffix");
}

TEST_P(StoreTest, BatchesAreAtomicToConcurrentReaders) {
  // A writer keeps moving two keys together; a reader must never see them
  // differ, which it would if a batch were applied in pieces.
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 500; ++i) {
      WriteBatch batch;
      batch.Put("pair/x", absl::StrCat(i));
      batch.Put("pair/y", absl::StrCat(i));
      EXPECT_OK(store_->Write(batch, /*sync=*/false));
    }
    done = true;
  });
  int torn = 0;
  while (!done) {
    std::map<std::string, std::string> seen;
    EXPECT_OK(
        store_->Scan("pair/", [&](absl::string_view k, absl::string_view v) {
          seen[std::string(k)] = std::string(v);
          return true;
        }));
    if (seen["pair/x"] != seen["pair/y"]) ++torn;
  }
  writer.join();
  EXPECT_EQ(torn, 0);
}

TEST_P(StoreTest, ConcurrentSyncedWritersAllLand) {
  const uint64_t syncs_before = store_->Stats().wal_syncs;
  constexpr int kThreads = 4;
  constexpr int kWrites = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        EXPECT_OK(Put(absl::StrCat("c/", t, "/", i), "v", /*sync=*/true));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ScanAll("c/").size(), kThreads * kWrites);
  const StoreStats stats = store_->Stats();
  EXPECT_EQ(stats.wal_syncs - syncs_before, kThreads * kWrites);
  EXPECT_GT(stats.live_data_bytes, 0u);
}

// Durability, format versions and locking: what only the on-disk store has.
using DurableStoreTest = StoreTest;

TEST_P(DurableStoreTest, SurvivesReopen) {
  ASSERT_OK(Put(keys::SessionKey("sessions", "s/1"), "record", true));
  WriteBatch batch;
  batch.Put("k2", "v2");
  batch.Delete(keys::SessionKey("sessions", "gone"));
  ASSERT_OK(store_->Write(batch, /*sync=*/true));
  Reopen();
  EXPECT_EQ(*store_->Get(keys::SessionKey("sessions", "s/1")), "record");
  EXPECT_EQ(*store_->Get("k2"), "v2");
}

TEST_P(DurableStoreTest, RecordsFormatVersion) {
  EXPECT_EQ(*store_->Get(keys::kFormatVersionKey),
            absl::StrCat(keys::kStorageFormatVersion));
  Reopen();
  EXPECT_EQ(*store_->Get(keys::kFormatVersionKey),
            absl::StrCat(keys::kStorageFormatVersion));
}

TEST_P(DurableStoreTest, RefusesNewerFormatVersion) {
  const std::string newer = absl::StrCat(keys::kStorageFormatVersion + 1);
  ASSERT_OK(Put(keys::kFormatVersionKey, newer, true));
  store_.reset();
  EXPECT_THAT(
      Open(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               ::testing::AllOf(HasSubstr("version " + newer),
                                HasSubstr(absl::StrCat(
                                    "version ", keys::kStorageFormatVersion)),
                                HasSubstr(dir_))));
}

TEST_P(DurableStoreTest, RefusesDataWithoutFormatVersion) {
  WriteBatch batch;
  batch.Delete(keys::kFormatVersionKey);
  batch.Put("s/x/y", "record");
  ASSERT_OK(store_->Write(batch, true));
  store_.reset();
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr("no format version")));
}

TEST_P(DurableStoreTest, SecondOpenOfALockedStoreIsUnavailable) {
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kUnavailable));
}

INSTANTIATE_TEST_SUITE_P(BothStores, StoreTest,
                         ::testing::Values(Kind::kMem, Kind::kRocksDb),
                         KindName);
INSTANTIATE_TEST_SUITE_P(OnDisk, DurableStoreTest,
                         ::testing::Values(Kind::kRocksDb), KindName);

}  // namespace
}  // namespace cohortd
