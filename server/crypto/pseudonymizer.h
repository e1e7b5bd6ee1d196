// Pseudonymisation of account ids with a keyed HMAC-SHA256, the key file
// that holds the server's pseudonymisation key, and the plain SHA-256 and
// hex helpers used for bearer-token hashes.
//
// Account ids are the privacy unit (DOMAIN.md): they are replaced on arrival
// by HMAC-SHA256(key, account_id) and never stored raw. The key never leaves
// this process; without it a pseudonym cannot be linked back to an account
// id even by someone who can enumerate candidate ids.
#ifndef COHORTD_SERVER_CRYPTO_PSEUDONYMIZER_H_
#define COHORTD_SERVER_CRYPTO_PSEUDONYMIZER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cohortd {

// A SHA-256 digest or an HMAC-SHA256 tag.
using Digest256 = std::array<uint8_t, 32>;

// Size of the pseudonymisation key: 256 bits, the HMAC-SHA256 output size
// (RFC 2104 section 3 recommends at least the output length).
inline constexpr size_t kPseudonymizationKeySize = 32;

// HMAC-SHA256 under one fixed key of any length (RFC 2104). The SHA-256
// states after the key's inner and outer pads are computed once; each
// Mac() copies them (a struct copy: no allocation, no context set-up, no
// reference counting), so a short message costs its two compressions and
// the outer one: ~6x less CPU than duplicating a keyed EVP_MAC_CTX per
// call (bench/ingest/rpc_path_bench), which showed in profiles as ~5% of
// the ingest RPC threads.
// Thread-safe: Mac() only reads the shared precomputed states.
class HmacSha256 {
 public:
  // Errors: InvalidArgument for an empty key; Internal if OpenSSL fails.
  static absl::StatusOr<std::unique_ptr<HmacSha256>> Create(
      absl::string_view key);

  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;
  ~HmacSha256();

  // HMAC-SHA256(key, message). Aborts only if OpenSSL's SHA-256 fails,
  // which it does not on a valid state.
  Digest256 Mac(absl::string_view message) const;

 private:
  // The SHA-256 states after absorbing the key's inner and outer pads
  // (defined in the .cc so that includers need no OpenSSL header); never
  // updated after Create().
  struct PadStates;

  explicit HmacSha256(std::unique_ptr<PadStates> states);

  std::unique_ptr<PadStates> states_;
};

// Turns account ids into pseudonyms under the server's 32-byte key.
// Thread-safe.
class Pseudonymizer {
 public:
  // `key` must be exactly kPseudonymizationKeySize bytes (normally from
  // LoadOrCreateKeyFile). Errors: InvalidArgument for any other size.
  static absl::StatusOr<std::unique_ptr<Pseudonymizer>> Create(
      absl::string_view key);

  // HMAC-SHA256(key, account_id). Deterministic for a given key, so the
  // same account always gets the same pseudonym.
  Digest256 Pseudonymize(absl::string_view account_id) const {
    return hmac_->Mac(account_id);
  }

 private:
  explicit Pseudonymizer(std::unique_ptr<HmacSha256> hmac)
      : hmac_(std::move(hmac)) {}

  std::unique_ptr<HmacSha256> hmac_;
};

// Returns the kPseudonymizationKeySize-byte key stored at `path`. When the
// file does not exist, creates it (and its parent folders) from
// RAND_priv_bytes with O_CREAT|O_EXCL and mode 0600, and fsyncs file and
// folder before returning, so a key that pseudonymised stored data is never
// lost to a crash.
// Errors: FailedPrecondition when the file has the wrong size, is not a
// regular file, or is readable or writable by group or others (the message
// names the path and the fix); PermissionDenied / other errno-derived codes
// when it cannot be read or created.
// Thread-compatible: concurrent first calls from two processes are safe
// (O_EXCL lets one create; the other reads the winner's key).
absl::StatusOr<std::string> LoadOrCreateKeyFile(const std::string& path);

// SHA-256 of `data` (used for bearer-token hashes).
Digest256 Sha256(absl::string_view data);

// Lower-case hex of `bytes`, two digits per byte.
std::string HexEncode(absl::string_view bytes);
std::string HexEncode(const Digest256& digest);

// Parses exactly 64 hex digits (either case) into a digest. Returns false,
// leaving `out` unspecified, for any other input.
bool ParseHexDigest256(absl::string_view hex, Digest256* out);

}  // namespace cohortd

#endif  // COHORTD_SERVER_CRYPTO_PSEUDONYMIZER_H_
