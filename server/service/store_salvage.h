// `cohortd --salvage`: an operator's explicit choice to bring up a damaged
// store, printing what is lost (docs/storage.md "After DATA_LOSS"). Never
// run automatically. Wiring around storage/salvage.h: the store is
// checked first as `--verify` does (an intact store is left alone), the
// salvage itself happens in storage/, then the sealed index images are
// dropped (the next start rebuilds from the records), the loss is written
// to the audit log, and the result must pass `--verify`.
#ifndef COHORTD_SERVER_SERVICE_STORE_SALVAGE_H_
#define COHORTD_SERVER_SERVICE_STORE_SALVAGE_H_

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "server/config/config.h"

namespace cohortd {

// The audit log's principal for a salvage's entries.
inline constexpr char kSalvagePrincipal[] = "cohortd/salvage";

// Salvages the store in config.data_dir. An intact store: prints "nothing
// to salvage", changes nothing, OK. A damaged one: the original folder is
// moved whole into `keep_dir` (empty: "<data_dir>/../salvage-<UTC time>")
// and a salvaged store takes its place; prints the damage, what was
// dropped and where the original is, then the `--verify` of the result.
// Errors: FailedPrecondition when it refuses (damage touching the budget
// ledger, releases or audit log, or of a kind it cannot salvage; nothing
// changed); NotFound (no store) or Unavailable (a cohortd holds it, a file
// operation failed); DataLoss when the salvaged store fails --verify.
absl::Status SalvageStoreOffline(const Config& config,
                                 const std::string& keep_dir, std::FILE* out);

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_STORE_SALVAGE_H_
