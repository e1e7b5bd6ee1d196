// The production Store: an embedded RocksDB database in the data directory.
// This file and rocksdb_store.cc are the only places cohortd includes
// RocksDB, and the only place RocksDB statuses become absl ones.
#ifndef COHORTD_SERVER_STORAGE_ROCKSDB_STORE_H_
#define COHORTD_SERVER_STORAGE_ROCKSDB_STORE_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/storage/store.h"

namespace cohortd {

struct RocksDbStoreOptions {
  // Shared LRU cache for data, index and filter blocks.
  size_t block_cache_bytes = size_t{128} << 20;
  // Memtable size before a flush; larger absorbs ingest bursts with fewer,
  // bigger L0 files.
  size_t write_buffer_bytes = size_t{64} << 20;
  // Flush and compaction threads.
  int max_background_jobs = 2;
};

// Opens (creating if needed, parent folders included) the store in `dir`.
// A new store records keys::kStorageFormatVersion; an existing one must
// carry a version from keys::kOldestMigratableFormatVersion to that one
// (an older one is opened as it is: the caller migrates it, see
// ingest/session_merge.h MigrateSessionStore).
// Errors: FailedPrecondition when the store has another format version
// (the message names both), or has data but no version (not a cohortd
// store); Unavailable when the folder cannot be created or the database is
// locked by another process or unreadable; DataLoss on corruption.
// The returned Store is thread-safe; destroying it closes the database
// (no other thread may be using it then). Synced writes set
// WriteOptions::sync, and RocksDB group-commits concurrent synced writers
// into one WAL fsync.
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

}  // namespace cohortd

#endif  // COHORTD_SERVER_STORAGE_ROCKSDB_STORE_H_
