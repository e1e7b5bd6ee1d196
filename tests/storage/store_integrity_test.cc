// The RocksDB store against damaged files and a full disk: whatever is
// damaged, opening or reading reports DataLoss naming the file, nothing
// acknowledged is silently dropped, and a full disk stops writes with
// Unavailable until space is back, then the store resumes by itself.
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/storage/fault_file_system.h"
#include "server/storage/rocksdb_store.h"
#include "tests/common/status_matchers.h"
#include "tests/storage/corrupt_files.h"

namespace cohortd {
namespace {

using ::cohortd::testing::FilesWithSuffix;
using ::cohortd::testing::IsOk;
using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Key(int i) { return absl::StrFormat("s/d/%08d", i); }
std::string Value(int i) { return absl::StrCat(std::string(80, 'v'), i); }
std::string FileName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

class StoreIntegrityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/store_integrity_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/db";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  static RocksDbStoreOptions SmallOptions() {
    RocksDbStoreOptions options;
    options.block_cache_bytes = 1 << 20;
    options.write_buffer_bytes = 256 << 10;
    options.resume_interval = absl::Milliseconds(50);
    return options;
  }

  // Writes records [from, to) in batches of 100.
  static void Fill(Store& store, int from, int to, bool sync) {
    for (int i = from; i < to; i += 100) {
      WriteBatch batch;
      for (int j = i; j < std::min(to, i + 100); ++j) {
        batch.Put(Key(j), Value(j));
      }
      ASSERT_OK(store.Write(batch, sync));
    }
  }

  // Scans every record, counting them.
  static absl::Status ScanAll(Store& store, int* count) {
    *count = 0;
    return store.Scan("s/", [&](absl::string_view, absl::string_view) {
      ++*count;
      return true;
    });
  }

  // A store of `records` records in SSTs spread over the levels (small
  // memtables, so many flushes and compactions), closed. Returns the SST
  // a third of the way into the key range (older than any file still in
  // L0, so usually in the bottom level).
  std::string MakeStoreInSsts(int records) {
    {
      auto store = OpenRocksDbStore(dir_, SmallOptions());
      EXPECT_OK(store);
      if (!store.ok()) return "";
      Fill(**store, 0, records, /*sync=*/false);
    }
    std::vector<std::string> ssts = FilesWithSuffix(dir_, ".sst");
    EXPECT_GE(ssts.size(), 4u);
    return ssts.empty() ? "" : ssts[ssts.size() / 3];
  }

  // Opens `dir_` without the open-time checksum pass and scans every
  // record: the scan itself must fail. RocksDB 7.8 used to end the scan
  // silently at the damaged SST (every later key of its level missing,
  // status OK) while point reads reported Corruption. The open may fail
  // first if the damaged SST is still in L0 (its index and filter are
  // pinned, so read at open), depending on how far compaction got.
  absl::Status OpenWithoutChecksumPassAndScan() {
    RocksDbStoreOptions options = SmallOptions();
    options.verify_checksums_at_open = false;
    absl::StatusOr<std::unique_ptr<Store>> store =
        OpenRocksDbStore(dir_, options);
    if (!store.ok()) return store.status();
    int count = 0;
    return ScanAll(**store, &count);
  }

  // A copy of the live store in `dir_`: what kill -9 leaves behind (every
  // write(2) RocksDB made is in the files).
  std::string CrashImage() {
    const std::string image = root_ + "/crash-image";
    std::filesystem::remove_all(image);
    std::filesystem::copy(dir_, image);
    std::filesystem::remove(image + "/LOCK");
    return image;
  }

  // Cuts the last record of the newest WAL in `image` in its middle (the
  // last record is one batch of 100 of Fill's records).
  static void CutLastWalRecord(const std::string& image) {
    const std::vector<std::string> wals = FilesWithSuffix(image, ".log");
    ASSERT_FALSE(wals.empty());
    std::filesystem::resize_file(wals.back(),
                                 std::filesystem::file_size(wals.back()) - 100);
  }

  std::string root_;
  std::string dir_;
};

TEST_F(StoreIntegrityTest, SstIndexBlockBitFlipStopsTheOpen) {
  const std::string victim = MakeStoreInSsts(100000);
  ASSERT_OK(cohortd::testing::FlipBitInSstIndexBlock(victim));
  EXPECT_THAT(
      OpenRocksDbStore(dir_, SmallOptions()),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr(FileName(victim))));
}

TEST_F(StoreIntegrityTest, SstIndexBlockBitFlipFailsTheScan) {
  const std::string victim = MakeStoreInSsts(100000);
  ASSERT_OK(cohortd::testing::FlipBitInSstIndexBlock(victim));
  EXPECT_THAT(
      OpenWithoutChecksumPassAndScan(),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr(FileName(victim))));
}

TEST_F(StoreIntegrityTest, SstDataBlockBitFlipFailsTheScan) {
  const std::string victim = MakeStoreInSsts(100000);
  ASSERT_OK(cohortd::testing::FlipBitInSstDataBlock(victim));
  EXPECT_THAT(
      OpenWithoutChecksumPassAndScan(),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr(FileName(victim))));
  // And the open-time pass finds it too.
  EXPECT_THAT(
      OpenRocksDbStore(dir_, SmallOptions()),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr(FileName(victim))));
}

// RocksDB's default WAL recovery stopped at the damaged record and dropped
// every later one, then flushed and deleted the WAL: the loss was silent
// and permanent.
TEST_F(StoreIntegrityTest, WalByteFlipIsDataLossNamingTheWal) {
  RocksDbStoreOptions options = SmallOptions();
  options.write_buffer_bytes = 64 << 20;  // everything stays in the WAL
  ASSERT_OK_AND_ASSIGN(auto store, OpenRocksDbStore(dir_, options));
  Fill(*store, 0, 2000, /*sync=*/true);
  const std::string image = CrashImage();
  store.reset();
  ASSERT_OK_AND_ASSIGN(const std::string wal,
                       cohortd::testing::FlipByteInMiddleOfWal(image));
  const uint64_t wal_size = std::filesystem::file_size(wal);

  EXPECT_THAT(OpenRocksDbStore(image, options),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(FileName(wal))));
  // Refusing to open left the WAL as it was, for an operator to look at.
  ASSERT_TRUE(std::filesystem::exists(wal));
  EXPECT_EQ(std::filesystem::file_size(wal), wal_size);
  EXPECT_THAT(VerifyRocksDbStore(image),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(FileName(wal))));
}

// The one damage recovery tolerates: an incomplete last record, which is
// what a crash inside write(2) leaves. Such a write never completed, so it
// was never synced nor acknowledged; every complete record is recovered.
// (The last batch is written unsynced here, as it would be seen by a
// crash inside its write: it was never acknowledged.)
TEST_F(StoreIntegrityTest, TornLastWalRecordIsDroppedAndTheRestKept) {
  RocksDbStoreOptions options = SmallOptions();
  options.write_buffer_bytes = 64 << 20;
  ASSERT_OK_AND_ASSIGN(auto store, OpenRocksDbStore(dir_, options));
  Fill(*store, 0, 900, /*sync=*/true);
  Fill(*store, 900, 1000, /*sync=*/false);
  const std::string image = CrashImage();
  store.reset();
  ASSERT_NO_FATAL_FAILURE(CutLastWalRecord(image));

  ASSERT_OK_AND_ASSIGN(auto recovered, OpenRocksDbStore(image, options));
  int count = 0;
  ASSERT_OK(ScanAll(*recovered, &count));
  EXPECT_EQ(count, 900);
}

// The same cut through a write that was synced, so acknowledged, is a
// loss, not a crash's leftover. Before, it was dropped as silently as the
// unsynced one above (the synced-sequence record lagged by up to a
// second); each synced write now records itself, so the open refuses.
TEST_F(StoreIntegrityTest, TornSyncedWalRecordIsDataLoss) {
  RocksDbStoreOptions options = SmallOptions();
  options.write_buffer_bytes = 64 << 20;
  ASSERT_OK_AND_ASSIGN(auto store, OpenRocksDbStore(dir_, options));
  Fill(*store, 0, 1000, /*sync=*/true);
  const std::string image = CrashImage();
  store.reset();
  ASSERT_NO_FATAL_FAILURE(CutLastWalRecord(image));

  EXPECT_THAT(
      OpenRocksDbStore(image, options),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("missing or cut short")));
}

TEST_F(StoreIntegrityTest, VerifyChecksEveryFileAndKey) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, OpenRocksDbStore(dir_, SmallOptions()));
    Fill(*store, 0, 20000, /*sync=*/false);
  }
  ASSERT_OK_AND_ASSIGN(StoreVerification verified, VerifyRocksDbStore(dir_));
  EXPECT_EQ(verified.sst_files.size(), FilesWithSuffix(dir_, ".sst").size());
  EXPECT_GT(verified.sst_bytes, 0u);
  EXPECT_EQ(verified.keys, 20000u + 1);  // and the format version
  ASSERT_NE(verified.store, nullptr);
  EXPECT_THAT(verified.store->Get(Key(123)), IsOk());
  WriteBatch batch;
  batch.Put("x", "y");
  EXPECT_THAT(verified.store->Write(batch, true),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  verified.store.reset();

  EXPECT_THAT(VerifyRocksDbStore(root_ + "/nothing-here"),
              StatusIs(absl::StatusCode::kNotFound));
  const std::string victim = FilesWithSuffix(dir_, ".sst").back();
  ASSERT_OK(cohortd::testing::FlipBitInSstDataBlock(victim));
  EXPECT_THAT(VerifyRocksDbStore(dir_), StatusIs(absl::StatusCode::kDataLoss,
                                                 HasSubstr(FileName(victim))));
}

// Before: after a full disk, every write kept failing until a restart.
TEST_F(StoreIntegrityTest, DiskFullRefusesWritesThenResumesWithoutRestart) {
  auto injector = std::make_shared<FaultInjector>();
  RocksDbStoreOptions options = SmallOptions();
  options.file_system = NewFaultInjectingFileSystem(injector);
  ASSERT_OK_AND_ASSIGN(auto store, OpenRocksDbStore(dir_, options));
  Fill(*store, 0, 1000, /*sync=*/true);
  EXPECT_OK(store->Health());

  injector->SetDiskFull(true);
  WriteBatch batch;
  batch.Put(Key(5000), Value(5000));
  EXPECT_THAT(store->Write(batch, /*sync=*/true),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("store is out of space")));
  EXPECT_THAT(store->Health(), StatusIs(absl::StatusCode::kUnavailable,
                                        HasSubstr("out of space")));
  // Still refused while the disk stays full, also after resume attempts.
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_THAT(store->Write(batch, /*sync=*/true), Not(IsOk()));
  EXPECT_THAT(store->Health(), Not(IsOk()));
  EXPECT_GT(injector->refused_writes(), 0u);

  injector->SetDiskFull(false);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!store->Health().ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_OK(store->Health());
  ASSERT_OK(store->Write(batch, /*sync=*/true));
  int count = 0;
  ASSERT_OK(ScanAll(*store, &count));
  EXPECT_EQ(count, 1001);
  // And it all survives a restart.
  store.reset();
  ASSERT_OK_AND_ASSIGN(store, OpenRocksDbStore(dir_, SmallOptions()));
  ASSERT_OK(ScanAll(*store, &count));
  EXPECT_EQ(count, 1001);
}

}  // namespace
}  // namespace cohortd
