#include "server/service/ingest_service.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/grpc.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/impl/rpc_service_method.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/method_handler.h"
#include "grpcpp/support/slice.h"
#include "server/common/logging.h"
#include "server/ingest/validator.h"
#include "server/service/grpc_status.h"
#include "server/service/push_wire_reader.h"
#include "server/service/rpc_metrics.h"

namespace cohortd {
namespace {

constexpr char kShuttingDown[] =
    "cohortd is shutting down; reconnect and resend unacknowledged batches";

// Reads the request in `buffer` with `reader`. The views it makes point
// into `slices` (a one-slice message, the usual small push: no copy) or
// into `joined` (several slices copied once, end to end); both must stay
// untouched while the views are used. Errors: InvalidArgument as
// PushWireReader::Read.
absl::Status ReadRequest(const grpc::ByteBuffer& buffer,
                         std::vector<grpc::Slice>* slices, std::string* joined,
                         PushWireReader* reader) {
  slices->clear();
  joined->clear();
  absl::string_view bytes;
  // Dump fails only for a buffer holding nothing: an empty request.
  if (buffer.Valid() && buffer.Dump(slices).ok()) {
    if (slices->size() == 1) {
      bytes =
          absl::string_view(reinterpret_cast<const char*>((*slices)[0].begin()),
                            (*slices)[0].size());
    } else if (slices->size() > 1) {
      joined->reserve(buffer.Length());
      for (const grpc::Slice& slice : *slices) {
        joined->append(reinterpret_cast<const char*>(slice.begin()),
                       slice.size());
      }
      bytes = *joined;
    }
  }
  return reader->Read(bytes);
}

}  // namespace

std::string AuthorizationHeader(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

IngestService::IngestService(const Authenticator* auth, Ingestor* ingestor,
                             RateLimiter* limiter, MetricsRegistry* metrics)
    : auth_(auth), ingestor_(ingestor), limiter_(limiter), metrics_(metrics) {
  // As generated code registers cohortd.v1.Ingest, but taking requests as
  // bytes for PushWireReader (the paths and wire format are the public
  // ones).
  AddMethod(new grpc::internal::RpcServiceMethod(
      "/cohortd.v1.Ingest/Push", grpc::internal::RpcMethod::NORMAL_RPC,
      new grpc::internal::RpcMethodHandler<IngestService, grpc::ByteBuffer,
                                           cohortd::v1::PushResponse>(
          [](IngestService* service, grpc::ServerContext* context,
             const grpc::ByteBuffer* request,
             cohortd::v1::PushResponse* response) {
            return service->Push(context, request, response);
          },
          this)));
  AddMethod(new grpc::internal::RpcServiceMethod(
      "/cohortd.v1.Ingest/PushStream",
      grpc::internal::RpcMethod::BIDI_STREAMING,
      new grpc::internal::BidiStreamingHandler<IngestService, grpc::ByteBuffer,
                                               cohortd::v1::PushResponse>(
          [](IngestService* service, grpc::ServerContext* context,
             PushStreamType* stream) {
            return service->PushStream(context, stream);
          },
          this)));
}

bool IngestService::shutting_down() const {
  absl::MutexLock lock(&mu_);
  return shutting_down_;
}

void IngestService::BeginShutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  // A server-side cancel that carries a status reaches the client as that
  // status (trailers), not as CANCELLED; the handler's Read returns false.
  // The contexts stay valid: a handler leaves idle_streams_ (under mu_)
  // before it returns.
  for (grpc::ServerContext* context : idle_streams_) {
    grpc_call_cancel_with_status(context->c_call(), GRPC_STATUS_UNAVAILABLE,
                                 kShuttingDown, nullptr);
  }
  LogInfo("ingest", "shutdown: ended %d idle PushStream(s) with UNAVAILABLE",
          idle_streams_.size());
}

grpc::Status IngestService::PushOne(grpc::ServerContext* context,
                                    const std::string& principal,
                                    PushWireReader* request,
                                    cohortd::v1::PushResponse* response) {
  const int n = request->size();
  absl::StatusOr<const DatasetSpec*> checked =
      ingestor_->CheckRequest(request->dataset(), static_cast<size_t>(n));
  if (!checked.ok()) return ToGrpcStatus(checked.status());
  const DatasetSpec* dataset = *checked;
  if (LimitDecision d = limiter_->ChargeIngest(principal, n); !d.ok()) {
    return ToGrpcStatusWithRetry(d, context);
  }

  // Observations with invalid UTF-8 become rejections here; the others are
  // moved (swapped, so the reader keeps every vector's capacity) to the
  // front of the reader's span, and `original[i]` maps index i of what the
  // Ingestor sees back. `original` is left empty when all are valid.
  absl::Span<ObservationRef> observations = request->observations();
  int valid = 0;
  std::vector<int> original;
  std::vector<cohortd::v1::Rejection> utf8_rejections;
  for (int i = 0; i < n; ++i) {
    ObservationRef& obs = observations[i];
    if (auto error = ValidateUtf8(obs)) {
      if (original.empty()) {
        original.reserve(n);
        for (int j = 0; j < i; ++j) original.push_back(j);
      }
      cohortd::v1::Rejection& r = utf8_rejections.emplace_back();
      r.set_index(i);
      r.set_field(std::move(error->field));
      r.set_reason(std::move(error->reason));
      continue;
    }
    obs.SortNames();
    if (valid != i) std::swap(observations[valid], obs);
    if (!original.empty() || !utf8_rejections.empty()) original.push_back(i);
    ++valid;
  }
  if (!utf8_rejections.empty()) {
    metrics_
        ->GetCounter("cohortd_ingest_rejections_total",
                     "Rejected observations by reason class.",
                     {{"dataset", dataset->name}, {"reason", "invalid_utf8"}})
        ->Increment(utf8_rejections.size());
  }

  absl::StatusOr<cohortd::v1::PushResponse> result =
      ingestor_->Push(dataset->name, observations.first(valid));
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(result).value();
  if (!utf8_rejections.empty()) {
    auto* rejected = response->mutable_rejected();
    for (cohortd::v1::Rejection& r : *rejected) {
      r.set_index(original[r.index()]);
    }
    for (cohortd::v1::Rejection& r : utf8_rejections) {
      *rejected->Add() = std::move(r);
    }
    std::stable_sort(
        rejected->begin(), rejected->end(),
        [](const auto& a, const auto& b) { return a.index() < b.index(); });
  }
  BoundPushResponse(kMaxRejectionBytes, response);
  return grpc::Status::OK;
}

grpc::Status IngestService::Push(grpc::ServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 cohortd::v1::PushResponse* response) {
  RpcRecorder recorder(metrics_, "Push");
  absl::StatusOr<const Principal*> principal =
      auth_->Authorize(AuthorizationHeader(*context), {Role::kIngest});
  if (!principal.ok()) {
    return recorder.Finish(ToGrpcStatus(principal.status()));
  }
  if (shutting_down()) {
    return recorder.Finish(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDown));
  }
  RateLimiter::StreamSlot slot;
  if (LimitDecision d = limiter_->AcquireStream((*principal)->name, &slot);
      !d.ok()) {
    return recorder.Finish(ToGrpcStatusWithRetry(d, context));
  }
  std::vector<grpc::Slice> slices;
  std::string joined;
  PushWireReader reader;
  if (absl::Status read = ReadRequest(*request, &slices, &joined, &reader);
      !read.ok()) {
    return recorder.Finish(ToGrpcStatus(read));
  }
  return recorder.Finish(
      PushOne(context, (*principal)->name, &reader, response));
}

grpc::Status IngestService::PushStream(grpc::ServerContext* context,
                                       PushStreamType* stream) {
  RpcRecorder recorder(metrics_, "PushStream");
  absl::StatusOr<const Principal*> principal =
      auth_->Authorize(AuthorizationHeader(*context), {Role::kIngest});
  if (!principal.ok()) {
    return recorder.Finish(ToGrpcStatus(principal.status()));
  }
  RateLimiter::StreamSlot slot;
  if (LimitDecision d = limiter_->AcquireStream((*principal)->name, &slot);
      !d.ok()) {
    return recorder.Finish(ToGrpcStatusWithRetry(d, context));
  }
  // Kept across the stream's requests, so that their buffers are reused.
  grpc::ByteBuffer bytes;
  std::vector<grpc::Slice> slices;
  std::string joined;
  PushWireReader reader;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_) {
        return recorder.Finish(
            grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDown));
      }
      idle_streams_.insert(context);
    }
    const bool got = stream->Read(&bytes);
    bool cancelled_by_shutdown;
    {
      absl::MutexLock lock(&mu_);
      idle_streams_.erase(context);
      cancelled_by_shutdown = shutting_down_;
    }
    if (!got) {
      return recorder.Finish(
          cancelled_by_shutdown && context->IsCancelled()
              ? grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDown)
              : grpc::Status::OK);
    }
    if (absl::Status read = ReadRequest(bytes, &slices, &joined, &reader);
        !read.ok()) {
      return recorder.Finish(ToGrpcStatus(read));
    }
    cohortd::v1::PushResponse response;
    grpc::Status status =
        PushOne(context, (*principal)->name, &reader, &response);
    // The views are no longer used: let the transport's slices go.
    slices.clear();
    bytes.Clear();
    if (!status.ok()) return recorder.Finish(status);
    if (!stream->Write(response)) {
      return recorder.Finish(
          grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    }
  }
}

}  // namespace cohortd
