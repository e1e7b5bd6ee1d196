// The one-shot backfill of an existing store into ClickHouse (README
// "Scaling out"): a data dir that ran on the embedded engine holds every
// session in cohortd's store, and ClickHouse none of them. Queries on
// ClickHouse would silently leave those sessions out, so at the first
// start with storage.engine clickhouse every stored session is shipped
// (its merged view, as the columnar index would load it) before cohortd
// serves anything.
//
// A marker file in the data dir (data_dir/clickhouse-backfill) says
// "done" with the ClickHouse URL and table once every session is
// confirmed there; until then (or for another ClickHouse or database)
// each start ships everything again, which is idempotent (the rows of
// a session carry the same values; storage/keys.h sessions are read from
// one consistent scan), so a crash or an unreachable ClickHouse mid-way
// loses nothing. A store that ran on ClickHouse from the start is shipped
// once more at the first start of a cohortd with this backfill: harmless,
// and the only way to be sure nothing is missing.
#ifndef COHORTD_SERVER_BACKEND_CLICKHOUSE_BACKFILL_H_
#define COHORTD_SERVER_BACKEND_CLICKHOUSE_BACKFILL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/backend/clickhouse_backend.h"
#include "server/config/config.h"
#include "server/storage/store.h"

namespace cohortd {

// Ships every session of every dataset of `config` in `store` to `backend`
// (ClickHouseBackend::Ship, `batch_sessions` per insert) unless the marker
// file `marker_path` says "done" for this backend's URL and table, then
// writes it (synced). Call before
// the backend observes seals (SnapshotIndex::SetSealObserver) and before
// ingest starts: the shipped rows belong to the start snapshot. Returns
// the number of sessions shipped (0 when the marker says done).
// Errors: Unavailable/Internal from ClickHouse (the next start retries);
// DataLoss for a stored session that does not parse; Internal when the
// marker cannot be written. Not thread-safe.
absl::StatusOr<int64_t> BackfillClickHouse(const Config& config, Store* store,
                                           ClickHouseBackend* backend,
                                           const std::string& marker_path,
                                           int batch_sessions = 20000);

}  // namespace cohortd

#endif  // COHORTD_SERVER_BACKEND_CLICKHOUSE_BACKFILL_H_
