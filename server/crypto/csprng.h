// Cryptographically secure randomness for noise.
//
// Every noise sample in cohortd is decided by 64-bit words read from a
// `RandomWords` buffer, which is refilled from a `RandomSource`. In
// production the only source is OpenSSL's private DRBG (`RAND_priv_bytes`),
// reached through `SecureRandomWords()`, one buffer per thread. A failing
// source makes every draw fail (fail closed): there is no fallback PRNG.
//
// Tests inject a seeded deterministic source through the `RandomSource`
// interface; that source lives under tests/ and is not linked into the
// server (see tests/privacy/deterministic_random.h).
#ifndef COHORTD_SERVER_CRYPTO_CSPRNG_H_
#define COHORTD_SERVER_CRYPTO_CSPRNG_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

namespace cohortd {

// A source of uniformly random bytes.
class RandomSource {
 public:
  virtual ~RandomSource() = default;

  // Fills `words[0..count)` with independent uniform 64-bit words.
  // Errors: Internal (or Unavailable) when no randomness can be produced;
  // the content of `words` is then unspecified and must not be used.
  // Thread-safety: implementations say; the OpenSSL one is thread-safe.
  virtual absl::Status Fill(uint64_t* words, size_t count) = 0;
};

// The process-wide OpenSSL source (`RAND_priv_bytes`, the DRBG instance
// OpenSSL reserves for private values). Thread-safe; never null; lives for
// the whole process.
RandomSource& OpenSslRandomSource();

// A buffer of random words drawn from a source in blocks, so that a sampler
// pays one OpenSSL call per `kBufferWords` words rather than per word.
// Not thread-safe: one instance per thread (see SecureRandomWords()).
// Drawn words are never reused: each word is handed out at most once.
class RandomWords {
 public:
  static constexpr size_t kBufferWords = 512;

  // `source` is borrowed and must outlive this object.
  explicit RandomWords(RandomSource* source) : source_(source) {}
  RandomWords(const RandomWords&) = delete;
  RandomWords& operator=(const RandomWords&) = delete;

  // Stores the next uniform word in `*word` and returns true; returns false
  // (and leaves `*word` unchanged) when the source failed. A failure is
  // sticky: every later call fails too, and status() says why.
  bool Next(uint64_t* word) {
    if (pos_ == size_ && !Refill()) return false;
    *word = buffer_[pos_++];
    return true;
  }

  // OK, or the source's error that made Next() fail.
  const absl::Status& status() const { return status_; }

 private:
  bool Refill();

  RandomSource* source_;
  absl::Status status_;
  size_t pos_ = 0;
  size_t size_ = 0;
  uint64_t buffer_[kBufferWords];
};

// The calling thread's buffer over OpenSslRandomSource(). The only way
// production code obtains randomness for noise. Do not fork() after first
// use: a child would share the parent's buffered words.
RandomWords& SecureRandomWords();

}  // namespace cohortd

#endif  // COHORTD_SERVER_CRYPTO_CSPRNG_H_
