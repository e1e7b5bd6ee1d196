// Conversion of absl::Status to grpc::Status: the one place where the core's
// error codes meet gRPC's (STYLE.md: absl inside, gRPC at the edge).
#ifndef COHORTD_SERVER_SERVICE_GRPC_STATUS_H_
#define COHORTD_SERVER_SERVICE_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace cohortd {

// absl and gRPC share the canonical code numbering, so the code carries
// over unchanged; the message is kept whole.
inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_GRPC_STATUS_H_
