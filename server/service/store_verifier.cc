#include "server/service/store_verifier.h"

#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/common/status_macros.h"
#include "server/index/columnar_index.h"
#include "server/index/sealed_index.h"
#include "server/storage/rocksdb_store.h"

namespace cohortd {

absl::Status VerifyStoreOffline(const Config& config, std::FILE* out) {
  constexpr double kMiB = 1024.0 * 1024.0;
  absl::FPrintF(out, "verifying store %s (read-only)\n", config.data_dir);
  ASSIGN_OR_RETURN(StoreVerification verified,
                   VerifyRocksDbStore(config.data_dir));
  absl::FPrintF(out, "  WAL: %d file(s), %.2f MiB, every record replayed%s%s\n",
                verified.wal_files.size(), verified.wal_bytes / kMiB,
                verified.wal_files.empty() ? "" : ": ",
                absl::StrJoin(verified.wal_files, " "));
  absl::FPrintF(out,
                "  SST: %d file(s), %.2f MiB, every block checksum "
                "verified%s%s\n",
                verified.sst_files.size(), verified.sst_bytes / kMiB,
                verified.sst_files.empty() ? "" : ": ",
                absl::StrJoin(verified.sst_files, " "));
  absl::FPrintF(out, "  keys: %d read (%.2f MiB), checksums verified\n",
                verified.keys, verified.key_value_bytes / kMiB);
  ASSIGN_OR_RETURN(std::unique_ptr<ColumnarIndex> index,
                   ColumnarIndex::Build(config, verified.store.get(),
                                        ColumnarIndex::Options()));
  for (const DatasetSpec& dataset : config.datasets) {
    ASSIGN_OR_RETURN(std::unique_ptr<DatasetView> view,
                     index->Read(dataset.name));
    absl::FPrintF(out, "  dataset %s: %d session record(s) parse\n",
                  dataset.name, view->num_sessions());
    ASSIGN_OR_RETURN(absl::optional<SealedIndexInfo> sealed,
                     VerifySealedIndex(verified.store.get(), dataset));
    if (sealed.has_value()) {
      absl::FPrintF(out,
                    "  dataset %s: sealed index of snapshot %s (%d sessions, "
                    "%.2f MiB) intact, SHA-256 verified\n",
                    dataset.name, sealed->snapshot_id, sealed->sessions,
                    sealed->image_bytes / kMiB);
    } else {
      absl::FPrintF(out,
                    "  dataset %s: no sealed index for this config (the "
                    "next start builds one)\n",
                    dataset.name);
    }
  }
  absl::FPrintF(out, "store %s is intact\n", config.data_dir);
  return absl::OkStatus();
}

}  // namespace cohortd
