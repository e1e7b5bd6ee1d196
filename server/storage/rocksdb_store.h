// The production Store: an embedded RocksDB database in the data directory.
// This file and rocksdb_store.cc are the only places cohortd includes
// RocksDB, and the only place RocksDB statuses become absl ones.
//
// Integrity (docs/storage.md): every read verifies block checksums, and a
// corruption met by any read, write or background job makes Health()
// DataLoss for good (the server stops on it); WAL
// recovery stops with DataLoss on any damaged record except an incomplete
// last record (a write that never completed, hence was never synced nor
// acknowledged); corruption anywhere is DataLoss naming the file.
// Disk full: writes fail with Unavailable ("store is out of space ..."),
// Health() says so, and the store resumes by itself once space is back.
#ifndef COHORTD_SERVER_STORAGE_ROCKSDB_STORE_H_
#define COHORTD_SERVER_STORAGE_ROCKSDB_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/storage/store.h"

namespace rocksdb {
class FileSystem;
}  // namespace rocksdb

namespace cohortd {

struct RocksDbStoreOptions {
  // Shared LRU cache for data, index and filter blocks.
  size_t block_cache_bytes = size_t{128} << 20;
  // Memtable size before a flush; larger absorbs ingest bursts with fewer,
  // bigger L0 files.
  size_t write_buffer_bytes = size_t{64} << 20;
  // Flush and compaction threads.
  int max_background_jobs = 2;
  // Verify the checksum of every block of every SST when opening (reads
  // the whole store once; see docs/storage.md for the cost). Without it,
  // each block is still verified whenever it is read, and the start-up
  // index build reads every session record.
  bool verify_checksums_at_open = true;
  // With verify_checksums_at_open: run that pass on a background thread
  // right after the open instead of before it returns (the server's
  // choice: a restart then waits for no full read of the store). Damage it
  // finds makes Health() DataLoss for good, naming the file; the server
  // then stops with DATA_LOSS (exit status 3). Until it is done, every
  // read still verifies the blocks it reads.
  bool verify_checksums_in_background = false;
  // Open without writing anything (for `cohortd --verify`): the WAL is
  // replayed into memory only, no flush, compaction or format-version
  // record. Write() fails with FailedPrecondition.
  bool read_only = false;
  // While the store is stopped by a background error (disk full), how
  // often it tries to resume.
  absl::Duration resume_interval = absl::Seconds(1);
  // Tests only: the file system RocksDB runs on (e.g. the fault-injecting
  // one of fault_file_system.h); null means RocksDB's default.
  std::shared_ptr<rocksdb::FileSystem> file_system;
};

// The file in the store's folder where an open store records, about once a
// second, the highest write sequence number that is synced and the WAL
// being written (docs/storage.md "A missing or cut WAL"). An open that
// recovers a lower sequence fails with DataLoss: a WAL was deleted or cut.
// Whoever deliberately rolls a store back (salvage) removes it first.
inline constexpr char kSyncedSequenceFile[] = "COHORTD-SYNCED";

// Opens (creating if needed, parent folders included) the store in `dir`.
// A new store records keys::kStorageFormatVersion; an existing one must
// carry a version from keys::kOldestMigratableFormatVersion to that one
// (an older one is opened as it is: the caller migrates it, see
// ingest/session_merge.h MigrateSessionStore).
// Errors: FailedPrecondition when the store has another format version
// (the message names both), or has data but no version (not a cohortd
// store); Unavailable when the folder cannot be created or the database is
// locked by another process or unreadable; DataLoss when recovery found
// fewer writes than the store recorded as synced (kSyncedSequenceFile: a
// WAL was deleted or cut short), and on corruption found
// while opening (damaged WAL record, SST block, MANIFEST), the message
// naming the file.
// The returned Store is thread-safe; destroying it flushes the memtables
// (so the next start replays no WAL) and closes the database (no other
// thread may be using it then). Synced writes set WriteOptions::sync, and
// RocksDB group-commits concurrent synced writers into one WAL fsync.
absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(
    const std::string& dir, const RocksDbStoreOptions& options);

// Restores the backup that Store::Backup wrote into `backup_dir` as a new
// store in `data_dir`, which must be absent or an empty folder (a restore
// never overwrites a store), after verifying every backed-up file's
// checksum; then opens the result once to check its format version.
// Errors: InvalidArgument for an empty path; FailedPrecondition when
// `data_dir` is not empty; NotFound when `backup_dir` holds no backup;
// DataLoss when a backed-up file fails its checksum; as OpenRocksDbStore.
absl::Status RestoreRocksDbStore(const std::string& backup_dir,
                                 const std::string& data_dir);
// RocksDB's own lock on a store folder (an fcntl write lock on its LOCK
// file, as DB::Open takes it), held until destroyed: no cohortd opens the
// store meanwhile, and the holder never reads a store a running cohortd
// changes. Used by --verify and --salvage.
class StoreLock {
 public:
  // Errors: NotFound when `dir` holds no store; Unavailable when another
  // process (a running cohortd) holds the lock.
  static absl::StatusOr<std::unique_ptr<StoreLock>> Acquire(
      const std::string& dir);
  ~StoreLock();  // closing the file releases the lock
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;

 private:
  explicit StoreLock(int fd) : fd_(fd) {}
  const int fd_;
};

// What VerifyRocksDbStore checked.
struct StoreVerification {
  std::vector<std::string> sst_files;  // names, verified block by block
  uint64_t sst_bytes = 0;
  std::vector<std::string> wal_files;  // names, replayed record by record
  uint64_t wal_bytes = 0;
  uint64_t keys = 0;  // every live key, read with checksums verified
  uint64_t key_value_bytes = 0;
  // Keeps any other process from opening the store until destroyed
  // (declared first, so released after `store` is closed).
  std::unique_ptr<StoreLock> lock;
  // The store, open read-only, for further checks of the records.
  std::unique_ptr<Store> store;
};

// Checks the store in `dir` offline: takes the store's lock (so no cohortd
// runs on it meanwhile), opens it read-only (replaying every WAL record),
// verifies the checksum of every block of every live SST, and reads every
// key. Does not modify the folder.
// Errors: NotFound when `dir` holds no store; Unavailable when a cohortd
// holds the store; DataLoss naming the damaged file; otherwise as
// OpenRocksDbStore.
absl::StatusOr<StoreVerification> VerifyRocksDbStore(const std::string& dir);

}  // namespace cohortd

#endif  // COHORTD_SERVER_STORAGE_ROCKSDB_STORE_H_
