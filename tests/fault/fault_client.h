// Client helpers for the fault suite: pushes that a well-behaved client
// cannot send through the generated stub (invalid UTF-8 in string fields),
// and small batch builders.
#ifndef COHORTD_TESTS_FAULT_FAULT_CLIENT_H_
#define COHORTD_TESTS_FAULT_FAULT_CLIENT_H_

#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cohortd/internal/ingest_wire.pb.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/client_unary_call.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/impl/rpc_method.h"

namespace cohortd::testing {

inline constexpr int64_t kFaultJan2026 = 1767225600;

// A valid wire observation of dataset `sessions` (config/cohortd.yaml).
inline cohortd::internal::WireObservation WireObservation(int i) {
  cohortd::internal::WireObservation obs;
  obs.set_session_id(absl::StrCat("fault-session-", i));
  obs.set_account_id(absl::StrCat("fault-account-", i % 97));
  obs.mutable_session_start()->set_seconds(kFaultJan2026 + i * 60);
  obs.set_source("work_mode_classifier@3");
  auto* label = obs.add_labels();
  label->set_key("work_mode");
  label->set_value("fix");
  auto* measure = obs.add_measures();
  measure->set_key("actions_per_prompt");
  measure->set_value(i % 50);
  return obs;
}

// Sends `request` as /cohortd.v1.Ingest/Push byte for byte, whatever its
// string fields hold.
inline grpc::Status PushWire(grpc::Channel* channel,
                             grpc::ClientContext* context,
                             const cohortd::internal::WirePushRequest& request,
                             cohortd::v1::PushResponse* response) {
  const grpc::internal::RpcMethod method("/cohortd.v1.Ingest/Push",
                                         grpc::internal::RpcMethod::NORMAL_RPC);
  return grpc::internal::BlockingUnaryCall<cohortd::internal::WirePushRequest,
                                           cohortd::v1::PushResponse>(
      channel, method, context, request, response);
}

// A batch of `n` valid observations, numbered from `offset`.
inline cohortd::v1::PushRequest ValidBatch(int n, int offset = 0) {
  cohortd::v1::PushRequest request;
  request.set_dataset("sessions");
  for (int i = offset; i < offset + n; ++i) {
    cohortd::v1::Observation* obs = request.add_observations();
    obs->set_session_id(absl::StrCat("fault-session-", i));
    obs->set_account_id(absl::StrCat("fault-account-", i % 97));
    obs->mutable_session_start()->set_seconds(kFaultJan2026 + i * 60);
    obs->set_source("work_mode_classifier@3");
    (*obs->mutable_labels())["work_mode"] = "fix";
    (*obs->mutable_measures())["actions_per_prompt"] = i % 50;
  }
  return request;
}

// PushStreams held open and idle, each holding its slot in the stream
// caps and its server thread: to fill a cap or gRPC's thread quota.
class OpenStreams {
 public:
  using Stream = grpc::ClientReaderWriter<cohortd::v1::PushRequest,
                                          cohortd::v1::PushResponse>;

  // Opens a PushStream on `context` and pushes `batch`: true when it is
  // answered (the stream is then kept open); false when the server ended
  // the stream instead, with its status in *refused.
  bool TryOpen(cohortd::v1::Ingest::Stub* ingest,
               std::unique_ptr<grpc::ClientContext> context,
               const cohortd::v1::PushRequest& batch, grpc::Status* refused) {
    Open open{std::move(context), nullptr};
    open.stream = ingest->PushStream(open.context.get());
    open.stream->Write(batch);
    cohortd::v1::PushResponse response;
    if (open.stream->Read(&response)) {
      open_.push_back(std::move(open));
      return true;
    }
    *refused = open.stream->Finish();
    return false;
  }

  // Ends the oldest stream held (it must hold one): its final status.
  grpc::Status CloseOldest() {
    Open open = std::move(open_.front());
    open_.pop_front();
    open.stream->WritesDone();
    return open.stream->Finish();
  }

  // Ends every stream held: OK, or the first one's error.
  grpc::Status CloseAll() {
    grpc::Status first;
    while (!open_.empty()) {
      const grpc::Status status = CloseOldest();
      if (first.ok() && !status.ok()) first = status;
    }
    return first;
  }

  size_t size() const { return open_.size(); }

 private:
  struct Open {
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<Stream> stream;
  };
  std::deque<Open> open_;
};

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_FAULT_FAULT_CLIENT_H_
