// Store: the ordered key-value interface cohortd keeps its durable state
// behind (session records, and later the budget ledger, releases and the
// audit log). The RocksDB implementation lives in rocksdb_store.h; an
// in-memory one in mem_store.h serves tests. Only storage/ includes RocksDB.
//
// Key layout is owned by the module that writes each prefix; see
// storage/keys.h for the registry of prefixes.
#ifndef COHORTD_SERVER_STORAGE_STORE_H_
#define COHORTD_SERVER_STORAGE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cohortd {

// A set of puts and deletes applied atomically by Store::Write.
// Deliberately no range delete: the RocksDB store reads with range
// tombstones ignored (RocksDB 7.8 loses iterator errors at SST boundaries
// while it processes them; see rocksdb_store.cc), which is only correct
// while no range delete is ever written.
class WriteBatch {
 public:
  // One put or delete; its key and value view the batch's storage and
  // stay valid until the batch is changed or destroyed.
  struct Op {
    bool is_delete = false;
    absl::string_view key;
    absl::string_view value;
  };
  void Put(absl::string_view key, absl::string_view value) {
    Add(false, key, value);
  }
  // As Put (kept for callers that hand over a value they built).
  void PutValue(absl::string_view key, std::string&& value) {
    Add(false, key, value);
  }
  void Delete(absl::string_view key) { Add(true, key, absl::string_view()); }
  // The operations in the order added. Built on each call (O(size)); the
  // views are valid as long as the batch is unchanged.
  std::vector<Op> ops() const {
    std::vector<Op> out;
    out.reserve(entries_.size());
    for (const Entry& e : entries_) {
      out.push_back({e.is_delete,
                     absl::string_view(bytes_).substr(e.offset, e.key_size),
                     absl::string_view(bytes_).substr(e.offset + e.key_size,
                                                      e.value_size)});
    }
    return out;
  }
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // Bytes of all keys and values.
  size_t byte_size() const { return bytes_.size(); }
  // Empties the batch, keeping its memory for reuse (a group commit's
  // batch is megabytes: fresh memory for each costs page faults).
  void Clear() {
    entries_.clear();
    bytes_.clear();
  }

 private:
  // Keys and values live back to back in one buffer: two allocations per
  // batch instead of two per operation.
  struct Entry {
    bool is_delete;
    size_t offset;
    uint32_t key_size;
    uint32_t value_size;
  };
  void Add(bool is_delete, absl::string_view key, absl::string_view value) {
    entries_.push_back({is_delete, bytes_.size(),
                        static_cast<uint32_t>(key.size()),
                        static_cast<uint32_t>(value.size())});
    bytes_.append(key.data(), key.size());
    bytes_.append(value.data(), value.size());
  }
  std::vector<Entry> entries_;
  std::string bytes_;
};

struct StoreStats {
  uint64_t live_data_bytes = 0;  // estimate of bytes on disk
  uint64_t wal_syncs = 0;        // synced WAL writes since open
  uint64_t pending_compaction_bytes = 0;
};

// All methods are thread-safe. Errors: Unavailable when the underlying
// storage fails (disk full, I/O error, closed); DataLoss on corruption.
class Store {
 public:
  virtual ~Store() = default;

  // The value at `key`, or NotFound.
  virtual absl::StatusOr<std::string> Get(absl::string_view key) = 0;

  // Applies `batch` atomically. With `sync`, returns only once the batch is
  // on stable storage (WAL fsync'd): it survives kill -9 and power loss.
  // Concurrent synced writers are group-committed by the implementation.
  virtual absl::Status Write(const WriteBatch& batch, bool sync) = 0;

  // Calls `fn(key, value)` for every key starting with `prefix`, in key
  // order, until it returns false. Sees a consistent snapshot. The views
  // are valid only during the call.
  virtual absl::Status Scan(
      absl::string_view prefix,
      const std::function<bool(absl::string_view key, absl::string_view value)>&
          fn) = 0;

  virtual StoreStats Stats() = 0;

  // Writes a consistent copy of the whole store (one point in time: every
  // key written before the call starts, nothing half of a batch) into
  // `directory`, which must be absent or an empty folder; its parent must
  // exist. Returns the bytes the backup holds. Safe while other threads
  // read and write. Only the store's own files are copied: nothing else in
  // the data folder, and never the pseudonymisation key.
  // Errors: InvalidArgument for a relative path; FailedPrecondition when
  // `directory` exists and is not an empty folder; Unavailable on I/O
  // errors (a partial backup may be left behind: delete it);
  // Unimplemented for stores without backups (the default).
  virtual absl::StatusOr<uint64_t> Backup(const std::string& directory) {
    (void)directory;
    return absl::UnimplementedError("this store cannot make backups");
  }
  // Whether the store accepts writes now. OK when it does; Unavailable
  // while it is stopped by a background error it may recover from (disk
  // full, I/O error; the message says which and that writes resume by
  // themselves once the cause is gone); DataLoss once it found corruption
  // (it never recovers from that). Cheap; thread-safe.
  virtual absl::Status Health() { return absl::OkStatus(); }
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_STORAGE_STORE_H_
