// An in-memory Store for unit tests of the modules above storage/: the same
// contract as the RocksDB store (ordered keys, atomic batches, snapshot
// scans) without a disk, so tests stay fast and hermetic. Nothing survives
// the object.
#ifndef COHORTD_SERVER_STORAGE_MEM_STORE_H_
#define COHORTD_SERVER_STORAGE_MEM_STORE_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/storage/store.h"

namespace cohortd {

// Thread-safe. `sync` is accepted and counted in Stats().wal_syncs (so
// tests can check that callers ask for durability) but means nothing here.
class MemStore : public Store {
 public:
  MemStore() = default;

  absl::StatusOr<std::string> Get(absl::string_view key) override;
  // Under one lock: a consistent view.
  absl::Status MultiGet(
      absl::Span<const absl::string_view> keys,
      const std::function<void(size_t, absl::string_view)>& found) override;
  absl::Status Write(const WriteBatch& batch, bool sync) override;
  // Copies the matching entries under the lock, then calls `fn` without
  // it, so `fn` may use this store (and sees a consistent snapshot).
  absl::Status Scan(
      absl::string_view prefix,
      const std::function<bool(absl::string_view key, absl::string_view value)>&
          fn) override;
  // live_data_bytes: total bytes of keys and values.
  StoreStats Stats() override;

 private:
  absl::Mutex mu_;
  std::map<std::string, std::string, std::less<>> data_ ABSL_GUARDED_BY(mu_);
  uint64_t wal_syncs_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_STORAGE_MEM_STORE_H_
