// `cohortd --salvage`, the store's side (docs/storage.md "After
// DATA_LOSS"): brings up a damaged store by dropping what cannot be read,
// as an operator's explicit choice, and says what was dropped. Never
// automatic. Like rocksdb_store.cc, this file talks to RocksDB directly.
//
// The original data directory is never changed: the salvaged store is
// built beside it (`<dir>.salvage-tmp`), then the original is moved whole
// into the keep directory and the salvaged one takes its place.
//   - WAL damage: the WALs are read record by record (RocksDB's log
//     format: 32 KiB blocks, CRC32C per fragment) to find the damaged
//     record, its offset, and the write batches after it; a copy of the
//     store is then recovered with kPointInTimeRecovery, which keeps every
//     batch before the damage.
//   - SST damage: every readable key is copied into a fresh store through
//     one merged iterator; where it meets a damaged block it reads the
//     damaged file's range backwards to find where readable keys resume,
//     so only the keys between are lost; a session with any key there is
//     dropped whole (its header counts its contributions).
//   - Damage that touches the budget ledger, the release cache or the
//     audit log ("b/", "r/", "a/") is refused: dropping budget records
//     would refund budget.
#ifndef COHORTD_SERVER_STORAGE_SALVAGE_H_
#define COHORTD_SERVER_STORAGE_SALVAGE_H_

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cohortd {

// What a salvage dropped, per dataset name.
struct SalvageLoss {
  int64_t sessions_lost = 0;  // no longer in the store at all
  // Sessions that are still there but lost later contributions (WAL
  // damage: a session pushed to again after the damage).
  int64_t sessions_rolled_back = 0;
  // True when sessions_lost is a lower bound: keys in an unreadable block
  // could not be attributed to sessions (at most `unattributed_entries`
  // more sessions).
  bool lower_bound = false;
  int64_t unattributed_entries = 0;
  // True when the lost writes are not on disk any more (a deleted or cut
  // WAL): no count of sessions is possible.
  bool uncountable = false;
};

struct SalvageOutcome {
  std::string kept_dir;  // where the original data directory now is
  std::map<std::string, SalvageLoss> datasets;
};

// Salvages the damaged store in `dir`, whose damage `damage` describes
// (the DataLoss message of VerifyRocksDbStore / an open, naming the file).
// Moves the original directory into `keep_dir` (absent or empty; same
// file system as `dir`), and prints to `out` what it finds and drops.
// Holds the store's lock while it works.
// Errors: Unavailable when a cohortd holds the store or a file operation
// fails (the original is then still in `dir`); FailedPrecondition when it
// refuses: the damage touches ledger, release or audit keys (the message
// names them), or is of a kind it cannot salvage (a MANIFEST, an SST
// whose index cannot be read); nothing is changed then.
absl::StatusOr<SalvageOutcome> SalvageRocksDbStore(const std::string& dir,
                                                   const std::string& keep_dir,
                                                   absl::string_view damage,
                                                   std::FILE* out);

}  // namespace cohortd

#endif  // COHORTD_SERVER_STORAGE_SALVAGE_H_
