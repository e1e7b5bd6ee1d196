// Per-RPC request counts and latency histograms, labelled by method and
// gRPC status code only. They go to the registry the service was given
// (server/metrics/metrics.h, "Two endpoints"): the ingest service's is the
// operators' (its calls and codes move with the records pushed), the query
// and admin services' the dashboards'.
#ifndef COHORTD_SERVER_SERVICE_RPC_METRICS_H_
#define COHORTD_SERVER_SERVICE_RPC_METRICS_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "server/metrics/metrics.h"

namespace cohortd {

// Scoped recorder: construct at the start of a handler, call Finish() with
// the status it returns. Not thread-safe (one per call).
class RpcRecorder {
 public:
  // `metrics` is borrowed and must outlive the recorder.
  RpcRecorder(MetricsRegistry* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(absl::Now()) {}

  // Records the call and passes `status` through.
  grpc::Status Finish(grpc::Status status) {
    const std::string code = CodeName(status.error_code());
    metrics_
        ->GetCounter("cohortd_rpc_requests_total",
                     "RPCs handled, by method and status code.",
                     {{"method", method_}, {"code", code}})
        ->Increment();
    metrics_
        ->GetHistogram("cohortd_rpc_duration_seconds",
                       "RPC handling time, by method.", {{"method", method_}},
                       LatencyBucketsSeconds())
        ->Observe(absl::ToDoubleSeconds(absl::Now() - start_));
    return status;
  }

 private:
  static std::string CodeName(grpc::StatusCode code) {
    switch (code) {
      case grpc::StatusCode::OK:
        return "OK";
      case grpc::StatusCode::CANCELLED:
        return "CANCELLED";
      case grpc::StatusCode::INVALID_ARGUMENT:
        return "INVALID_ARGUMENT";
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        return "DEADLINE_EXCEEDED";
      case grpc::StatusCode::NOT_FOUND:
        return "NOT_FOUND";
      case grpc::StatusCode::PERMISSION_DENIED:
        return "PERMISSION_DENIED";
      case grpc::StatusCode::RESOURCE_EXHAUSTED:
        return "RESOURCE_EXHAUSTED";
      case grpc::StatusCode::FAILED_PRECONDITION:
        return "FAILED_PRECONDITION";
      case grpc::StatusCode::UNAVAILABLE:
        return "UNAVAILABLE";
      case grpc::StatusCode::UNAUTHENTICATED:
        return "UNAUTHENTICATED";
      case grpc::StatusCode::DATA_LOSS:
        return "DATA_LOSS";
      case grpc::StatusCode::INTERNAL:
        return "INTERNAL";
      default:
        return absl::StrCat(static_cast<int>(code));
    }
  }

  MetricsRegistry* metrics_;
  std::string method_;
  absl::Time start_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_RPC_METRICS_H_
