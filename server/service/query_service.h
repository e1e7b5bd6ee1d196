// The cohortd.v1.Query and cohortd.v1.Admin gRPC services.
//
// Aggregate: authenticate (analyst or admin) -> plan (validate,
// canonicalise) -> release cache -> budget pre-check -> execute over a
// consistent index view -> charge, cache and audit in one synced write ->
// answer. Nothing leaves before the charge is durable (invariant 4).
#ifndef COHORTD_SERVER_SERVICE_QUERY_SERVICE_H_
#define COHORTD_SERVER_SERVICE_QUERY_SERVICE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "server/config/config.h"
#include "server/crypto/pseudonymizer.h"
#include "server/ingest/ingestor.h"
#include "server/metrics/metrics.h"
#include "server/query/columnar_index.h"
#include "server/query/release_journal.h"
#include "server/service/auth.h"

namespace cohortd {

// The query path's core, without gRPC types, so the publisher (dashboards)
// and tests can release through exactly the same steps. Thread-safe; all
// pointers are borrowed and must outlive it.
class QueryEngine {
 public:
  // `bounding_hmac` keys contribution bounding (a key of its own, derived
  // from the server secret). `ingestor` provides the commit fence.
  QueryEngine(const Config* config, ColumnarIndex* index,
              ReleaseJournal* journal, Ingestor* ingestor,
              std::unique_ptr<HmacSha256> bounding_hmac,
              MetricsRegistry* metrics);

  // One release for `principal`. Errors: InvalidArgument (request),
  // ResourceExhausted (budget), Unavailable (storage), Internal.
  absl::StatusOr<cohortd::v1::AggregateResponse> Aggregate(
      const std::string& principal,
      const cohortd::v1::AggregateRequest& request);

 private:
  void CountCacheHit(const std::string& dataset);

  const Config* const config_;
  ColumnarIndex* const index_;
  ReleaseJournal* const journal_;
  Ingestor* const ingestor_;
  const std::unique_ptr<HmacSha256> bounding_hmac_;
  MetricsRegistry* const metrics_;
};

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

 private:
  const Config* const config_;
  const Authenticator* const auth_;
  QueryEngine* const engine_;
  ReleaseJournal* const journal_;
  MetricsRegistry* const metrics_;
};

class AdminService final : public cohortd::v1::Admin::Service {
 public:
  AdminService(const Authenticator* auth, ReleaseJournal* journal,
               MetricsRegistry* metrics)
      : auth_(auth), journal_(journal), metrics_(metrics) {}

  grpc::Status ListAudit(grpc::ServerContext* context,
                         const cohortd::v1::ListAuditRequest* request,
                         cohortd::v1::ListAuditResponse* response) override;

 private:
  const Authenticator* const auth_;
  ReleaseJournal* const journal_;
  MetricsRegistry* const metrics_;
};

// The public description of `dataset` (schema and privacy parameters, all
// from the config). Errors: InvalidArgument for an unknown dataset.
absl::StatusOr<cohortd::v1::DatasetDescription> DescribeDataset(
    const Config& config, const std::string& dataset);

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_QUERY_SERVICE_H_
