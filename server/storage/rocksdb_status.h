// RocksDB's statuses and read options as the store and its offline tools
// (salvage) use them.
#ifndef COHORTD_SERVER_STORAGE_ROCKSDB_STATUS_H_
#define COHORTD_SERVER_STORAGE_ROCKSDB_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/options.h"
#include "rocksdb/status.h"

namespace cohortd {

// The one place RocksDB statuses become absl ones. Storage failures that
// may clear up (I/O errors including a full disk, a lock held by another
// process, shutdown) are Unavailable so that callers answer UNAVAILABLE
// and clients retry; corruption is DataLoss and never retried.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context);

// Reads verify block checksums (RocksDB's default, stated here because the
// integrity guarantee rests on it) and ignore range tombstones: cohortd
// never writes one (WriteBatch has no range delete), and RocksDB 7.8's
// MergingIterator, while it processes them, drops a child iterator's error
// at an SST boundary (SkipNextDeleted pops the exhausted LevelIterator
// without looking at its status), so a scan silently ended at the first
// damaged SST of each level instead of failing with Corruption.
rocksdb::ReadOptions MakeReadOptions();

}  // namespace cohortd

#endif  // COHORTD_SERVER_STORAGE_ROCKSDB_STATUS_H_
