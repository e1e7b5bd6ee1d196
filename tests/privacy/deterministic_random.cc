#include "tests/privacy/deterministic_random.h"

namespace cohortd::testing {
namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

DeterministicRandom::DeterministicRandom(uint64_t seed) {
  for (uint64_t& s : s_) s = SplitMix64(seed);
}

absl::Status DeterministicRandom::Fill(uint64_t* words, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    words[i] = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
  }
  return absl::OkStatus();
}

}  // namespace cohortd::testing
