// ClickHouseBackend: sessions in ClickHouse, the account-level work of a
// query pushed down as SQL, privacy kept in cohortd (issue 10).
//
// Storage. One table `observations` in the configured database, created if
// absent: one row per (dataset, account, session, name) version, where
// name "" is the session's header (its existence; present = 0 deletes
// it) and any other name a label or measure of the merged session as
// cohortd's ingest committed it (present = 0: no source has it any more).
// Accounts appear only as the 128-bit key the columnar index derives from
// the HMAC pseudonym (never a raw id); sessions carry their id and its
// stable fingerprint (columnar_index.h SessionFingerprint), because
// ClickHouse 18.16 cannot compute that hash. ReplacingMergeTree(version),
// partitioned by month (YYYYMM of the session start), ordered by (dataset,
// account, session, name, version): a re-inserted row (a retried batch,
// same version) merges away, so inserts are idempotent, while older
// versions stay for queries of older snapshots (ComputeSealed reads rows
// up to the snapshot's version and takes argMax by version).
// Measures are stored as their IEEE-754 bits, so no decimal round trip
// can change a value.
//
// Queries (Compute). One SQL statement assembles sessions from their rows
// in a single GROUP BY per session (argMaxIf by version per name: the
// latest row of each name, its value kept when that row is present),
// applies the filters, keys each session's cohort, clamps measures and
// converts them to fixed point exactly as the columnar index does (llround
// of the clamped value over the granularity, computed with exact floor
// arithmetic), and gives every session two priorities: SipHash-2-4(bounding
// key, cohort fingerprint, account fingerprint) and SipHash(key, session
// fingerprint, cohort fingerprint) — the bounder of
// privacy/contribution_bounding.h, its rounds written out in SQL since
// 18.16 has no keyed sipHash. Per account it keeps the L0 cohorts with the
// smallest priority (LIMIT L0 BY account) and in each the Linf sessions
// with the smallest (arraySort, arraySlice); each kept (account, cohort)
// pair is reduced to its statistics with array functions, and the cohorts
// sum their pairs. Only per-cohort statistics travel back. A first, cheap
// statement lists the candidate cohorts' values (the stored labels and
// months of the group dimensions: two columns, no assembly) so cohortd can
// compute their fingerprints (FNV-1a, as the executor does), which the
// main statement maps in with transform().
// Measure filters apply to the stored fixed-point value before bounding;
// GEOMETRIC_MEAN returns, per pair then summed per cohort, a histogram of
// clamped values (cohortd sums their LogFixedPoint); adjusted metrics
// return regression cells keyed by the packed control levels (sumMaps of
// per-pair arrays); gates of adjusted metrics also require every control's
// level. NOISE_AND_SAMPLING adds, for those queries only, a statement that
// unrolls the same kept pairs into sessions (ARRAY JOIN) and returns each
// account's (y, n) totals per cohort. GEOMETRIC_MEAN with
// NOISE_AND_SAMPLING is refused (FailedPrecondition).
//
// Durability: see ClickHouseOptions::outbox_dir and OnCommitted.
//
// Cluster (ClickHouseOptions::cluster): the rows live in a local table
// `observations_local` on every shard, behind a `Distributed` table
// `observations` sharded by cityHash64 of the pseudonymous account, so all
// rows of an account, hence of its sessions, sit on one shard. Inserts go
// through the Distributed table synchronously (insert_distributed_sync=1:
// confirmed once the shard has the rows). The statistics statements read
// the Distributed table with distributed_group_by_no_merge=1: the session
// assembly (GROUP BY account, session) runs complete on each shard and the
// initiator unions the sessions, exact because no session spans shards;
// bounding and the per-cohort sums then run on the initiator. 18.16's
// ON CLUSTER needs ZooKeeper, so Create() makes the schema on the node it
// talks to: point it (or cohortd once) at each shard.
//
// Thread-safety: thread-safe.
#ifndef COHORTD_SERVER_BACKEND_CLICKHOUSE_BACKEND_H_
#define COHORTD_SERVER_BACKEND_CLICKHOUSE_BACKEND_H_

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/backend/clickhouse_client.h"
#include "server/backend/query_backend.h"
#include "server/config/config.h"
#include "server/index/snapshot.h"
#include "server/ingest/ingestor.h"
#include "server/metrics/metrics.h"

namespace cohortd {

struct ClickHouseOptions {
  ClickHouseEndpoint endpoint;
  std::string database = "cohortd";
  // storage.clickhouse.cluster: a <remote_servers> cluster name; "" = one
  // node (a plain table `observations`). See the class comment.
  std::string cluster;
  // How often a queued batch is retried while ClickHouse refuses it.
  absl::Duration retry_every = absl::Seconds(1);
  // Where the outbox keeps each batch until ClickHouse confirms it, one
  // synced file per batch (written to a temp name, fsynced, renamed, the
  // folder fsynced): a batch is durable here before its push is
  // acknowledged, so a kill -9 of cohortd during a ClickHouse outage loses
  // nothing; Create() re-queues what it finds. "" = memory only (tests).
  std::string outbox_dir;
  // storage.clickhouse.max_outbox_bytes: once the unconfirmed batches hold
  // this many bytes, Admit refuses pushes (the outbox may exceed it by the
  // last admitted group). 0 = no bound.
  int64_t max_outbox_bytes = 0;
  // A query's cohort fingerprints are mapped in from a candidate list:
  // the product of the group dimensions' stored values while it has at
  // most this many tuples (two columns read), else the exact tuples of
  // the assembled sessions (one more pass over the sessions).
  size_t max_candidate_cohorts = 10000;
  // How long a push waits for ClickHouse to confirm its batch while
  // shipping works. Past it (ClickHouse hangs: paused, partitioned, very
  // slow) the push is acknowledged from the synced outbox, and later pushes
  // do not wait until the outbox is empty again.
  absl::Duration ack_wait = absl::Seconds(1);
};

class ClickHouseBackend : public QueryBackend,
                          public IngestListener,
                          public SealObserver {
 public:
  // Connects and creates the database and table if absent; starts the
  // retry thread. `metrics` (borrowed, may be null; the operators'
  // registry: these series move with the records) receives
  // cohortd_clickhouse_outbox_batches and _outbox_bytes (gauges),
  // cohortd_clickhouse_errors_total, cohortd_clickhouse_outbox_refusals_total
  // (all four from the start, at zero) and
  // cohortd_clickhouse_pushdown_seconds (per dataset, from the first query).
  // Errors: Unavailable when ClickHouse cannot be reached; Internal when
  // it refuses the schema; InvalidArgument for a bad database name.
  static absl::StatusOr<std::unique_ptr<ClickHouseBackend>> Create(
      const ClickHouseOptions& options, MetricsRegistry* metrics = nullptr);
  ~ClickHouseBackend() override;  // stops the retry thread

  // Inserts `sessions` (as committed by cohortd's ingest) now, in one
  // insert, bypassing the outbox (tests, bulk loads, the backfill at
  // start); before the first seal is observed, what it ships belongs to
  // the start snapshot. Errors: as
  // ClickHouseClient::Insert; a retry rewrites the same rows, so a failed
  // or repeated insert never changes what queries see beyond the intent.
  absl::Status Ship(const DatasetSpec& dataset,
                    const std::vector<CommittedSession>& sessions);
  // Marks the sessions deleted (a header row with present = 0).
  absl::Status ShipDeletions(const DatasetSpec& dataset,
                             const std::vector<DeletedSession>& sessions);

  // IngestListener (committer thread, before the push is acknowledged):
  // renders the commit as one batch with its version and appends it to the
  // outbox (synced); the shipper thread sends the outbox in order, and the
  // push waits for ClickHouse's confirmation only while shipping works
  // (ClickHouseOptions::ack_wait). While ClickHouse refuses or hangs, the
  // batch stays queued and is re-sent every retry_every (identical rows:
  // idempotent); queries answer Unavailable until it is confirmed, so no
  // release is computed without an acknowledged session.
  void OnCommitted(const DatasetSpec& dataset,
                   const std::vector<CommittedSession>& sessions) override;
  void OnDeleted(const DatasetSpec& dataset,
                 const std::vector<DeletedSession>& sessions) override;
  // Asks for every session an unchanged re-push touched, and enqueues its
  // whole merged view as a new batch (plus an absent row for each schema
  // name it lacks), exactly as OnCommitted: a commit that reached cohortd's
  // store but not the outbox (a crash in between, so never acknowledged)
  // reaches ClickHouse when the client retries it unchanged. Idempotent
  // when ClickHouse had it already (same values, a newer version).
  bool WantsResent() const override { return true; }
  // Unavailable ("outbox is full and ClickHouse unreachable") while the
  // unconfirmed batches hold max_outbox_bytes or more, counting the
  // refusal in cohortd_clickhouse_outbox_refusals_total; OK otherwise.
  absl::Status Admit() const override;
  // The same check without counting a refusal: the server turns its
  // health NOT_SERVING while this fails.
  absl::Status CheckOutbox() const;
  // Bytes of the batches waiting for ClickHouse's confirmation.
  int64_t outbox_bytes() const;
  void OnResent(const DatasetSpec& dataset,
                const std::vector<CommittedSession>& sessions) override;

  // QueryBackend. Errors: as QueryBackend; Unavailable when ClickHouse
  // cannot be reached, the outbox is not empty, or insert_failing() (a
  // hung ClickHouse would hold the query for the client's whole timeout).
  absl::StatusOr<BoundedStatistics> Compute(
      const QueryPlan& plan, absl::string_view bounding_key) const override;

  // Reads snapshot `snapshot_id`: only rows of versions up to the highest
  // this backend had enqueued when that snapshot was sealed (SealObserver),
  // so the same request on the same snapshot reads the same rows, and a
  // push after the seal is invisible until the next one. Errors: as
  // Compute; Unavailable while ClickHouse has not confirmed every batch up
  // to that version or insert_failing(), or for a snapshot it was not
  // told about.
  absl::StatusOr<BoundedStatistics> ComputeSealed(
      const QueryPlan& plan, absl::string_view bounding_key,
      absl::string_view snapshot_id) const override;

  // SealObserver (under the snapshot index's buffer lock). OnSealed
  // records the version cut of snapshot `id`; with outbox_dir set it also
  // persists the recent cuts (synced) in the outbox folder, so a snapshot
  // restored after a restart (told again by SetSealObserver) reads the same
  // rows as before it. An id seen before keeps its recorded cut, raised
  // only for the start snapshot to what Ship sent before this first seal
  // (a backfill at start, which belongs to the start snapshot).
  void OnBuffered(const DatasetSpec& dataset) override;
  void OnSealed(const DatasetSpec& dataset, const std::string& id) override;

  // Batches waiting for ClickHouse's confirmation.
  size_t outbox_batches() const;
  // Whether the last insert failed or is overdue (ack_wait), until one
  // succeeds: queries answer Unavailable meanwhile rather than wait for a
  // ClickHouse that does not answer.
  bool insert_failing() const;
  // The fully qualified table ("db.observations").
  const std::string& table() const { return table_; }
  const ClickHouseClient& client() const { return *client_; }

 private:
  ClickHouseBackend(std::unique_ptr<ClickHouseClient> client, std::string table,
                    absl::Duration retry_every, MetricsRegistry* metrics);
  uint64_t NextVersion();
  std::string RenderCommits(const DatasetSpec& dataset,
                            const std::vector<CommittedSession>& sessions,
                            uint64_t version);
  std::string RenderDeletions(const DatasetSpec& dataset,
                              const std::vector<DeletedSession>& sessions,
                              uint64_t version);
  std::string BatchPath(uint64_t version) const;
  // Appends a batch (durably when outbox_dir is set). Errors: Internal
  // when the batch cannot be written and synced.
  absl::Status Enqueue(uint64_t version, std::string rows);
  // Ships queued batches oldest first; stops at the first failure.
  absl::Status Drain();
  // The shipper thread: ships the outbox when a batch arrives (while
  // shipping works) or every retry_every_ (after a failure).
  void RetryLoop();
  bool ShouldShip() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Called by the committer after enqueueing batch `version`: wakes the
  // shipper and, while shipping works, waits up to ack_wait_ for
  // ClickHouse to confirm the batch, so a push to a healthy ClickHouse is
  // in it when acknowledged. A failed or overdue shipment turns the wait
  // off until the outbox is empty again: during an outage, pushes are
  // acknowledged as soon as their batch is synced in the outbox.
  void ShipAndWait(uint64_t version);
  // The committer's path for one rendered batch (commits or deletions of
  // `dataset`): Enqueue, record it as the dataset's last enqueued version,
  // then ShipAndWait. Aborts the process when the outbox write fails, as
  // the change is already durable in cohortd's store.
  void EnqueueAndShip(const DatasetSpec& dataset, uint64_t version,
                      std::string rows);
  void CountError() const;
  // Sets the outbox gauges (cohortd_clickhouse_outbox_batches and
  // cohortd_clickhouse_outbox_bytes) to the outbox's current state.
  void PublishOutbox() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Statistics of rows with version <= max_version (0: every row).
  absl::StatusOr<BoundedStatistics> ComputeUpTo(const QueryPlan& plan,
                                                absl::string_view bounding_key,
                                                uint64_t max_version) const;
  // Reads the seals file (SaveSealsLocked) into sealed_. Errors: DataLoss
  // when it cannot be read or a line does not parse.
  absl::Status LoadSeals(const std::string& path);
  // Rewrites the seals file from sealed_ (when outbox_dir is set); a
  // failure is logged.
  void SaveSealsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(seal_mu_);
  // Execute, counting a failure in cohortd_clickhouse_errors_total.
  absl::StatusOr<std::string> Run(const std::string& sql) const;

  const std::unique_ptr<ClickHouseClient> client_;
  const std::string table_;
  // " SETTINGS ..." of the statistics statements ("" on one node).
  std::string statistics_settings_;
  const absl::Duration retry_every_;
  MetricsRegistry* const metrics_;
  std::atomic<uint64_t> last_version_{0};

  absl::Mutex ship_mu_;  // one drain at a time, so batches stay in order
  mutable absl::Mutex mu_;
  // (version, rows), oldest first; version names the batch's file.
  std::deque<std::pair<uint64_t, std::string>> outbox_ ABSL_GUARDED_BY(mu_);
  std::string outbox_dir_;
  int64_t max_outbox_bytes_ = 0;
  size_t max_candidate_cohorts_ = 10000;
  // The version the start snapshot reads up to: every row written before
  // this process started, and what Ship sent before the first seal.
  uint64_t initial_version_ ABSL_GUARDED_BY(seal_mu_) = 0;
  // Whether this process has observed a seal yet (the seals file's cuts
  // do not count), and the last version Ship sent before it (0: none).
  bool seal_observed_ ABSL_GUARDED_BY(seal_mu_) = false;
  uint64_t shipped_before_seal_ ABSL_GUARDED_BY(seal_mu_) = 0;
  mutable absl::Mutex seal_mu_;
  // Per dataset: the last version enqueued, the last one the snapshot
  // index has buffered, and the recent seals (id, version), oldest first.
  absl::flat_hash_map<std::string, uint64_t> enqueued_
      ABSL_GUARDED_BY(seal_mu_);
  absl::flat_hash_map<std::string, uint64_t> buffered_
      ABSL_GUARDED_BY(seal_mu_);
  absl::flat_hash_map<std::string, std::deque<std::pair<std::string, uint64_t>>>
      sealed_ ABSL_GUARDED_BY(seal_mu_);
  int64_t outbox_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  // False from a failed or overdue shipment until the outbox is empty.
  bool shipping_healthy_ ABSL_GUARDED_BY(mu_) = true;
  // See insert_failing().
  bool insert_failing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration ack_wait_;
  std::thread retry_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_BACKEND_CLICKHOUSE_BACKEND_H_
