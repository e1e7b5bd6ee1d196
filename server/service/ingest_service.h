// The cohortd.v1.Ingest gRPC service: authenticates (role ingest), applies
// the per-principal limits (rate_limiter.h), hands each request to the
// Ingestor and converts its status at the edge.
//
// Requests are taken as bytes and read by PushWireReader
// (push_wire_reader.h) into views of those bytes, string fields as bytes
// as cohortd.internal.WirePushRequest reads them, so that an observation
// with invalid UTF-8 is one Rejection naming its field rather than a
// batch-wide parse failure, and no message is built per request. The
// methods are registered by hand under their public paths
// /cohortd.v1.Ingest/Push and /cohortd.v1.Ingest/PushStream; clients use the
// generated cohortd.v1.Ingest stub unchanged.
#ifndef COHORTD_SERVER_SERVICE_INGEST_SERVICE_H_
#define COHORTD_SERVER_SERVICE_INGEST_SERVICE_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "cohortd/v1/cohortd.pb.h"
#include "grpcpp/impl/service_type.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"
#include "server/config/config.h"
#include "server/ingest/ingestor.h"
#include "server/metrics/metrics.h"
#include "server/service/auth.h"
#include "server/service/push_wire_reader.h"
#include "server/service/rate_limiter.h"

namespace cohortd {

// Thread-safe; all pointers are borrowed and must outlive the service
// (i.e. the grpc::Server it is registered with).
class IngestService final : public grpc::Service {
 public:
  // Requests arrive as bytes: read into views, a batch's thousands of
  // strings cost no malloc/free.
  using PushStreamType =
      grpc::ServerReaderWriter<cohortd::v1::PushResponse, grpc::ByteBuffer>;

  IngestService(const Authenticator* auth, Ingestor* ingestor,
                RateLimiter* limiter, MetricsRegistry* metrics);

  // Errors: as Ingestor::Push (INVALID_ARGUMENT for an unknown dataset, a
  // batch above max_batch_size; UNAVAILABLE when shutting down or the
  // store fails; for bytes that are not a PushRequest, naming where);
  // RESOURCE_EXHAUSTED (with `retry-after-ms` trailing metadata) past a
  // limit; UNAUTHENTICATED / PERMISSION_DENIED.
  grpc::Status Push(grpc::ServerContext* context,
                    const grpc::ByteBuffer* request,
                    cohortd::v1::PushResponse* response);

  // Answers each request in order with its own response. A request-level
  // error (unknown dataset, oversized batch, rate limit, storage failure)
  // ends the stream with that status; responses already sent stand. On
  // shutdown the stream ends with UNAVAILABLE: at once if it is waiting for
  // a request, else after answering the request in hand. A request that is
  // not a PushRequest on the wire ends it with INVALID_ARGUMENT.
  grpc::Status PushStream(grpc::ServerContext* context, PushStreamType* stream);

  // Starts the shutdown: later calls and later requests on open streams
  // get UNAVAILABLE, and every PushStream waiting for its next request is
  // cancelled with UNAVAILABLE now, so an idle client cannot hold the
  // server for the whole grace period. Batches in progress finish.
  // Idempotent. Thread-safe.
  void BeginShutdown();

 private:
  // Checks the dataset and size, charges the rate limit, drops (as
  // rejections) observations that are not valid UTF-8 and pushes the rest
  // (the views `request` read: no string is copied). Reorders
  // request->observations().
  grpc::Status PushOne(grpc::ServerContext* context,
                       const std::string& principal, PushWireReader* request,
                       cohortd::v1::PushResponse* response);
  bool shutting_down() const;

  const Authenticator* const auth_;
  Ingestor* const ingestor_;
  RateLimiter* const limiter_;
  MetricsRegistry* const metrics_;

  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // PushStream calls blocked reading their next request.
  absl::flat_hash_set<grpc::ServerContext*> idle_streams_ ABSL_GUARDED_BY(mu_);
};

// The `authorization` metadata of a call, or "" when absent.
std::string AuthorizationHeader(const grpc::ServerContext& context);

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_INGEST_SERVICE_H_
