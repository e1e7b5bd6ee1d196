// RateLimiter: the per-principal limits of issue 13 item 4, so that one
// client cannot starve the others: concurrent ingest calls (total and per
// principal) and token buckets for observations/s and queries/s. Every
// limit and every refusal is visible as a cohortd_limit_* metric.
//
// Refusals are RESOURCE_EXHAUSTED with a retry hint: the message says how
// long to wait, and the services add it as `retry-after-ms` trailing
// metadata (ToGrpcStatusWithRetry).
#ifndef COHORTD_SERVER_SERVICE_RATE_LIMITER_H_
#define COHORTD_SERVER_SERVICE_RATE_LIMITER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"
#include "server/common/clock.h"
#include "server/common/token_bucket.h"
#include "server/config/config.h"
#include "server/metrics/metrics.h"

namespace cohortd {

// A refusal (RESOURCE_EXHAUSTED) and when to try again; ok() when allowed.
struct LimitDecision {
  absl::Status status;
  absl::Duration retry_after = absl::ZeroDuration();
  bool ok() const { return status.ok(); }
};

class RateLimiter {
 public:
  // All pointers borrowed; they must outlive the limiter. Publishes the
  // configured limits as gauges cohortd_limit_setting{limit=...}.
  RateLimiter(const LimitsSpec& limits, int64_t max_receive_bytes,
              const Clock* clock, MetricsRegistry* metrics);

  // One ingest call (Push or PushStream) in progress; releases its slot
  // when destroyed. Movable.
  class StreamSlot {
   public:
    StreamSlot() = default;
    StreamSlot(StreamSlot&& other) noexcept { *this = std::move(other); }
    StreamSlot& operator=(StreamSlot&& other) noexcept;
    ~StreamSlot();

   private:
    friend class RateLimiter;
    RateLimiter* limiter_ = nullptr;
    std::string principal_;
  };

  // Claims a slot for one ingest call of `principal`. Refused when
  // max_streams calls are open in all, or max_streams_per_principal for
  // this principal (the retry hint is 1 s: a slot frees when a call ends).
  // Thread-safe.
  LimitDecision AcquireStream(const std::string& principal, StreamSlot* slot);

  // Charges `observations` to the principal's ingest bucket. Refused
  // (charging nothing) when the bucket lacks them; the hint is when it
  // will hold them. Thread-safe.
  LimitDecision ChargeIngest(const std::string& principal,
                             int64_t observations);

  // Charges one query. As ChargeIngest. Thread-safe.
  LimitDecision ChargeQuery(const std::string& principal);

 private:
  void Release(const std::string& principal);
  LimitDecision Refuse(absl::string_view limit, const std::string& principal,
                       absl::Duration retry_after, std::string message);
  TokenBucket* Bucket(
      absl::flat_hash_map<std::string, std::unique_ptr<TokenBucket>>* buckets,
      const std::string& principal, double rate, double burst)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LimitsSpec limits_;
  const Clock* const clock_;
  MetricsRegistry* const metrics_;
  Gauge* const open_streams_gauge_;

  absl::Mutex mu_;
  int open_streams_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int> open_by_principal_ ABSL_GUARDED_BY(mu_);
  // Principals come from the config, so these maps stay small.
  absl::flat_hash_map<std::string, std::unique_ptr<TokenBucket>> ingest_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<TokenBucket>> query_
      ABSL_GUARDED_BY(mu_);
};

// The gRPC status of a decision; a refusal also gets `retry-after-ms`
// trailing metadata on `context`.
grpc::Status ToGrpcStatusWithRetry(const LimitDecision& decision,
                                   grpc::ServerContext* context);

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_RATE_LIMITER_H_
