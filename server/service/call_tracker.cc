#include "server/service/call_tracker.h"

namespace cohortd {

// Counts itself in while it lives: gRPC creates one per call and destroys
// it when the call is done.
class CallTracker::Counter : public grpc::experimental::Interceptor {
 public:
  explicit Counter(CallTracker* tracker) : tracker_(tracker) {
    absl::MutexLock lock(&tracker_->mu_);
    ++tracker_->calls_;
  }
  ~Counter() override {
    absl::MutexLock lock(&tracker_->mu_);
    --tracker_->calls_;
  }
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  CallTracker* const tracker_;
};

class CallTracker::Factory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(CallTracker* tracker) : tracker_(tracker) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new Counter(tracker_);
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

int CallTracker::calls_in_progress() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

}  // namespace cohortd
