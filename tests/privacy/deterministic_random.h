// A seeded, deterministic RandomSource for TESTS ONLY (xoshiro256**
// seeded through SplitMix64; Blackman & Vigna 2018). It is statistically
// good and fast, but predictable: it lives under tests/ in the test-only
// target `cohortd_test_random`, which no server target links.
#ifndef COHORTD_TESTS_PRIVACY_DETERMINISTIC_RANDOM_H_
#define COHORTD_TESTS_PRIVACY_DETERMINISTIC_RANDOM_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "server/crypto/csprng.h"

namespace cohortd::testing {

// Same seed, same words. Not thread-safe.
class DeterministicRandom final : public RandomSource {
 public:
  explicit DeterministicRandom(uint64_t seed);
  absl::Status Fill(uint64_t* words, size_t count) override;

 private:
  uint64_t s_[4];
};

}  // namespace cohortd::testing

#endif  // COHORTD_TESTS_PRIVACY_DETERMINISTIC_RANDOM_H_
