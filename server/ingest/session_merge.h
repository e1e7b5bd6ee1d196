// The session layout of storage format 2 (storage/keys.h) as seen by its
// readers: SessionMerger folds one session's contributions into its merged
// view ("the later push wins", per label and per measure), and
// MigrateSessionStore rewrites a format-1 store (one merged record per
// session) into format 2 at open.
#ifndef COHORTD_SERVER_INGEST_SESSION_MERGE_H_
#define COHORTD_SERVER_INGEST_SESSION_MERGE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "cohortd/internal/storage.pb.h"
#include "server/ingest/ingestor.h"
#include "server/storage/store.h"

namespace cohortd {

// Folds the contributions of one session, in any order, into the merged
// view: per name, the value of the contribution with the highest sequence
// (ties, which ingest never issues, go to the greater source name, so the
// result never depends on order). Reusable: Reset() keeps its capacity.
// Not thread-safe.
class SessionMerger {
 public:
  void Reset();
  void Add(absl::string_view source,
           const cohortd::internal::SourceContribution& contribution);
  // Appends every merged name to out->labels / out->measures (which it
  // clears first); leaves the other fields of *out alone.
  void Finish(CommittedSession* out) const;

 private:
  struct Pick {
    uint64_t sequence = 0;
    std::string source;
    std::string label;
    double measure = 0;
  };
  static bool Overrides(const Pick& pick, uint64_t sequence,
                        absl::string_view source);
  absl::flat_hash_map<std::string, Pick> labels_;
  absl::flat_hash_map<std::string, Pick> measures_;
};

// Reads the storage format version (decimal ASCII under
// keys::kFormatVersionKey); a store without one (only MemStore: the RocksDB
// store always has one) is at keys::kStorageFormatVersion. Errors: DataLoss
// when unreadable; the store's read errors.
absl::StatusOr<int64_t> ReadStorageFormatVersion(Store* store);

// FailedPrecondition naming both versions unless the store is at
// keys::kStorageFormatVersion; what readers and writers of session keys
// call before touching them.
absl::Status CheckSessionFormatCurrent(Store* store);

// Brings a store at format keys::kOldestMigratableFormatVersion (1) up to
// keys::kStorageFormatVersion (2): every format-1 record
// "s/<dataset>/<session_id>" -> StoredSession becomes a header and one key
// per source (their sequences kept), in atomic batches that each delete the
// old records they replace; the version is bumped last, in a synced write.
// A crash midway leaves a store at version 1 holding both shapes, and the
// next run finishes the job (format-1 keys are told apart by shape: they
// have no '/' after the session id). A no-op at the current version.
// Logs progress. Errors: DataLoss when a format-1 record does not parse
// (naming its key; nothing of it is rewritten); the store's errors.
absl::Status MigrateSessionStore(Store* store);

}  // namespace cohortd

#endif  // COHORTD_SERVER_INGEST_SESSION_MERGE_H_
