#include "server/storage/rocksdb_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/listener.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/backup_engine.h"
#include "rocksdb/write_batch.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/common/thread_priority.h"
#include "server/storage/keys.h"
#include "server/storage/rocksdb_status.h"

namespace cohortd {
namespace {

rocksdb::Slice ToSlice(absl::string_view s) {
  return rocksdb::Slice(s.data(), s.size());
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

// The names of the files in `dir` ending with `suffix`, sorted.
std::vector<std::string> FileNames(const std::string& dir,
                                   absl::string_view suffix,
                                   uint64_t* total_bytes = nullptr) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::EndsWith(name, suffix)) continue;
    names.push_back(name);
    if (total_bytes != nullptr) {
      std::error_code size_ec;
      const uintmax_t size = entry.file_size(size_ec);
      if (!size_ec) *total_bytes += size;
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

// RocksDB names the file in most corruption messages (SST blocks, the
// MANIFEST) but not for a damaged WAL record; name the WALs then, so the
// operator knows which file to look at.
absl::Status NameDamagedFile(absl::Status status, const std::string& dir) {
  if (!absl::IsDataLoss(status)) return status;
  const absl::string_view message = status.message();
  if (absl::StrContains(message, ".sst") ||
      absl::StrContains(message, ".log") ||
      absl::StrContains(message, "MANIFEST") ||
      absl::StrContains(message, "CURRENT")) {
    return status;
  }
  const std::vector<std::string> wals = FileNames(dir, ".log");
  return absl::DataLossError(
      absl::StrCat(message, " (while replaying the write-ahead log",
                   wals.size() == 1 ? " " : "s ", absl::StrJoin(wals, ", "),
                   " in ", dir, ")"));
}

rocksdb::Options MakeOptions(const RocksDbStoreOptions& o) {
  rocksdb::Options options;
  options.create_if_missing = !o.read_only;
  // Stop on any inconsistency RocksDB finds (also in background work)
  // instead of carrying on.
  options.paranoid_checks = true;
  options.force_consistency_checks = true;
  // WAL recovery: a synced (acknowledged) record is complete on disk, so a
  // damaged record anywhere, or a complete record with a bad checksum, is
  // Corruption and the open fails. Only an incomplete record at the very
  // end is skipped: a write that did not complete before a crash, which was
  // never synced and so never acknowledged (kill -9 inside write(2) can
  // leave one). kAbsoluteConsistency would refuse to start after such a
  // crash; kPointInTimeRecovery (the default) silently dropped every record
  // after a damaged one.
  options.wal_recovery_mode =
      rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  // RocksDB retries its own recovery from a retryable I/O error (a full
  // disk among them) at this interval; the store's resume thread covers
  // the errors it does not retry.
  options.bgerror_resume_retry_interval =
      static_cast<uint64_t>(absl::ToInt64Microseconds(o.resume_interval));
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
  // Every level is compressed, L0 included. Storing L0 plain saved ~0.05
  // us of flush CPU per ingested observation (~1%), but the store was 1.8x
  // larger until compaction and a restart read the sealed index image from
  // it 0.08 s slower (first answer at 400k sessions 0.60-0.63 s against
  // 0.42-0.54 s), so it was not kept (docs/storage.md).
  if (has(rocksdb::kZSTD)) options.bottommost_compression = rocksdb::kZSTD;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(o.block_cache_bytes);
  // Point lookups (the merge reads one session record per observation)
  // mostly skip files that cannot hold the key.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  // Index and filter partitioned into ~4 KiB blocks under a small pinned
  // top level. Whole, a compacted SST's filter outgrew one shard of the
  // block cache (the LRU cache is split into 64 shards: 2 MiB each at 128
  // MiB), so it was never kept: every point read re-read and re-checksummed
  // the whole filter. At 2M observations pushed that was 87% of the
  // server's CPU (233 s for the push instead of ~28 s). Partitions fit any
  // shard, and only the ones a read needs are loaded.
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.pin_top_level_index_and_filter = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
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
// --- The synced-sequence record (docs/storage.md "A missing or cut WAL") --

// What the store last recorded as durable: every write up to `sequence`
// was in a synced WAL (or an SST) when it was recorded, and `wal` (of
// `wal_bytes` then) was the WAL being written.
struct SyncedRecord {
  uint64_t sequence = 0;
  std::string wal;
  uint64_t wal_bytes = 0;
  int64_t unix_seconds = 0;
};

std::string SyncedRecordPath(const std::string& dir) {
  return (std::filesystem::path(dir) / kSyncedSequenceFile).string();
}

// fsyncs the file or folder at `path`.
absl::Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrFormat("cannot open %s: %s", path, std::strerror(errno)));
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrFormat("fsync %s: %s", path, std::strerror(err)));
  }
  return absl::OkStatus();
}

// The record is one fixed-size block, text padded with spaces, ending in
// a checksum line, overwritten in place (one pwrite, one fdatasync): no
// temp file comes and goes in the store's folder (a copy of a live
// folder would trip on it), and a torn write fails the checksum.
constexpr size_t kSyncedRecordBytes = 256;

uint64_t Fnv1a(absl::string_view bytes) {
  uint64_t h = 1469598103934665603ull;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

// `sync`: fdatasync the record before returning. Without it the record
// survives a crash of the process (it is in the page cache) but maybe not
// of the machine; then the record on disk is an older one or torn, both
// safe (an older one claims less; a torn one is ignored).
absl::Status WriteSyncedRecord(const std::string& dir,
                               const SyncedRecord& record, bool sync) {
  const std::string path = SyncedRecordPath(dir);
  std::string text = absl::StrFormat(
      "cohortd synced sequence v1\nsequence %d\nwal %s\nwal_bytes %d\n"
      "time %d\n",
      record.sequence, record.wal, record.wal_bytes, record.unix_seconds);
  constexpr size_t kChecksumLine = 4 + 16 + 1;  // "fnv " hex "\n"
  if (text.size() + kChecksumLine > kSyncedRecordBytes) {
    return absl::InternalError("synced-sequence record too long");
  }
  text.resize(kSyncedRecordBytes - kChecksumLine - 1, ' ');
  text += '\n';  // the padding is a line of its own
  absl::StrAppendFormat(&text, "fnv %016x\n", Fnv1a(text));
  const bool created = !std::filesystem::exists(path);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrFormat("cannot write %s: %s", path, std::strerror(errno)));
  }
  const ssize_t n = ::pwrite(fd, text.data(), text.size(), 0);
  const int rc = n != static_cast<ssize_t>(text.size()) ? -1
                 : sync                                 ? ::fdatasync(fd)
                                                        : 0;
  const int err = errno;
  ::close(fd);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrFormat("cannot write %s: %s", path, std::strerror(err)));
  }
  return created ? SyncPath(dir, O_RDONLY | O_DIRECTORY) : absl::OkStatus();
}

// The record in `dir`, nullopt when there is none (a store written before
// the record existed, or restored) or it is torn or damaged (logged: the
// record is a detector, and a damaged detector must not stop a healthy
// store; the store's own files carry their checksums).
absl::StatusOr<std::optional<SyncedRecord>> ReadSyncedRecord(
    const std::string& dir) {
  const std::string path = SyncedRecordPath(dir);
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    if (errno == ENOENT) return std::optional<SyncedRecord>();
    return absl::UnavailableError(
        absl::StrFormat("cannot read %s: %s", path, std::strerror(errno)));
  }
  std::string text(kSyncedRecordBytes + 1, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), f));
  std::fclose(f);
  SyncedRecord record;
  int fields = 0;
  bool checksum_ok = false;
  const size_t checksum_at = text.rfind("fnv ");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits(' ', 1));
    if (kv.first == "sequence" &&
        absl::SimpleAtoi(kv.second, &record.sequence)) {
      ++fields;
    } else if (kv.first == "wal") {
      record.wal = std::string(kv.second);
      ++fields;
    } else if (kv.first == "wal_bytes" &&
               absl::SimpleAtoi(kv.second, &record.wal_bytes)) {
      ++fields;
    } else if (kv.first == "time" &&
               absl::SimpleAtoi(kv.second, &record.unix_seconds)) {
      ++fields;
    } else if (kv.first == "fnv" && checksum_at != std::string::npos) {
      uint64_t stored = 0;
      checksum_ok =
          absl::SimpleHexAtoi(kv.second, &stored) &&
          stored == Fnv1a(absl::string_view(text).substr(0, checksum_at));
    }
  }
  if (text.size() != kSyncedRecordBytes || fields != 4 || !checksum_ok ||
      !absl::StartsWith(text, "cohortd synced sequence v1\n")) {
    LogWarning("store",
               "store %s: the synced-sequence record %s is torn or damaged "
               "(%d bytes); ignored, a missing WAL cannot be detected at "
               "this start",
               dir, path, text.size());
    return std::optional<SyncedRecord>();
  }
  return std::optional<SyncedRecord>(std::move(record));
}

// DataLoss when recovery found less than the record says was synced: a
// WAL was deleted or cut short (RocksDB cannot tell: an absent WAL has
// nothing to replay, and a WAL cut between records ends cleanly).
absl::Status CheckSyncedRecord(const std::string& dir,
                               const SyncedRecord& record, uint64_t recovered) {
  if (recovered >= record.sequence) return absl::OkStatus();
  std::error_code ec;
  const std::filesystem::path wal = std::filesystem::path(dir) / record.wal;
  const uintmax_t size = std::filesystem::file_size(wal, ec);
  const std::string now =
      ec ? std::string("absent")
         : absl::StrFormat("now %d bytes", static_cast<uint64_t>(size));
  return absl::DataLossError(absl::StrFormat(
      "store %s: a write-ahead log is missing or cut short: writes up to "
      "sequence %d were synced (acknowledged) when %s recorded them at %s, "
      "while %s was the WAL being written (%d bytes then, %s), but recovery "
      "found writes up to sequence %d only: the acknowledged writes of %d "
      "sequence number(s) (one per key written) are not in the store. The "
      "files were left as they are; cohortd --salvage accepts the loss",
      dir, record.sequence, kSyncedSequenceFile,
      absl::FormatTime(absl::FromUnixSeconds(record.unix_seconds),
                       absl::UTCTimeZone()),
      record.wal, record.wal_bytes, now, recovered,
      record.sequence - recovered));
}

// Keeps the store's background error, as RocksDB reports it, for Health()
// and the resume thread.
class ErrorListener : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "CohortdErrorListener"; }

  void OnBackgroundError(rocksdb::BackgroundErrorReason,
                         rocksdb::Status* bg_error) override {
    Set(*bg_error);
  }
  void OnErrorRecoveryEnd(
      const rocksdb::BackgroundErrorRecoveryInfo& info) override {
    if (info.new_bg_error.ok()) Clear();
  }

  void Set(const rocksdb::Status& s) {
    absl::Status status =
        FromRocks(s, s.IsCorruption() ? "store is damaged"
                                      : "store stopped by a background error");
    absl::MutexLock lock(&mu_);
    // Corruption is never recovered from and its first report, naming
    // the file, is kept.
    if (error_.ok() ||
        (absl::IsDataLoss(status) && !absl::IsDataLoss(error_))) {
      LogError("store", "%s", status.ToString());
      error_ = std::move(status);
    }
  }
  void Clear() {
    absl::MutexLock lock(&mu_);
    if (!error_.ok() && !absl::IsDataLoss(error_)) {
      LogInfo("store", "store recovered; writes resume");
      error_ = absl::OkStatus();
    }
  }
  absl::Status error() {
    absl::MutexLock lock(&mu_);
    return error_;
  }

 private:
  absl::Mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

// A rocksdb::WriteBatch made from bytes already in its wire format, whose
// buffer can be taken back after the write (for reuse).
class OwnedRepBatch : public rocksdb::WriteBatch {
 public:
  explicit OwnedRepBatch(std::string&& rep)
      : rocksdb::WriteBatch(std::move(rep)) {}
  std::string Release() { return std::move(rep_); }
};

class RocksDbStore : public Store {
 public:
  RocksDbStore(std::unique_ptr<rocksdb::Env> env,
               std::shared_ptr<ErrorListener> listener,
               const RocksDbStoreOptions& options)
      : env_(std::move(env)),
        listener_(std::move(listener)),
        read_only_(options.read_only),
        resume_interval_(options.resume_interval) {}

  // Takes the open database and starts the resume thread.
  void Start(std::unique_ptr<rocksdb::DB> db) {
    db_ = std::move(db);
    if (!read_only_) resume_thread_ = std::thread([this] { ResumeLoop(); });
  }

  ~RocksDbStore() override {
    stop_.Notify();
    if (resume_thread_.joinable()) resume_thread_.join();
    if (verify_thread_.joinable()) verify_thread_.join();
    if (db_ == nullptr) return;
    if (synced_records_ > 0) {
      LogInfo(
          "store",
          "synced-sequence record written %d time(s), %.3f ms each on "
          "average",
          synced_records_,
          absl::ToDoubleMilliseconds(synced_record_time_) / synced_records_);
    }
    if (!read_only_) {
      // A flushed store replays no WAL at the next start.
      rocksdb::FlushOptions flush;
      flush.wait = true;
      const rocksdb::Status s = db_->Flush(flush);
      if (!s.ok()) {
        LogWarning("store",
                   "flush at close failed (the WAL keeps the data): %s",
                   s.ToString());
      }
    }
    const rocksdb::Status s = db_->Close();
    if (!s.ok()) LogWarning("store", "close: %s", s.ToString());
    db_.reset();
  }

  absl::StatusOr<std::string> Get(absl::string_view key) override {
    std::string value;
    rocksdb::Status s = db_->Get(MakeReadOptions(), ToSlice(key), &value);
    if (s.IsNotFound()) {
      return absl::NotFoundError(absl::StrCat("no key ", key));
    }
    if (s.IsCorruption()) listener_->Set(s);
    RETURN_IF_ERROR(FromRocks(s, "rocksdb get"));
    return value;
  }

  absl::Status MultiGet(
      absl::Span<const absl::string_view> keys,
      const std::function<void(size_t, absl::string_view)>& found) override {
    // In chunks, which bounds the pinned values held at once; RocksDB
    // batches each chunk's lookups (one superversion, filters probed
    // together) and sorts the keys itself.
    constexpr size_t kChunk = 1024;
    const size_t n = std::min(keys.size(), kChunk);
    std::vector<rocksdb::Slice> slices(n);
    std::vector<rocksdb::PinnableSlice> values(n);
    std::vector<rocksdb::Status> statuses(n);
    const rocksdb::ReadOptions options = MakeReadOptions();
    for (size_t base = 0; base < keys.size(); base += kChunk) {
      const size_t m = std::min(kChunk, keys.size() - base);
      for (size_t i = 0; i < m; ++i) slices[i] = ToSlice(keys[base + i]);
      db_->MultiGet(options, db_->DefaultColumnFamily(), m, slices.data(),
                    values.data(), statuses.data(), /*sorted_input=*/false);
      for (size_t i = 0; i < m; ++i) {
        const rocksdb::Status& s = statuses[i];
        if (s.ok()) {
          found(base + i,
                absl::string_view(values[i].data(), values[i].size()));
        } else if (!s.IsNotFound()) {
          if (s.IsCorruption()) listener_->Set(s);
          return FromRocks(s, "rocksdb multiget");
        }
        values[i].Reset();
      }
    }
    return absl::OkStatus();
  }

  absl::Status Write(const WriteBatch& batch, bool sync) override {
    if (read_only_) {
      return absl::FailedPreconditionError("store is open read-only");
    }
    // The batch is already in RocksDB's wire format (store.h): its bytes
    // are handed over, not re-encoded (perf: re-encoding a group commit's
    // batch op by op was ~5% of the ingest committer). Each writing thread
    // reuses one buffer for them: a group commit's batch is megabytes, and
    // fresh memory for each costs as many page faults. One memcpy.
    // Beyond this a buffer is not kept: memory held per thread is bounded.
    constexpr size_t kMaxReusedBytes = size_t{32} << 20;
    thread_local std::string reused;
    const absl::string_view encoded = batch.encoded();
    std::string rep;
    if (encoded.size() <= kMaxReusedBytes) rep.swap(reused);
    rep.assign(encoded.data(), encoded.size());
    // Built from the bytes, the batch computes its content flags (HasPut,
    // HasDelete, ...) from them when RocksDB asks.
    OwnedRepBatch wb(std::move(rep));
    rocksdb::WriteOptions options;
    options.sync = sync;
    if (!sync) unsynced_writes_.store(true, std::memory_order_relaxed);
    const rocksdb::Status s = db_->Write(options, &wb);
    if (encoded.size() <= kMaxReusedBytes) reused = wb.Release();
    // A failed WAL write stops the database until it is resumed; make sure
    // Health() and the resume thread know even if no listener call came.
    if (s.IsIOError() || s.IsCorruption()) listener_->Set(s);
    RETURN_IF_ERROR(FromRocks(s, "rocksdb write"));
    if (sync) {
      wal_syncs_.fetch_add(1, std::memory_order_relaxed);
      RecordSyncedAfterWrite();
    }
    return absl::OkStatus();
  }

  absl::Status Scan(absl::string_view prefix,
                    const std::function<bool(absl::string_view,
                                             absl::string_view)>& fn) override {
    // An iterator reads from the implicit snapshot taken when it is
    // created, so the scan is consistent without an explicit snapshot.
    rocksdb::ReadOptions options = MakeReadOptions();
    // Scans are bulk reads (the index rebuild, erasure, the sealed index
    // image): keeping their blocks would fill the block cache with data
    // read once and push out the index and filter blocks point reads need
    // (docs/storage.md "Memory").
    options.fill_cache = false;
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
    if (it->status().IsCorruption()) listener_->Set(it->status());
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

  absl::Status Health() override { return listener_->error(); }

  rocksdb::DB* db() { return db_.get(); }

  // Verifies every SST block on a thread of its own; damage becomes the
  // store's lasting DataLoss (Health()). `dir` names the store in logs.
  void VerifyInBackground(const std::string& dir) {
    verify_thread_ = std::thread([this, dir] {
      // Beside a start: the start's own reads come first.
      RunInBackgroundPriority();
      const absl::Time start = absl::Now();
      rocksdb::ReadOptions read = MakeReadOptions();
      read.fill_cache = false;  // a full pass: nothing in it is hot
      const rocksdb::Status s = db_->VerifyChecksum(read);
      if (s.IsCorruption()) {
        listener_->Set(s);
      } else if (!s.ok()) {
        LogWarning("store", "background checksum pass on %s: %s", dir,
                   s.ToString());
      } else {
        LogInfo("store",
                "verified the checksums of every SST block in %.2f s (in "
                "the background)",
                absl::ToDoubleSeconds(absl::Now() - start));
      }
    });
  }

 private:
  // While the database is stopped by a recoverable background error (disk
  // full, I/O error), asks RocksDB to resume every resume_interval_; Resume
  // fails until the cause is gone (e.g. space was freed), then clears the
  // error and writes go through again, without a restart.
  void ResumeLoop() {
    while (!stop_.WaitForNotificationWithTimeout(resume_interval_)) {
      const absl::Status error = listener_->error();
      if (error.ok()) RecordSynced();
      if (error.ok() || absl::IsDataLoss(error)) continue;
      const rocksdb::Status s = db_->Resume();
      if (s.ok()) listener_->Clear();
    }
  }

  // Records in the store's folder the highest sequence number that is
  // durable (synced) and the WAL being written, when it moved since the
  // last record: one synced write of a WAL-only blob (every cohortd
  // commit is synced already, so its fsync rarely has much to write) and
  // one 256-byte pwrite + fdatasync, at most once per resume_interval_
  // (between them, each synced write records itself without the fsync).
  // The sequence is read before that write, so every write up to it is
  // in a synced WAL: the
  // record never claims an unsynced (unacknowledged) write, and a torn
  // last record after a crash never trips the open-time check.
  void RecordSynced() {
    if (synced_dir_.empty()) return;
    const absl::Time start = absl::Now();
    {
      // Nothing written since the last record that was fsynced. (Synced
      // writes record themselves, RecordSyncedAfterWrite, without an
      // fsync of the record; this makes the latest durable.)
      absl::MutexLock lock(&synced_mu_);
      if (db_->GetLatestSequenceNumber() == synced_made_durable_) return;
    }
    SyncedRecord record;
    std::unique_ptr<rocksdb::LogFile> wal;
    if (!db_->GetCurrentWalFile(&wal).ok() || wal == nullptr) return;
    record.wal = std::filesystem::path(wal->PathName()).filename().string();
    record.wal_bytes = wal->SizeFileBytes();
    record.sequence = db_->GetLatestSequenceNumber();
    // A synced write of a WAL-only blob (no key, no sequence number) goes
    // through the write queue after every write up to record.sequence and
    // syncs every live WAL. Not DB::SyncWAL: after a failed WAL write it
    // trips an assertion in RocksDB 7.8's WritableFileWriter (seen in
    // StoreIntegrityTest.DiskFull...), where a write returns the error.
    rocksdb::WriteBatch marker;
    if (!marker.PutLogData("cohortd synced-sequence").ok()) return;
    rocksdb::WriteOptions synced;
    synced.sync = true;
    if (!db_->Write(synced, &marker).ok()) return;  // Health() says why
    record.unix_seconds = absl::ToUnixSeconds(absl::Now());
    absl::MutexLock lock(&synced_mu_);
    // A synced write may have recorded more meanwhile: never go back.
    if (record.sequence < synced_recorded_) {
      record.sequence = synced_recorded_;
      record.wal = synced_recorded_wal_;
      record.wal_bytes = synced_recorded_wal_bytes_;
    }
    if (!WriteRecordLocked(record, /*sync=*/true)) return;
    synced_made_durable_ = record.sequence;
    ++synced_records_;
    synced_record_time_ += absl::Now() - start;
  }

  // After a synced Write: records the latest sequence number as synced,
  // so that a WAL lost right after an acknowledged write is caught too
  // (RecordSynced alone lags by up to resume_interval_). One 256-byte
  // pwrite, no fsync of its own (WriteSyncedRecord: an older or torn
  // record after a machine crash is safe). Every write up to the latest
  // sequence is synced when no write skipped the sync: RocksDB publishes
  // a sequence only after its write group's WAL write, which a synced
  // write in the group syncs. After an unsynced write (the format
  // migration makes some), only RecordSynced records.
  void RecordSyncedAfterWrite() {
    if (synced_dir_.empty() ||
        unsynced_writes_.load(std::memory_order_relaxed)) {
      return;
    }
    SyncedRecord record;
    record.sequence = db_->GetLatestSequenceNumber();
    absl::MutexLock lock(&synced_mu_);
    if (record.sequence <= synced_recorded_) return;
    std::unique_ptr<rocksdb::LogFile> wal;
    if (!db_->GetCurrentWalFile(&wal).ok() || wal == nullptr) return;
    record.wal = std::filesystem::path(wal->PathName()).filename().string();
    record.wal_bytes = wal->SizeFileBytes();
    record.unix_seconds = absl::ToUnixSeconds(absl::Now());
    WriteRecordLocked(record, /*sync=*/false);
  }

  // Writes `record` (WriteSyncedRecord) and remembers it as the last one
  // written; false (logged) when the write failed.
  bool WriteRecordLocked(const SyncedRecord& record, bool sync)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(synced_mu_) {
    const absl::Status written = WriteSyncedRecord(synced_dir_, record, sync);
    if (!written.ok()) {
      LogWarning("store", "synced-sequence record: %s", written.ToString());
      return false;
    }
    synced_recorded_ = record.sequence;
    synced_recorded_wal_ = record.wal;
    synced_recorded_wal_bytes_ = record.wal_bytes;
    return true;
  }

 public:
  // Starts recording the synced sequence in `dir` (RecordSynced), from
  // the resume thread. Call before Start.
  void RecordSyncedIn(const std::string& dir) { synced_dir_ = dir; }

 private:
  std::string synced_dir_;                    // empty: no record (read-only)
  std::atomic<bool> unsynced_writes_{false};  // since open
  absl::Mutex synced_mu_;
  // The record as last written, and how much of it was fsynced.
  uint64_t synced_recorded_ ABSL_GUARDED_BY(synced_mu_) = 0;
  std::string synced_recorded_wal_ ABSL_GUARDED_BY(synced_mu_);
  uint64_t synced_recorded_wal_bytes_ ABSL_GUARDED_BY(synced_mu_) = 0;
  uint64_t synced_made_durable_ ABSL_GUARDED_BY(synced_mu_) = 0;
  uint64_t synced_records_ = 0;
  absl::Duration synced_record_time_;

  std::unique_ptr<rocksdb::Env> env_;  // outlives db_ (declared first)
  std::shared_ptr<ErrorListener> listener_;
  std::unique_ptr<rocksdb::DB> db_;
  const bool read_only_;
  const absl::Duration resume_interval_;
  absl::Notification stop_;
  std::thread resume_thread_;
  std::thread verify_thread_;
  // Synced Write() calls; group commit may serve several with one fsync.
  std::atomic<uint64_t> wal_syncs_{0};
};

// Records the format version in a new store, or checks an existing one.
absl::Status CheckFormatVersion(Store& store, const std::string& dir,
                                bool read_only) {
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
  if (read_only) return absl::OkStatus();
  WriteBatch batch;
  batch.Put(keys::kFormatVersionKey, absl::StrCat(keys::kStorageFormatVersion));
  return store.Write(batch, /*sync=*/true);
}

// Logs what the store holds and how much free space recovery and
// compaction may need, so an operator can see a full disk coming.
void LogSpace(rocksdb::DB& db, const std::string& dir, uint64_t wal_bytes) {
  uint64_t sst_bytes = 0;
  db.GetIntProperty(rocksdb::DB::Properties::kLiveSstFilesSize, &sst_bytes);
  std::error_code ec;
  const std::filesystem::space_info space = std::filesystem::space(dir, ec);
  constexpr double kMiB = 1024.0 * 1024.0;
  // Replaying the WAL writes its records out as new SSTs; a full
  // compaction of the bottom level may rewrite all live data before the
  // old files are deleted.
  const uint64_t needed = wal_bytes + sst_bytes;
  LogInfo("store",
          "store %s: %.1f MiB in SSTs, %.1f MiB of WAL replayed; recovery "
          "and compaction need up to %.1f MiB free (WAL replay %.1f MiB + "
          "full compaction %.1f MiB); %.1f MiB free",
          dir, sst_bytes / kMiB, wal_bytes / kMiB, needed / kMiB,
          wal_bytes / kMiB, sst_bytes / kMiB,
          ec ? -1.0 : space.available / kMiB);
  if (!ec && space.available < needed) {
    LogWarning("store",
               "store %s: only %.1f MiB free, less than the %.1f MiB "
               "compaction may need; writes may fail with \"out of space\"",
               dir, space.available / kMiB, needed / kMiB);
  }
}

}  // namespace

namespace {

absl::StatusOr<std::unique_ptr<RocksDbStore>> OpenStore(
    const std::string& dir, const RocksDbStoreOptions& options) {
  if (options.read_only) {
    if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT")) {
      return absl::NotFoundError(
          absl::StrFormat("no store in %s (no CURRENT file)", dir));
    }
  } else {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrFormat(
          "cannot create data directory %s: %s", dir, ec.message()));
    }
  }
  rocksdb::Options rocks_options = MakeOptions(options);
  std::unique_ptr<rocksdb::Env> env;
  if (options.file_system != nullptr) {
    env = rocksdb::NewCompositeEnv(options.file_system);
    rocks_options.env = env.get();
  }
  auto listener = std::make_shared<ErrorListener>();
  rocks_options.listeners.push_back(listener);
  uint64_t wal_bytes = 0;
  FileNames(dir, ".log", &wal_bytes);

  // A missing or cut WAL (docs/storage.md): when the WAL the synced record
  // names is absent or shorter than recorded, a read-write open would
  // replay what is left, flush it and delete the WALs, so the check runs
  // on a read-only open first and nothing is changed when it fails. (After
  // a clean stop the WAL is flushed and gone: that read-only open then
  // replays nothing and passes.)
  ASSIGN_OR_RETURN(std::optional<SyncedRecord> synced, ReadSyncedRecord(dir));
  if (synced.has_value() && !options.read_only) {
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(
        std::filesystem::path(dir) / synced->wal, ec);
    if (ec || size < synced->wal_bytes) {
      rocksdb::DB* probe = nullptr;
      const rocksdb::Status opened =
          rocksdb::DB::OpenForReadOnly(rocks_options, dir, &probe);
      RETURN_IF_ERROR(NameDamagedFile(
          FromRocks(opened, absl::StrCat("cannot open store ", dir)), dir));
      const uint64_t recovered = probe->GetLatestSequenceNumber();
      delete probe;
      RETURN_IF_ERROR(CheckSyncedRecord(dir, *synced, recovered));
    }
  }

  auto store =
      std::make_unique<RocksDbStore>(std::move(env), listener, options);
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status opened =
      options.read_only ? rocksdb::DB::OpenForReadOnly(rocks_options, dir, &raw)
                        : rocksdb::DB::Open(rocks_options, dir, &raw);
  RETURN_IF_ERROR(NameDamagedFile(
      FromRocks(opened, absl::StrCat("cannot open store ", dir)), dir));
  if (synced.has_value()) {
    const absl::Status checked =
        CheckSyncedRecord(dir, *synced, raw->GetLatestSequenceNumber());
    if (!checked.ok()) {
      delete raw;  // closes without a flush
      return checked;
    }
  }
  if (!options.read_only) store->RecordSyncedIn(dir);
  store->Start(std::unique_ptr<rocksdb::DB>(raw));
  if (options.verify_checksums_at_open &&
      options.verify_checksums_in_background) {
    store->VerifyInBackground(dir);
  } else if (options.verify_checksums_at_open) {
    const absl::Time start = absl::Now();
    RETURN_IF_ERROR(FromRocks(store->db()->VerifyChecksum(MakeReadOptions()),
                              absl::StrCat("store ", dir, " is damaged")));
    LogInfo("store", "verified the checksums of every SST block in %.2f s",
            absl::ToDoubleSeconds(absl::Now() - start));
  }
  RETURN_IF_ERROR(CheckFormatVersion(*store, dir, options.read_only));
  LogSpace(*store->db(), dir, wal_bytes);
  return store;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(
    const std::string& dir, const RocksDbStoreOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<RocksDbStore> store,
                   OpenStore(dir, options));
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

absl::StatusOr<std::unique_ptr<StoreLock>> StoreLock::Acquire(
    const std::string& dir) {
  const std::string path = dir + "/LOCK";
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrFormat("no store in %s (cannot open %s)", dir, path));
  }
  struct flock lock = {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  if (::fcntl(fd, F_SETLK, &lock) != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrFormat(
        "store %s is in use (a cohortd is running on it?); stop it first",
        dir));
  }
  return std::unique_ptr<StoreLock>(new StoreLock(fd));
}

StoreLock::~StoreLock() { ::close(fd_); }

absl::StatusOr<StoreVerification> VerifyRocksDbStore(const std::string& dir) {
  if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT")) {
    return absl::NotFoundError(
        absl::StrFormat("no store in %s (no CURRENT file)", dir));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<StoreLock> lock, StoreLock::Acquire(dir));
  StoreVerification result;
  result.wal_files = FileNames(dir, ".log", &result.wal_bytes);
  RocksDbStoreOptions options;
  options.read_only = true;
  options.verify_checksums_at_open = false;  // done below, with a count
  // Replays every WAL record (Corruption on a damaged one).
  ASSIGN_OR_RETURN(std::unique_ptr<RocksDbStore> store,
                   OpenStore(dir, options));
  std::vector<rocksdb::LiveFileMetaData> files;
  store->db()->GetLiveFilesMetaData(&files);
  for (const rocksdb::LiveFileMetaData& file : files) {
    result.sst_files.push_back(
        std::filesystem::path(file.name).filename().string());
    result.sst_bytes += file.size;
  }
  std::sort(result.sst_files.begin(), result.sst_files.end());
  RETURN_IF_ERROR(FromRocks(store->db()->VerifyChecksum(MakeReadOptions()),
                            absl::StrCat("store ", dir, " is damaged")));
  RETURN_IF_ERROR(
      store->Scan("", [&](absl::string_view key, absl::string_view value) {
        ++result.keys;
        result.key_value_bytes += key.size() + value.size();
        return true;
      }));
  result.store = std::move(store);
  result.lock = std::move(lock);
  return result;
}

}  // namespace cohortd
