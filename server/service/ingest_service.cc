#include "server/service/ingest_service.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/arena.h"
#include "grpc/grpc.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/impl/rpc_service_method.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/method_handler.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "server/common/logging.h"
#include "server/ingest/validator.h"
#include "server/service/grpc_status.h"
#include "server/service/rpc_metrics.h"

namespace cohortd {
namespace {

using cohortd::internal::WireObservation;
using cohortd::internal::WirePushRequest;

constexpr char kShuttingDown[] =
    "cohortd is shutting down; reconnect and resend unacknowledged batches";

// Views of a wire observation (already checked to be valid UTF-8) as the
// Ingestor takes them; the wire message must outlive the views. As in a
// protobuf map, the last of repeated label or measure names wins.
void ViewObservation(const WireObservation& wire, ObservationRef* obs) {
  obs->session_id = wire.session_id();
  obs->account_id = wire.account_id();
  obs->source = wire.source();
  obs->has_session_start = wire.has_session_start();
  if (obs->has_session_start) {
    obs->session_start_seconds = wire.session_start().seconds();
    obs->session_start_nanos = wire.session_start().nanos();
  }
  obs->labels.reserve(wire.labels_size());
  for (const auto& label : wire.labels()) {
    obs->labels.emplace_back(label.key(), label.value());
  }
  obs->measures.reserve(wire.measures_size());
  for (const auto& measure : wire.measures()) {
    obs->measures.emplace_back(measure.key(), measure.value());
  }
  obs->SortNames();
}

}  // namespace

std::string AuthorizationHeader(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

IngestService::IngestService(const Config* config, const Authenticator* auth,
                             Ingestor* ingestor, RateLimiter* limiter,
                             MetricsRegistry* metrics)
    : config_(config),
      auth_(auth),
      ingestor_(ingestor),
      limiter_(limiter),
      metrics_(metrics) {
  // As generated code registers cohortd.v1.Ingest, with the lenient
  // request type (the paths and wire format are the public ones).
  AddMethod(new grpc::internal::RpcServiceMethod(
      "/cohortd.v1.Ingest/Push", grpc::internal::RpcMethod::NORMAL_RPC,
      new grpc::internal::RpcMethodHandler<IngestService, WirePushRequest,
                                           cohortd::v1::PushResponse>(
          [](IngestService* service, grpc::ServerContext* context,
             const WirePushRequest* request,
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
                                    const WirePushRequest& request,
                                    cohortd::v1::PushResponse* response) {
  const DatasetSpec* dataset = config_->FindDataset(request.dataset());
  if (dataset == nullptr) {
    std::vector<std::string> names;
    for (const auto& d : config_->datasets) names.push_back(d.name);
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("dataset: unknown dataset '", EchoName(request.dataset()),
                     "'; datasets: ", absl::StrJoin(names, ", ")));
  }
  const int n = request.observations_size();
  if (n > config_->max_batch_size) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("observations: batch of ", n,
                     " observations is larger than the maximum of ",
                     config_->max_batch_size,
                     "; split it into smaller pushes"));
  }
  if (LimitDecision d = limiter_->ChargeIngest(principal, n); !d.ok()) {
    return ToGrpcStatusWithRetry(d, context);
  }

  // Observations with invalid UTF-8 become rejections here; the others go
  // on, and `original[i]` maps index i of what the Ingestor sees back.
  std::vector<ObservationRef> valid;
  valid.reserve(n);
  std::vector<int> original;
  original.reserve(n);
  std::vector<cohortd::v1::Rejection> utf8_rejections;
  for (int i = 0; i < n; ++i) {
    const WireObservation& wire = request.observations(i);
    if (auto error = ValidateUtf8(wire)) {
      cohortd::v1::Rejection& r = utf8_rejections.emplace_back();
      r.set_index(i);
      r.set_field(std::move(error->field));
      r.set_reason(std::move(error->reason));
      continue;
    }
    ViewObservation(wire, &valid.emplace_back());
    original.push_back(i);
  }
  if (!utf8_rejections.empty()) {
    metrics_
        ->GetCounter("cohortd_ingest_rejections_total",
                     "Rejected observations by reason class.",
                     {{"dataset", dataset->name}, {"reason", "invalid_utf8"}})
        ->Increment(utf8_rejections.size());
  }

  absl::StatusOr<cohortd::v1::PushResponse> result =
      ingestor_->Push(dataset->name, valid);
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
                                 const WirePushRequest* request,
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
  return recorder.Finish(
      PushOne(context, (*principal)->name, *request, response));
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
  grpc::ByteBuffer bytes;
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
    // Room for the parsed request in one or two blocks.
    google::protobuf::ArenaOptions arena_options;
    arena_options.start_block_size = bytes.Length() + (size_t{64} << 10);
    arena_options.max_block_size = 4 * arena_options.start_block_size;
    google::protobuf::Arena arena(arena_options);
    auto* request =
        google::protobuf::Arena::CreateMessage<WirePushRequest>(&arena);
    bool parsed;
    {
      // The reader refers to `bytes`: it must go before they are cleared.
      grpc::ProtoBufferReader reader(&bytes);
      parsed = request->ParseFromZeroCopyStream(&reader);
    }
    bytes.Clear();
    if (!parsed) {
      return recorder.Finish(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       "request: not a cohortd.v1.PushRequest (the bytes do "
                       "not parse)"));
    }
    cohortd::v1::PushResponse response;
    grpc::Status status =
        PushOne(context, (*principal)->name, *request, &response);
    if (!status.ok()) return recorder.Finish(status);
    if (!stream->Write(response)) {
      return recorder.Finish(
          grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    }
  }
}

}  // namespace cohortd
