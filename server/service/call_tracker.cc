#include "server/service/call_tracker.h"

#include <algorithm>
#include <cstring>

#include "grpc/grpc.h"
#include "grpcpp/server_context.h"

namespace cohortd {
namespace {

constexpr char kShuttingDown[] = "server is shutting down; retry later";
constexpr char kHealthService[] = "/grpc.health.v1.Health/";

}  // namespace

// Counts itself in while it lives: gRPC creates one per call and destroys
// it when the call is done. While the tracker drains, it ends its call
// with UNAVAILABLE at the first hook, before the handler reads anything.
class CallTracker::Counter : public grpc::experimental::Interceptor {
 public:
  Counter(CallTracker* tracker, grpc::experimental::ServerRpcInfo* info)
      : tracker_(tracker),
        info_(info),
        refuse_(tracker->Arrive(info->method())) {}
  ~Counter() override {
    absl::MutexLock lock(&tracker_->mu_);
    --tracker_->calls_;
  }
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (refuse_ && methods->QueryInterceptionHookPoint(
                       grpc::experimental::InterceptionHookPoints::
                           POST_RECV_INITIAL_METADATA)) {
      refuse_ = false;
      // A server-side cancel with a status reaches the client as that
      // status; the handler's reads then fail and its answer is dropped.
      grpc_call_cancel_with_status(info_->server_context()->c_call(),
                                   GRPC_STATUS_UNAVAILABLE, kShuttingDown,
                                   nullptr);
    }
    methods->Proceed();
  }

 private:
  CallTracker* const tracker_;
  grpc::experimental::ServerRpcInfo* const info_;
  bool refuse_;
};

class CallTracker::Factory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(CallTracker* tracker) : tracker_(tracker) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new Counter(tracker_, info);
  }

 private:
  CallTracker* const tracker_;
};

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
CallTracker::NewInterceptorFactory() {
  return std::make_unique<Factory>(this);
}

bool CallTracker::AwaitNoCalls(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(
      absl::Condition(
          +[](int* calls) { return *calls == 0; }, &calls_),
      deadline);
}

bool CallTracker::Arrive(const char* method) {
  absl::MutexLock lock(&mu_);
  ++calls_;
  last_arrival_ = absl::Now();
  if (!draining_) return false;
  if (method != nullptr &&
      std::strncmp(method, kHealthService, sizeof(kHealthService) - 1) == 0) {
    return false;
  }
  ++refused_;
  return true;
}

void CallTracker::BeginDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool CallTracker::AwaitQuiet(absl::Duration quiet, absl::Time deadline) {
  for (;;) {
    absl::Time quiet_at;
    {
      absl::MutexLock lock(&mu_);
      if (!mu_.AwaitWithDeadline(
              absl::Condition(
                  +[](int* calls) { return *calls == 0; }, &calls_),
              deadline)) {
        return false;
      }
      quiet_at = last_arrival_ + quiet;
    }
    const absl::Time now = absl::Now();
    if (now >= quiet_at) return true;
    if (now >= deadline) return false;
    // A call that arrives meanwhile moves the end of the quiet period.
    absl::SleepFor(std::min(quiet_at, deadline) - now);
  }
}

int CallTracker::calls_in_progress() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

int CallTracker::calls_refused() const {
  absl::MutexLock lock(&mu_);
  return refused_;
}

}  // namespace cohortd
