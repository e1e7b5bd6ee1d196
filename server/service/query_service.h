// The cohortd.v1.Query and cohortd.v1.Admin gRPC services.
//
// Aggregate authenticates (analyst or admin) and hands the request to the
// QueryEngine (server/engine/query_engine.h); statuses are converted here.
#ifndef COHORTD_SERVER_SERVICE_QUERY_SERVICE_H_
#define COHORTD_SERVER_SERVICE_QUERY_SERVICE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "server/config/config.h"
#include "server/ingest/eraser.h"
#include "server/metrics/metrics.h"
#include "server/engine/query_engine.h"
#include "server/ledger/release_journal.h"
#include "server/index/snapshot.h"
#include "server/service/auth.h"
#include "server/service/rate_limiter.h"
#include "server/storage/store.h"

namespace cohortd {

class QueryService final : public cohortd::v1::Query::Service {
 public:
  // All pointers borrowed; they must outlive the service.
  QueryService(const Config* config, const Authenticator* auth,
               QueryEngine* engine, ReleaseJournal* journal,
               MetricsRegistry* metrics)
      : config_(config),
        auth_(auth),
        engine_(engine),
        journal_(journal),
        metrics_(metrics) {}

  grpc::Status Aggregate(grpc::ServerContext* context,
                         const cohortd::v1::AggregateRequest* request,
                         cohortd::v1::AggregateResponse* response) override;
  grpc::Status DescribeDataset(
      grpc::ServerContext* context,
      const cohortd::v1::DescribeDatasetRequest* request,
      cohortd::v1::DatasetDescription* response) override;
  grpc::Status GetBudget(grpc::ServerContext* context,
                         const cohortd::v1::GetBudgetRequest* request,
                         cohortd::v1::Budget* response) override;

  // Charges every call to the caller's query rate limit (RESOURCE_EXHAUSTED
  // with a retry hint past it). `limiter` is borrowed and must outlive the
  // service; null (the default) means no limit. Call before serving.
  void set_rate_limiter(RateLimiter* limiter) { limiter_ = limiter; }

 private:
  grpc::Status ChargeQuery(grpc::ServerContext* context,
                           const std::string& principal);

  const Config* const config_;
  const Authenticator* const auth_;
  QueryEngine* const engine_;
  RateLimiter* limiter_ = nullptr;
  ReleaseJournal* const journal_;
  MetricsRegistry* const metrics_;
};

class AdminService final : public cohortd::v1::Admin::Service {
 public:
  // All pointers borrowed; they must outlive the service. `store` and
  // `eraser` serve Backup and DeleteAccount.
  AdminService(const Authenticator* auth, ReleaseJournal* journal,
               MetricsRegistry* metrics, Store* store,
               const AccountEraser* eraser)
      : auth_(auth),
        journal_(journal),
        metrics_(metrics),
        store_(store),
        eraser_(eraser) {}

  grpc::Status ListAudit(grpc::ServerContext* context,
                         const cohortd::v1::ListAuditRequest* request,
                         cohortd::v1::ListAuditResponse* response) override;
  // Erasure of one account's sessions (AccountEraser), audit-logged.
  // INVALID_ARGUMENT for an unknown dataset or empty account_id.
  grpc::Status DeleteAccount(
      grpc::ServerContext* context,
      const cohortd::v1::DeleteAccountRequest* request,
      cohortd::v1::DeleteAccountResponse* response) override;
  // Store::Backup into a server-side folder; the path is the operator's
  // and the admin role is trusted with it (README "Backup and restore").
  // INVALID_ARGUMENT for an empty or relative path, FAILED_PRECONDITION
  // for a non-empty folder.
  grpc::Status Backup(grpc::ServerContext* context,
                      const cohortd::v1::BackupRequest* request,
                      cohortd::v1::BackupResponse* response) override;

  // --- Snapshots (issue 9, item 2) ---
  // What SealSnapshot seals; borrowed, must outlive the service. Set once
  // before serving; without it SealSnapshot is UNAVAILABLE.
  void set_snapshots(SnapshotIndex* snapshots) { snapshots_ = snapshots; }
  // Admin role. Seals `dataset` now (every dataset when empty) and returns
  // the seal time. INVALID_ARGUMENT for an unknown dataset.
  grpc::Status SealSnapshot(
      grpc::ServerContext* context,
      const cohortd::v1::SealSnapshotRequest* request,
      cohortd::v1::SealSnapshotResponse* response) override;
  // --- end snapshots ---

 private:
  const Authenticator* const auth_;
  ReleaseJournal* const journal_;
  MetricsRegistry* const metrics_;
  Store* const store_;
  const AccountEraser* const eraser_;
  SnapshotIndex* snapshots_ = nullptr;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_QUERY_SERVICE_H_
