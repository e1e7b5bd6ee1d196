#include "server/storage/rocksdb_store.h"

#include <atomic>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/backup_engine.h"
#include "rocksdb/write_batch.h"
#include "server/common/status_macros.h"
#include "server/storage/keys.h"

namespace cohortd {
namespace {

rocksdb::Slice ToSlice(absl::string_view s) {
  return rocksdb::Slice(s.data(), s.size());
}

// The one place RocksDB statuses become absl ones. Storage failures that
// may clear up (I/O errors including a full disk, a lock held by another
// process, shutdown) are Unavailable so that callers answer UNAVAILABLE
// and clients retry; corruption is DataLoss and never retried.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(context, ": ", s.ToString());
  switch (s.code()) {
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(message);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(message);
    case rocksdb::Status::kNotSupported:
      return absl::UnimplementedError(message);
    case rocksdb::Status::kInvalidArgument:
      return absl::InvalidArgumentError(message);
    case rocksdb::Status::kIOError:
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTryAgain:
    case rocksdb::Status::kShutdownInProgress:
    case rocksdb::Status::kIncomplete:
      return absl::UnavailableError(message);
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kExpired:
      return absl::DeadlineExceededError(message);
    case rocksdb::Status::kAborted:
      return absl::AbortedError(message);
    default:
      return absl::InternalError(message);
  }
}

// The smallest string greater than every string starting with `prefix`,
// or "" when there is none (the prefix is empty or all 0xff bytes).
std::string PrefixSuccessor(absl::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    if (static_cast<unsigned char>(s.back()) != 0xff) {
      s.back() = static_cast<char>(static_cast<unsigned char>(s.back()) + 1);
      return s;
    }
    s.pop_back();
  }
  return s;
}

rocksdb::Options MakeOptions(const RocksDbStoreOptions& o) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.max_background_jobs = o.max_background_jobs;
  options.write_buffer_size = o.write_buffer_bytes;
  // Writes reach the WAL as part of Write(); a synced write is durable
  // when it returns.
  options.manual_wal_flush = false;
  // Smooths out writeback instead of stalling on a large fsync later.
  options.bytes_per_sync = 1 << 20;
  options.wal_bytes_per_sync = 1 << 20;
  options.level_compaction_dynamic_level_bytes = true;
  options.keep_log_file_num = 5;
  // Ingest looks up one session header per new session, which usually is
  // not there yet: a whole-key Bloom filter on the memtable answers such
  // misses without a skiplist search (it was a fifth of ingest's CPU).
  options.memtable_prefix_bloom_size_ratio = 0.05;
  options.memtable_whole_key_filtering = true;

  // LZ4 is cheap enough for the hot levels; ZSTD packs the cold bottom
  // level (most of the data) tighter. Both only if this build has them.
  const std::vector<rocksdb::CompressionType> supported =
      rocksdb::GetSupportedCompressions();
  auto has = [&](rocksdb::CompressionType t) {
    return absl::c_linear_search(supported, t);
  };
  if (has(rocksdb::kLZ4Compression)) {
    options.compression = rocksdb::kLZ4Compression;
  } else if (has(rocksdb::kSnappyCompression)) {
    options.compression = rocksdb::kSnappyCompression;
  } else {
    options.compression = rocksdb::kNoCompression;
  }
  if (has(rocksdb::kZSTD)) options.bottommost_compression = rocksdb::kZSTD;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(o.block_cache_bytes);
  // Point lookups (the merge reads one session record per observation)
  // mostly skip files that cannot hold the key.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

// --- Backup and restore (Store::Backup, RestoreRocksDbStore) -------------

// OK when `path` does not exist or is an empty folder.
absl::Status CheckAbsentOrEmpty(const std::string& path,
                                absl::string_view what) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) {
    return absl::OkStatus();
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrFormat("%s %s: %s", what, path, ec.message()));
  }
  if (status.type() != std::filesystem::file_type::directory) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s %s exists and is not a folder; name an absent or empty folder",
        what, path));
  }
  const bool empty = std::filesystem::is_empty(path, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrFormat("%s %s: %s", what, path, ec.message()));
  }
  if (!empty) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s %s is not empty; name an absent or empty folder (nothing is "
        "ever overwritten)",
        what, path));
  }
  return absl::OkStatus();
}

// RocksDB's BackupEngine rather than a Checkpoint: it copies every file
// (a checkpoint hard-links SST files, so on the same file system it
// shares their blocks with the live store and survives nothing the store
// does not), records a checksum per file and verifies them on restore.
// With flush_before_backup the memtables are flushed first and the backup
// is the set of live SST files at one sequence number: a consistent point
// in time, no WAL needed.
absl::StatusOr<uint64_t> BackupDb(rocksdb::DB* db,
                                  const std::string& directory) {
  if (directory.empty() || !std::filesystem::path(directory).is_absolute()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "backup directory \"%s\" must be an absolute path on the server",
        directory));
  }
  RETURN_IF_ERROR(CheckAbsentOrEmpty(directory, "backup directory"));
  rocksdb::BackupEngineOptions options(directory);
  options.sync = true;
  options.share_table_files = true;
  rocksdb::BackupEngine* raw = nullptr;
  RETURN_IF_ERROR(FromRocks(
      rocksdb::BackupEngine::Open(options, rocksdb::Env::Default(), &raw),
      absl::StrCat("cannot create backup in ", directory)));
  std::unique_ptr<rocksdb::BackupEngine> engine(raw);
  rocksdb::CreateBackupOptions create;
  create.flush_before_backup = true;
  RETURN_IF_ERROR(FromRocks(engine->CreateNewBackup(create, db),
                            absl::StrCat("backup to ", directory)));
  rocksdb::BackupInfo info;
  RETURN_IF_ERROR(FromRocks(engine->GetLatestBackupInfo(&info),
                            absl::StrCat("backup in ", directory)));
  return info.size;
}

class RocksDbStore : public Store {
 public:
  explicit RocksDbStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}

  absl::StatusOr<std::string> Get(absl::string_view key) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), ToSlice(key), &value);
    if (s.IsNotFound()) {
      return absl::NotFoundError(absl::StrCat("no key ", key));
    }
    RETURN_IF_ERROR(FromRocks(s, "rocksdb get"));
    return value;
  }

  absl::Status Write(const WriteBatch& batch, bool sync) override {
    rocksdb::WriteBatch wb;
    for (const WriteBatch::Op& op : batch.ops()) {
      rocksdb::Status s = op.is_delete
                              ? wb.Delete(ToSlice(op.key))
                              : wb.Put(ToSlice(op.key), ToSlice(op.value));
      RETURN_IF_ERROR(FromRocks(s, "rocksdb batch"));
    }
    rocksdb::WriteOptions options;
    options.sync = sync;
    RETURN_IF_ERROR(FromRocks(db_->Write(options, &wb), "rocksdb write"));
    if (sync) wal_syncs_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

  absl::Status Scan(absl::string_view prefix,
                    const std::function<bool(absl::string_view,
                                             absl::string_view)>& fn) override {
    // An iterator reads from the implicit snapshot taken when it is
    // created, so the scan is consistent without an explicit snapshot.
    rocksdb::ReadOptions options;
    const std::string upper = PrefixSuccessor(prefix);
    rocksdb::Slice upper_slice(upper);
    if (!upper.empty()) options.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));
    for (it->Seek(ToSlice(prefix)); it->Valid(); it->Next()) {
      rocksdb::Slice key = it->key();
      if (!key.starts_with(ToSlice(prefix))) break;
      rocksdb::Slice value = it->value();
      if (!fn(absl::string_view(key.data(), key.size()),
              absl::string_view(value.data(), value.size()))) {
        break;
      }
    }
    return FromRocks(it->status(), "rocksdb scan");
  }

  StoreStats Stats() override {
    StoreStats stats;
    uint64_t sst = 0;
    uint64_t memtables = 0;
    db_->GetIntProperty(rocksdb::DB::Properties::kLiveSstFilesSize, &sst);
    db_->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables,
                        &memtables);
    stats.live_data_bytes = sst + memtables;
    stats.wal_syncs = wal_syncs_.load(std::memory_order_relaxed);
    db_->GetIntProperty(
        rocksdb::DB::Properties::kEstimatePendingCompactionBytes,
        &stats.pending_compaction_bytes);
    return stats;
  }

  absl::StatusOr<uint64_t> Backup(const std::string& directory) override {
    return BackupDb(db_.get(), directory);
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  // Synced Write() calls; group commit may serve several with one fsync.
  std::atomic<uint64_t> wal_syncs_{0};
};

// Records the format version in a new store, or checks an existing one.
absl::Status CheckFormatVersion(Store& store, const std::string& dir) {
  absl::StatusOr<std::string> stored = store.Get(keys::kFormatVersionKey);
  if (stored.ok()) {
    int64_t version = 0;
    if (!absl::SimpleAtoi(*stored, &version)) {
      return absl::DataLossError(absl::StrFormat(
          "store %s: unreadable format version \"%s\"", dir, *stored));
    }
    if (version > keys::kStorageFormatVersion) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "store %s has storage format version %d, newer than version %d "
          "that this cohortd reads; run a cohortd release that knows "
          "version %d",
          dir, version, keys::kStorageFormatVersion, version));
    }
    // Versions from kOldestMigratableFormatVersion on are opened as they
    // are: the server migrates them (ingest/session_merge.h) before any
    // session key is read, and the session readers refuse an older one.
    if (version < keys::kOldestMigratableFormatVersion) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "store %s has storage format version %d; this cohortd reads "
          "version %d and migrates versions %d to %d only",
          dir, version, keys::kStorageFormatVersion,
          keys::kOldestMigratableFormatVersion, keys::kStorageFormatVersion));
    }
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(stored.status())) return stored.status();

  bool empty = true;
  RETURN_IF_ERROR(store.Scan("", [&](absl::string_view, absl::string_view) {
    empty = false;
    return false;
  }));
  if (!empty) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "store %s has data but no format version under \"%s\": not a "
        "cohortd store; point the data directory elsewhere",
        dir, keys::kFormatVersionKey));
  }
  WriteBatch batch;
  batch.Put(keys::kFormatVersionKey, absl::StrCat(keys::kStorageFormatVersion));
  return store.Write(batch, /*sync=*/true);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(
    const std::string& dir, const RocksDbStoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrFormat(
        "cannot create data directory %s: %s", dir, ec.message()));
  }
  rocksdb::DB* raw = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(MakeOptions(options), dir, &raw),
                            absl::StrCat("cannot open store ", dir)));
  auto store =
      std::make_unique<RocksDbStore>(std::unique_ptr<rocksdb::DB>(raw));
  RETURN_IF_ERROR(CheckFormatVersion(*store, dir));
  return std::unique_ptr<Store>(std::move(store));
}

absl::Status RestoreRocksDbStore(const std::string& backup_dir,
                                 const std::string& data_dir) {
  if (backup_dir.empty() || data_dir.empty()) {
    return absl::InvalidArgumentError(
        "restore needs a backup folder and a data folder");
  }
  RETURN_IF_ERROR(CheckAbsentOrEmpty(data_dir, "data directory"));
  std::error_code ec;
  if (!std::filesystem::is_directory(backup_dir, ec)) {
    return absl::NotFoundError(
        absl::StrFormat("backup folder %s does not exist", backup_dir));
  }
  rocksdb::BackupEngineOptions options(backup_dir);
  options.sync = true;
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::BackupEngineReadOnly::Open(
                                options, rocksdb::Env::Default(), &raw),
                            absl::StrCat("cannot read backup ", backup_dir)));
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw);
  rocksdb::BackupInfo info;
  rocksdb::Status latest = engine->GetLatestBackupInfo(&info);
  if (latest.IsNotFound()) {
    return absl::NotFoundError(
        absl::StrFormat("%s holds no cohortd backup", backup_dir));
  }
  RETURN_IF_ERROR(FromRocks(latest, absl::StrCat("backup ", backup_dir)));
  // Every file against its recorded checksum before anything is copied, so
  // a damaged backup never becomes a store.
  rocksdb::Status verify =
      engine->VerifyBackup(info.backup_id, /*verify_with_checksum=*/true);
  if (!verify.ok()) {
    return absl::DataLossError(absl::StrFormat(
        "backup %s fails verification: %s", backup_dir, verify.ToString()));
  }
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrFormat(
        "cannot create data directory %s: %s", data_dir, ec.message()));
  }
  RETURN_IF_ERROR(
      FromRocks(engine->RestoreDBFromLatestBackup(data_dir, data_dir),
                absl::StrCat("restore of ", backup_dir, " into ", data_dir)));
  // Opening checks the format version (and everything else an open does).
  return OpenRocksDbStore(data_dir, RocksDbStoreOptions()).status();
}

}  // namespace cohortd
