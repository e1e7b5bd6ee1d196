// `cohortd --verify`: checks a data directory offline, without serving,
// and says what it checked. Wiring only: the store checks itself
// (storage/rocksdb_store.h VerifyRocksDbStore), and the records are parsed
// by the same code that loads them at start-up (ColumnarIndex::Build), so
// the check follows the storage layout wherever it goes.
#ifndef COHORTD_SERVER_SERVICE_STORE_VERIFIER_H_
#define COHORTD_SERVER_SERVICE_STORE_VERIFIER_H_

#include <cstdio>

#include "absl/status/status.h"
#include "server/config/config.h"

namespace cohortd {

// Opens the store in config.data_dir read-only (replaying every WAL
// record), verifies the checksum of every block of every live SST, reads
// every key, parses every session record of config.datasets, and checks
// each dataset's persisted sealed index (index/sealed_index.h). Prints
// what it checked to `out`, one line per step. Modifies nothing.
// Errors: NotFound when there is no store; DataLoss naming the damaged
// file or record; as OpenRocksDbStore otherwise.
absl::Status VerifyStoreOffline(const Config& config, std::FILE* out);

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_STORE_VERIFIER_H_
