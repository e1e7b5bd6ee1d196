// Store::Backup and RestoreRocksDbStore: a backup is a consistent copy that
// restores into an empty folder only, refuses to overwrite anything, and
// a damaged backup never becomes a store.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/storage/mem_store.h"
#include "server/storage/rocksdb_store.h"
#include "server/storage/store.h"
#include "tests/common/status_matchers.h"

namespace cohortd {
namespace {

namespace fs = std::filesystem;
using ::cohortd::testing::StatusIs;
using ::testing::HasSubstr;

class StoreBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/store_backup_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    ASSERT_OK_AND_ASSIGN(store_, OpenRocksDbStore(root_ + "/db", Options()));
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(root_);
  }
  static RocksDbStoreOptions Options() {
    RocksDbStoreOptions options;
    options.block_cache_bytes = 8 << 20;
    options.write_buffer_bytes = 4 << 20;
    return options;
  }
  void Put(const std::string& key, const std::string& value) {
    WriteBatch batch;
    batch.Put(key, value);
    ASSERT_OK(store_->Write(batch, /*sync=*/true));
  }

  std::string root_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreBackupTest, RestoresEveryKeyAsOfTheBackup) {
  for (int i = 0; i < 100; ++i) {
    Put(absl::StrCat("s/sessions/", i), absl::StrCat("record ", i));
  }
  Put("b/sessions/d", "spent");
  const std::string backup = root_ + "/backup";
  ASSERT_OK_AND_ASSIGN(uint64_t bytes, store_->Backup(backup));
  EXPECT_GT(bytes, 0u);
  // Written after the backup: must not be in the restored store.
  Put("s/sessions/late", "after");

  const std::string restored_dir = root_ + "/restored";
  ASSERT_OK(RestoreRocksDbStore(backup, restored_dir));
  ASSERT_OK_AND_ASSIGN(auto restored,
                       OpenRocksDbStore(restored_dir, Options()));
  int sessions = 0;
  ASSERT_OK(
      restored->Scan("s/", [&](absl::string_view key, absl::string_view value) {
        EXPECT_NE(key, "s/sessions/late");
        ++sessions;
        return true;
      }));
  EXPECT_EQ(sessions, 100);
  ASSERT_OK_AND_ASSIGN(std::string spent, restored->Get("b/sessions/d"));
  EXPECT_EQ(spent, "spent");
  ASSERT_OK_AND_ASSIGN(std::string record, restored->Get("s/sessions/42"));
  EXPECT_EQ(record, "record 42");
}

TEST_F(StoreBackupTest, BacksUpIntoAnExistingEmptyFolder) {
  const std::string backup = root_ + "/empty";
  fs::create_directories(backup);
  Put("k", "v");
  EXPECT_OK(store_->Backup(backup));
}

TEST_F(StoreBackupTest, RefusesANonEmptyOrRelativeBackupFolder) {
  const std::string backup = root_ + "/full";
  fs::create_directories(backup);
  std::ofstream(backup + "/precious") << "do not touch";
  EXPECT_THAT(
      store_->Backup(backup),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not empty")));
  EXPECT_TRUE(fs::exists(backup + "/precious"));
  std::ofstream(root_ + "/a-file") << "x";
  EXPECT_THAT(store_->Backup(root_ + "/a-file"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(
      store_->Backup("relative/dir"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
}

TEST_F(StoreBackupTest, RestoreRefusesANonEmptyDataFolder) {
  Put("k", "v");
  const std::string backup = root_ + "/backup";
  ASSERT_OK(store_->Backup(backup));
  // The live store's own folder is the obvious mistake.
  EXPECT_THAT(
      RestoreRocksDbStore(backup, root_ + "/db"),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not empty")));
  EXPECT_THAT(RestoreRocksDbStore(root_ + "/no-such-backup", root_ + "/x"),
              StatusIs(absl::StatusCode::kNotFound));
  const std::string empty = root_ + "/empty-backup";
  fs::create_directories(empty);
  EXPECT_THAT(RestoreRocksDbStore(empty, root_ + "/y"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(StoreBackupTest, DamagedBackupIsNotRestored) {
  for (int i = 0; i < 50; ++i) Put(absl::StrCat("k", i), std::string(100, 'v'));
  const std::string backup = root_ + "/backup";
  ASSERT_OK(store_->Backup(backup));
  // Flip one byte in the middle of every backed-up table file.
  int damaged = 0;
  for (const auto& entry : fs::recursive_directory_iterator(backup)) {
    if (entry.path().extension() != ".sst") continue;
    std::fstream f(entry.path(),
                   std::ios::in | std::ios::out | std::ios::binary);
    const auto size = fs::file_size(entry.path());
    f.seekg(size / 2);
    char c = 0;
    f.read(&c, 1);
    c ^= 0x01;
    f.seekp(size / 2);
    f.write(&c, 1);
    ++damaged;
  }
  ASSERT_GT(damaged, 0);
  const std::string restored = root_ + "/restored";
  EXPECT_THAT(RestoreRocksDbStore(backup, restored),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_FALSE(fs::exists(restored + "/CURRENT"));
}

TEST(StoreBackupDefaultTest, MemStoreHasNoBackups) {
  MemStore store;
  EXPECT_THAT(store.Backup("/tmp/x"),
              StatusIs(absl::StatusCode::kUnimplemented));
}

}  // namespace
}  // namespace cohortd
