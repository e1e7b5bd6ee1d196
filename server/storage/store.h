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
#include "absl/types/span.h"
#include "server/common/wire_encoding.h"

namespace cohortd {

// A set of puts and deletes applied atomically by Store::Write.
// Deliberately no range delete: the RocksDB store reads with range
// tombstones ignored (RocksDB 7.8 loses iterator errors at SST boundaries
// while it processes them; see rocksdb_store.cc), which is only correct
// while no range delete is ever written.
//
// Encoded as it is built in RocksDB's WriteBatch wire format (default
// column family): a 12-byte header (8-byte sequence, left 0 for the
// database to set, then the little-endian 32-bit count of operations),
// then per operation a tag byte (kTypeValue 0x1 or kTypeDeletion 0x0),
// the varint32 key length and the key, and for a put the varint32 value
// length and the value. The RocksDB store hands these bytes over with no
// re-encoding (the ingest committer's batches are megabytes); MemStore and
// tests read them back through ops().
class WriteBatch {
 public:
  // One put or delete; its key and value view the batch's storage and
  // stay valid until the batch is changed or destroyed.
  struct Op {
    bool is_delete = false;
    absl::string_view key;
    absl::string_view value;
  };
  // Tags of RocksDB's ValueType (db/dbformat.h), stable in its WAL format.
  static constexpr char kDeletionTag = 0x0;
  static constexpr char kValueTag = 0x1;
  static constexpr size_t kHeaderSize = 12;

  WriteBatch() { rep_.assign(kHeaderSize, '\0'); }

  void Put(absl::string_view key, absl::string_view value) {
    PutParts(key, value, absl::string_view());
  }
  // Puts the value `value` followed by `suffix` (e.g. a sequence number
  // field), written in place: no temporary string for the whole value.
  void PutParts(absl::string_view key, absl::string_view value,
                absl::string_view suffix) {
    const size_t value_size = value.size() + suffix.size();
    AddHeader(kValueTag, key);
    AppendVarint32(static_cast<uint32_t>(value_size));
    rep_.append(value.data(), value.size());
    rep_.append(suffix.data(), suffix.size());
    payload_bytes_ += value_size;
  }
  // As Put (kept for callers that hand over a value they built).
  void PutValue(absl::string_view key, std::string&& value) { Put(key, value); }
  void Delete(absl::string_view key) { AddHeader(kDeletionTag, key); }
  // Reserves room for about `bytes` more of encoded operations.
  void Reserve(size_t bytes) { rep_.reserve(rep_.size() + bytes); }
  // The operations in the order added, decoded from the encoding on each
  // call (O(size)); the views are valid as long as the batch is unchanged.
  std::vector<Op> ops() const;
  // The batch in RocksDB's WriteBatch wire format (see above).
  absl::string_view encoded() const { return rep_; }
  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }
  // Bytes of all keys and values.
  size_t byte_size() const { return payload_bytes_; }
  // Bytes of the encoding, and of its buffer (kept by Clear).
  size_t encoded_size() const { return rep_.size(); }
  size_t capacity() const { return rep_.capacity(); }
  // Empties the batch, keeping its memory for reuse (a group commit's
  // batch is megabytes: fresh memory for each costs page faults).
  void Clear() {
    rep_.assign(kHeaderSize, '\0');
    count_ = 0;
    payload_bytes_ = 0;
  }

 private:
  // Appends the tag and key of one more operation and counts it in the
  // header.
  void AddHeader(char tag, absl::string_view key) {
    rep_.push_back(tag);
    AppendVarint32(static_cast<uint32_t>(key.size()));
    rep_.append(key.data(), key.size());
    ++count_;
    payload_bytes_ += key.size();
    const uint32_t count = static_cast<uint32_t>(count_);
    for (int b = 0; b < 4; ++b) {
      rep_[8 + b] = static_cast<char>((count >> (8 * b)) & 0xff);
    }
  }
  void AppendVarint32(uint32_t value) { wire::AppendVarint(value, &rep_); }
  std::string rep_;
  size_t count_ = 0;
  size_t payload_bytes_ = 0;
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

  // Reads every key of `keys` and calls `found(i, value)` for each
  // keys[i] that exists (in any order; `value` is valid only during the
  // call); a missing key is not reported. Cheaper per key than Get (one
  // call, no NotFound statuses). By default, Get for each key.
  // Errors: as Get's, other than NotFound; then `found` may have been
  // called for some keys.
  virtual absl::Status MultiGet(
      absl::Span<const absl::string_view> keys,
      const std::function<void(size_t i, absl::string_view value)>& found) {
    for (size_t i = 0; i < keys.size(); ++i) {
      absl::StatusOr<std::string> value = Get(keys[i]);
      if (value.ok()) {
        found(i, *value);
      } else if (!absl::IsNotFound(value.status())) {
        return value.status();
      }
    }
    return absl::OkStatus();
  }

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
