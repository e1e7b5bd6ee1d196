#include "server/common/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace cohortd {

TokenBucket::TokenBucket(double rate, double burst, const Clock* clock)
    : rate_(rate),
      burst_(burst),
      clock_(clock),
      tokens_(burst),
      last_refill_(clock->Now()) {}

void TokenBucket::Refill() const {
  const absl::Time now = clock_->Now();
  // A clock that steps back earns nothing rather than taking tokens away.
  if (now > last_refill_) {
    const double earned = absl::ToDoubleSeconds(now - last_refill_) * rate_;
    tokens_ = std::min(burst_, tokens_ + earned);
    last_refill_ = now;
  }
}

absl::Duration TokenBucket::TryTake(double n) {
  if (n > burst_) return absl::InfiniteDuration();
  absl::MutexLock lock(&mu_);
  Refill();
  if (tokens_ >= n) {
    tokens_ -= n;
    return absl::ZeroDuration();
  }
  // Round up to whole microseconds so that waiting the returned time is
  // always enough.
  const double seconds = (n - tokens_) / rate_;
  return absl::Microseconds(std::ceil(seconds * 1e6));
}

double TokenBucket::Available() const {
  absl::MutexLock lock(&mu_);
  Refill();
  return tokens_;
}

}  // namespace cohortd
