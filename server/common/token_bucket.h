// TokenBucket: a rate limit that allows bursts, for per-principal ingest
// and query limits (server/service/rate_limiter.h). Time comes from an
// injected Clock, so tests are hermetic.
#ifndef COHORTD_SERVER_COMMON_TOKEN_BUCKET_H_
#define COHORTD_SERVER_COMMON_TOKEN_BUCKET_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"

namespace cohortd {

// Holds up to `burst` tokens, refilled continuously at `rate` per second;
// starts full. Thread-safe.
class TokenBucket {
 public:
  // rate > 0, burst > 0. `clock` is borrowed and must outlive the bucket.
  TokenBucket(double rate, double burst, const Clock* clock);

  // Takes `n` (>= 0) tokens when the bucket holds that many and returns
  // zero; otherwise takes nothing and returns how long until it will hold
  // `n` (if nothing else takes tokens meanwhile). `n` above `burst` can
  // never pass: returns absl::InfiniteDuration().
  absl::Duration TryTake(double n);

  // Tokens held now (for metrics and tests).
  double Available() const;

 private:
  // Adds the tokens earned since last_refill_.
  void Refill() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const double rate_;
  const double burst_;
  const Clock* const clock_;
  mutable absl::Mutex mu_;
  mutable double tokens_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time last_refill_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_COMMON_TOKEN_BUCKET_H_
