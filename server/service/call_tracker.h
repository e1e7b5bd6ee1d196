// CallTracker: counts the gRPC calls in progress (through a server
// interceptor, so every service is covered), so that shutdown can tell
// "in-flight work is done" from "only idle connections are left".
//
// Why: gRPC's Server::Shutdown(deadline) waits not only for calls but for
// every client connection to go away; a client that merely keeps its
// channel open (as every worker does) held SIGTERM for the whole grace.
// Once CallTracker says no call is in progress, the server closes the
// remaining connections at once.
//
// It also drains: gRPC 1.51 ends a call that arrives after
// Server::Shutdown began but was never matched to a handler with
// CANCELLED (grpc/grpc#41785), which clients do not retry. So the server
// first drains (BeginDraining): every new call except health checks is
// answered UNAVAILABLE "shutting down" while calls in progress finish,
// until no call has arrived for a short quiet period (AwaitQuiet); only
// then does it call Shutdown. A client that sends a new call in the
// moment between the end of the drain and the GOAWAY reaching it can
// still see CANCELLED; a client that backs off after UNAVAILABLE cannot.
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

  // From now on, every call that arrives (except grpc.health.v1 calls) is
  // ended with UNAVAILABLE "server is shutting down; retry later" before
  // its handler sees it. Calls already in progress go on. Idempotent.
  void BeginDraining();

  // Waits until no call is in progress and none has arrived for `quiet`,
  // or until `deadline`; returns whether it got quiet. Call after
  // BeginDraining.
  bool AwaitQuiet(absl::Duration quiet, absl::Time deadline);

  int calls_in_progress() const;
  // Calls refused while draining, since BeginDraining.
  int calls_refused() const;

 private:
  class Factory;
  class Counter;

  // Whether a call of `method` arriving now is refused; counts it in.
  bool Arrive(const char* method);

  mutable absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_arrival_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int refused_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_CALL_TRACKER_H_
