// The cohortd.v1.Ingest gRPC service: authenticates (role ingest), hands
// each request to the Ingestor and converts its status at the edge.
#ifndef COHORTD_SERVER_SERVICE_INGEST_SERVICE_H_
#define COHORTD_SERVER_SERVICE_INGEST_SERVICE_H_

#include "cohortd/v1/cohortd.grpc.pb.h"
#include "server/ingest/ingestor.h"
#include "server/metrics/metrics.h"
#include "server/service/auth.h"

namespace cohortd {

// Thread-safe; all pointers are borrowed and must outlive the service
// (i.e. the grpc::Server it is registered with).
class IngestService final : public cohortd::v1::Ingest::Service {
 public:
  IngestService(const Authenticator* auth, Ingestor* ingestor,
                MetricsRegistry* metrics)
      : auth_(auth), ingestor_(ingestor), metrics_(metrics) {}

  grpc::Status Push(grpc::ServerContext* context,
                    const cohortd::v1::PushRequest* request,
                    cohortd::v1::PushResponse* response) override;

  // Answers each request in order with its own response. A request-level
  // error (unknown dataset, oversized batch, storage failure) ends the
  // stream with that status; responses already sent stand.
  grpc::Status PushStream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<cohortd::v1::PushResponse,
                               cohortd::v1::PushRequest>* stream) override;

 private:
  grpc::Status Authorize(grpc::ServerContext* context) const;

  const Authenticator* const auth_;
  Ingestor* const ingestor_;
  MetricsRegistry* const metrics_;
};

// The `authorization` metadata of a call, or "" when absent.
std::string AuthorizationHeader(const grpc::ServerContext& context);

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_INGEST_SERVICE_H_
