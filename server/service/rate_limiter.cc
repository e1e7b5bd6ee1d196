#include "server/service/rate_limiter.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/service/grpc_status.h"

namespace cohortd {
namespace {

constexpr absl::string_view kRejectionsName = "cohortd_limit_rejections_total";
constexpr absl::string_view kRejectionsHelp =
    "Calls refused by a limit (RESOURCE_EXHAUSTED), by limit and principal.";

std::string RetryText(absl::Duration d) {
  return absl::StrFormat(
      "retry after %d ms",
      absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1))));
}

}  // namespace

RateLimiter::StreamSlot& RateLimiter::StreamSlot::operator=(
    StreamSlot&& other) noexcept {
  if (this != &other) {
    if (limiter_ != nullptr) limiter_->Release(principal_);
    limiter_ = std::exchange(other.limiter_, nullptr);
    principal_ = std::move(other.principal_);
  }
  return *this;
}

RateLimiter::StreamSlot::~StreamSlot() {
  if (limiter_ != nullptr) limiter_->Release(principal_);
}

RateLimiter::RateLimiter(const LimitsSpec& limits, int64_t max_receive_bytes,
                         const Clock* clock, MetricsRegistry* metrics)
    : limits_(limits),
      clock_(clock),
      metrics_(metrics),
      open_streams_gauge_(metrics->GetGauge(
          "cohortd_limit_open_streams",
          "Ingest calls (Push, PushStream) in progress.", {})) {
  const std::pair<const char*, double> settings[] = {
      {"max_receive_bytes", static_cast<double>(max_receive_bytes)},
      {"max_threads", static_cast<double>(limits.max_threads)},
      {"max_streams", static_cast<double>(limits.max_streams)},
      {"max_streams_per_principal",
       static_cast<double>(limits.max_streams_per_principal)},
      {"keepalive_time_seconds", absl::ToDoubleSeconds(limits.keepalive_time)},
      {"keepalive_timeout_seconds",
       absl::ToDoubleSeconds(limits.keepalive_timeout)},
      {"max_connection_age_seconds",
       absl::ToDoubleSeconds(limits.max_connection_age)},
      {"max_connection_age_grace_seconds",
       absl::ToDoubleSeconds(limits.max_connection_age_grace)},
      {"ingest_rate", limits.ingest_rate},
      {"ingest_burst", limits.ingest_burst},
      {"query_rate", limits.query_rate},
      {"query_burst", limits.query_burst},
  };
  for (const auto& [name, value] : settings) {
    metrics
        ->GetGauge("cohortd_limit_setting",
                   "Configured limits (server.limits); rates per second, 0 "
                   "= unlimited.",
                   {{"limit", name}})
        ->Set(value);
  }
  open_streams_gauge_->Set(0);
}

LimitDecision RateLimiter::Refuse(absl::string_view limit,
                                  const std::string& principal,
                                  absl::Duration retry_after,
                                  std::string message) {
  metrics_
      ->GetCounter(kRejectionsName, kRejectionsHelp,
                   {{"limit", std::string(limit)}, {"principal", principal}})
      ->Increment();
  return {absl::ResourceExhaustedError(
              absl::StrCat(message, "; ", RetryText(retry_after))),
          retry_after};
}

LimitDecision RateLimiter::AcquireStream(const std::string& principal,
                                         StreamSlot* slot) {
  {
    absl::MutexLock lock(&mu_);
    int& mine = open_by_principal_[principal];
    if (open_streams_ < limits_.max_streams &&
        mine < limits_.max_streams_per_principal) {
      ++open_streams_;
      ++mine;
      open_streams_gauge_->Set(open_streams_);
      *slot = StreamSlot();
      slot->limiter_ = this;
      slot->principal_ = principal;
      return {};
    }
  }
  // Decided under the lock above; the message may be slightly stale.
  return Refuse(
      "streams", principal, absl::Seconds(1),
      absl::StrFormat("too many concurrent ingest calls (at most "
                      "%d in all, %d per principal; "
                      "server.limits.max_streams, "
                      "max_streams_per_principal)",
                      limits_.max_streams, limits_.max_streams_per_principal));
}

void RateLimiter::Release(const std::string& principal) {
  absl::MutexLock lock(&mu_);
  --open_streams_;
  --open_by_principal_[principal];
  open_streams_gauge_->Set(open_streams_);
}

TokenBucket* RateLimiter::Bucket(
    absl::flat_hash_map<std::string, std::unique_ptr<TokenBucket>>* buckets,
    const std::string& principal, double rate, double burst) {
  std::unique_ptr<TokenBucket>& bucket = (*buckets)[principal];
  if (bucket == nullptr) {
    bucket = std::make_unique<TokenBucket>(rate, burst, clock_);
  }
  return bucket.get();
}

LimitDecision RateLimiter::ChargeIngest(const std::string& principal,
                                        int64_t observations) {
  if (limits_.ingest_rate <= 0) return {};
  TokenBucket* bucket;
  {
    absl::MutexLock lock(&mu_);
    bucket =
        Bucket(&ingest_, principal, limits_.ingest_rate, limits_.ingest_burst);
  }
  const absl::Duration wait = bucket->TryTake(observations);
  if (wait == absl::ZeroDuration()) return {};
  return Refuse(
      "ingest_rate", principal, wait,
      absl::StrFormat("ingest rate limit of %g observations/s "
                      "(burst %g) reached for principal '%s' "
                      "(server.limits.ingest_rate)",
                      limits_.ingest_rate, limits_.ingest_burst, principal));
}

LimitDecision RateLimiter::ChargeQuery(const std::string& principal) {
  if (limits_.query_rate <= 0) return {};
  TokenBucket* bucket;
  {
    absl::MutexLock lock(&mu_);
    bucket =
        Bucket(&query_, principal, limits_.query_rate, limits_.query_burst);
  }
  const absl::Duration wait = bucket->TryTake(1);
  if (wait == absl::ZeroDuration()) return {};
  return Refuse(
      "query_rate", principal, wait,
      absl::StrFormat("query rate limit of %g queries/s (burst %g) "
                      "reached for principal '%s' "
                      "(server.limits.query_rate)",
                      limits_.query_rate, limits_.query_burst, principal));
}

grpc::Status ToGrpcStatusWithRetry(const LimitDecision& decision,
                                   grpc::ServerContext* context) {
  if (decision.ok()) return grpc::Status::OK;
  if (decision.retry_after != absl::InfiniteDuration()) {
    context->AddTrailingMetadata(
        "retry-after-ms", absl::StrCat(absl::ToInt64Milliseconds(absl::Ceil(
                              decision.retry_after, absl::Milliseconds(1)))));
  }
  return ToGrpcStatus(decision.status);
}

}  // namespace cohortd
