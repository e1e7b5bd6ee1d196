// CohortdServer: owns every long-lived part of a running cohortd (store,
// pseudonymiser, ingestor, gRPC services) and wires them together. main.cc
// only parses flags, loads the config and handles signals; integration
// tests can run a whole server in-process through this class.
#ifndef COHORTD_SERVER_SERVICE_SERVER_H_
#define COHORTD_SERVER_SERVICE_SERVER_H_

#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "server/backend/clickhouse_backend.h"
#include "server/config/config.h"
#include "server/crypto/pseudonymizer.h"
#include "server/ingest/eraser.h"
#include "server/ingest/ingestor.h"
#include "server/ingest/retention.h"
#include "server/metrics/metrics.h"
#include "server/index/columnar_index.h"
#include "server/engine/publisher.h"
#include "server/engine/query_engine.h"
#include "server/ledger/release_journal.h"
#include "server/index/snapshot.h"
#include "server/service/auth.h"
#include "server/service/call_tracker.h"
#include "server/service/ingest_service.h"
#include "server/service/query_service.h"
#include "server/service/rate_limiter.h"
#include "server/storage/rocksdb_store.h"
#include "server/storage/store.h"

namespace cohortd {

class CohortdServer {
 public:
  // Opens the store in config.data_dir, loads (or creates) the
  // pseudonymisation key, builds the columnar index from the store, opens
  // the release journal, and starts serving gRPC on config.listen_address
  // (port 0 picks a free port; see port()). The data dir is created with
  // mode 0700, and group/other permissions are taken off an existing one
  // and everything in it (main.cc's umask 077 keeps new files 0600).
  // Both registries are borrowed and must outlive the server:
  // `dashboard_metrics` receives only series that depend on no record,
  // `operator_metrics` everything else (server/metrics/metrics.h, "Two
  // endpoints").
  // `store_options` are the defaults in production; tests pass a
  // fault-injecting file system through them.
  // Health (grpc.health.v1, service ""): SERVING while the store accepts
  // writes, NOT_SERVING while it is stopped by a background error such as
  // a full disk (and back to SERVING once it has resumed), and during
  // shutdown.
  // Errors: InvalidArgument for unreadable TLS files; FailedPrecondition
  // for a TLS key file that group or other may access, naming the file and
  // its mode; Unavailable when the address cannot be bound or the store
  // cannot be opened; DataLoss when the store is damaged (the message names
  // the file); as LoadOrCreateKeyFile for key problems.
  static absl::StatusOr<std::unique_ptr<CohortdServer>> Start(
      Config config, MetricsRegistry* dashboard_metrics,
      MetricsRegistry* operator_metrics,
      const RocksDbStoreOptions& store_options = RocksDbStoreOptions());

  // Shuts down (as Shutdown with a 10 s grace) if still running.
  ~CohortdServer();

  // The bound gRPC port.
  int port() const { return port_; }
  const Config& config() const { return config_; }

  // OK, or the DataLoss the store reported while running (a corruption
  // met by a read, a write, compaction or the background checksum pass).
  // Health is NOT_SERVING from then on; main.cc stops the process with
  // exit status 3, as at start. Thread-safe.
  absl::Status data_loss() const;

  // Stops accepting calls, cancels every PushStream waiting for a request
  // with UNAVAILABLE, lets in-flight calls finish for up to `grace` (then
  // cancels them), commits every push already received, and closes the
  // store. Idempotent. Thread-safe.
  void Shutdown(absl::Duration grace);

 private:
  CohortdServer() = default;
  void PublishStoreStats();
  void PublishBudgets();
  // Mirrors store_->Health() into the gRPC health service until stopped.
  void WatchStoreHealth();

  Config config_;
  // Operator registry: record-derived series (the default for anything
  // new). dashboard_metrics_: only series that depend on no record.
  MetricsRegistry* metrics_ = nullptr;
  MetricsRegistry* dashboard_metrics_ = nullptr;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Pseudonymizer> pseudonymizer_;
  std::unique_ptr<ColumnarIndex> index_;
  std::unique_ptr<SnapshotIndex> snapshots_;  // in front of index_
  // storage.engine clickhouse (issue 10): the backend and the listener
  // that feeds it with the snapshot index; null with rocksdb.
  std::unique_ptr<ClickHouseBackend> clickhouse_;
  std::unique_ptr<IngestListener> clickhouse_tee_;
  std::unique_ptr<Ingestor> ingestor_;
  std::unique_ptr<ReleaseJournal> journal_;
  std::unique_ptr<QueryEngine> query_engine_;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<RateLimiter> limiter_;
  CallTracker call_tracker_;  // outlives grpc_server_, which uses it
  std::unique_ptr<IngestService> ingest_service_;
  std::unique_ptr<QueryService> query_service_;
  std::unique_ptr<AdminService> admin_service_;
  // Erasure and retention (issue 13, item 7).
  std::unique_ptr<AccountEraser> eraser_;
  std::unique_ptr<RetentionJob> retention_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;

  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
  absl::Notification stop_stats_;
  std::thread stats_thread_;
  absl::Notification stop_health_;
  std::thread health_thread_;
  mutable absl::Mutex data_loss_mu_;
  absl::Status data_loss_ ABSL_GUARDED_BY(data_loss_mu_);
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_SERVER_H_
