// The sealed index, persisted: at every seal the snapshot layer
// (index/snapshot.h) writes the dataset's columnar index as it was sealed,
// with the snapshot's id and seal time, into the store; a restart loads it
// instead of reading every session record (issue 13: restart until the
// first answer, 2.5 s at 400k sessions before).
//
// Where: in the store itself, under keys::kSealedIndexPrefix, so that
//   - it is written atomically with one synced batch (header + chunks), so
//     a crash leaves the previous seal's image or this one, never a mix;
//   - it is part of every backup (Admin.Backup copies the store at one
//     point in time), consistent with the release cache and the ledger of
//     that moment: a restored server serves the same snapshot, hence the
//     same cached answers;
//   - RocksDB's block checksums cover it at rest, and a SHA-256 of the
//     header and of the image is checked on load besides.
// Layout: "x/<dataset>/h" -> header, "x/<dataset>/c/<n>" -> image chunks of
// up to 4 MiB (ColumnarDataset::Serialize). The header holds: magic,
// version, byte order, the dataset's config fingerprint
// (ReleaseConfigFingerprint), snapshot id, seal time, image size, chunk
// count, SHA-256 of the image, and SHA-256 of all that.
//
// Damage is DataLoss and stops the server (docs/storage.md). An image for
// another config (a schema or privacy parameter changed) or another byte
// order is not an error: it is ignored and the index rebuilt from the
// records, which seals a new snapshot, as a start always did.
#ifndef COHORTD_SERVER_INDEX_SEALED_INDEX_H_
#define COHORTD_SERVER_INDEX_SEALED_INDEX_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "server/config/config.h"
#include "server/index/columnar_index.h"
#include "server/storage/store.h"

namespace cohortd {

// What a stored sealed index describes.
struct SealedIndexInfo {
  std::string snapshot_id;
  absl::Time sealed_at;
  uint64_t image_bytes = 0;
  uint32_t sessions = 0;
};

// Writes `dataset` (read under its reader lock) as the sealed index of
// `spec` for snapshot (id, sealed_at), replacing the one stored, in one
// synced write. Returns the image size. Thread-compatible per dataset:
// the caller orders saves of one dataset.
// Errors: as Store::Write (Unavailable on a full disk: the previous image
// stays).
absl::StatusOr<uint64_t> SaveSealedIndex(Store* store, const DatasetSpec& spec,
                                         absl::string_view snapshot_id,
                                         absl::Time sealed_at,
                                         const ColumnarDataset& dataset);

// Loads the sealed index of `spec` into `dataset` (empty, not yet visible
// to readers). Returns nullopt when none is stored or the stored one is for
// another config or byte order (`dataset` untouched; the message saying
// why is logged). Errors: DataLoss when the header or image is damaged
// (checksum, size, chunk missing, image inconsistent), naming the key; the
// store's errors.
absl::StatusOr<absl::optional<SealedIndexInfo>> LoadSealedIndex(
    Store* store, const DatasetSpec& spec, ColumnarDataset* dataset);

// Checks the stored sealed index of `spec` as LoadSealedIndex does, into
// a scratch dataset, for `cohortd --verify`. Same results.
absl::StatusOr<absl::optional<SealedIndexInfo>> VerifySealedIndex(
    Store* store, const DatasetSpec& spec);

// The key of the header of `dataset`'s sealed index (for tests that
// damage it, and for messages).
std::string SealedIndexHeaderKey(absl::string_view dataset);
std::string SealedIndexChunkKey(absl::string_view dataset, uint32_t chunk);

}  // namespace cohortd

#endif  // COHORTD_SERVER_INDEX_SEALED_INDEX_H_
