#include "server/service/ingest_service.h"

#include <string>

#include "server/service/grpc_status.h"
#include "server/service/rpc_metrics.h"

namespace cohortd {

std::string AuthorizationHeader(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

grpc::Status IngestService::Authorize(grpc::ServerContext* context) const {
  return ToGrpcStatus(
      auth_->Authorize(AuthorizationHeader(*context), {Role::kIngest})
          .status());
}

grpc::Status IngestService::Push(grpc::ServerContext* context,
                                 const cohortd::v1::PushRequest* request,
                                 cohortd::v1::PushResponse* response) {
  RpcRecorder recorder(metrics_, "Push");
  if (grpc::Status s = Authorize(context); !s.ok()) {
    return recorder.Finish(s);
  }
  absl::StatusOr<cohortd::v1::PushResponse> result = ingestor_->Push(*request);
  if (!result.ok()) return recorder.Finish(ToGrpcStatus(result.status()));
  *response = std::move(result).value();
  return recorder.Finish(grpc::Status::OK);
}

grpc::Status IngestService::PushStream(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<cohortd::v1::PushResponse,
                             cohortd::v1::PushRequest>* stream) {
  RpcRecorder recorder(metrics_, "PushStream");
  if (grpc::Status s = Authorize(context); !s.ok()) {
    return recorder.Finish(s);
  }
  cohortd::v1::PushRequest request;
  while (stream->Read(&request)) {
    absl::StatusOr<cohortd::v1::PushResponse> result =
        ingestor_->Push(request);
    if (!result.ok()) return recorder.Finish(ToGrpcStatus(result.status()));
    if (!stream->Write(*result)) {
      return recorder.Finish(
          grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    }
  }
  return recorder.Finish(grpc::Status::OK);
}

}  // namespace cohortd
