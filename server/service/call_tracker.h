// CallTracker: counts the gRPC calls in progress (through a server
// interceptor, so every service is covered), so that shutdown can tell
// "in-flight work is done" from "only idle connections are left".
//
// Why: gRPC's Server::Shutdown(deadline) waits not only for calls but for
// every client connection to go away; a client that merely keeps its
// channel open (as every worker does) held SIGTERM for the whole grace.
// Once CallTracker says no call is in progress, the server closes the
// remaining connections at once.
#ifndef COHORTD_SERVER_SERVICE_CALL_TRACKER_H_
#define COHORTD_SERVER_SERVICE_CALL_TRACKER_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/server_interceptor.h"

namespace cohortd {

// Thread-safe.
class CallTracker {
 public:
  // An interceptor factory for grpc::ServerBuilder; each call it sees
  // counts as in progress until gRPC destroys its interceptor (the call is
  // done). The tracker must outlive the server the factory is given to.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewInterceptorFactory();

  // Waits until no call is in progress or `deadline` passes; returns
  // whether none is.
  bool AwaitNoCalls(absl::Time deadline);

  int calls_in_progress() const;

 private:
  class Factory;
  class Counter;

  mutable absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_CALL_TRACKER_H_
