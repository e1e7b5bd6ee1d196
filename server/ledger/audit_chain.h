// The hash chain of the audit log: how one entry's hash is computed from
// its fields and its predecessor's hash, and how a stored entry is checked
// against its place in the chain. Pure functions; the release journal
// (release_journal.h) stores the entries.
//
// hash(entry) = SHA-256 of the concatenation of
//   "cohortd.audit.v1"        16 ASCII bytes, a domain tag (no length)
//   prev_hash                 32 bytes; all zero for sequence 1
//   sequence                  uint64, big-endian
//   release_id                uint64 big-endian byte length, then the bytes
//   principal                 ditto
//   dataset                   ditto
//   canonical_request         ditto (the canonical request JSON)
//   cost_epsilon              IEEE-754 binary64 bit pattern, uint64 BE
//   cost_delta                ditto
//   cost_rho                  ditto
//   time_unix_seconds         int64, two's complement, big-endian
//   time_nanos                int32, two's complement, big-endian
// A cache-hit entry (kind AUDIT_CACHE_HIT: a stored release served again,
// cost zero) continues with
//   "cache_hit"               uint64 big-endian byte length, then the bytes
// An erasure entry (entry.has_erasure()) continues with
//   "erasure"                 uint64 big-endian byte length, then the bytes
//   erasure.reason            ditto
//   erasure.sessions_deleted  int64, two's complement, big-endian
// so a release entry hashes exactly as it always did.
// Every variable-length field is length-prefixed, so no two distinct
// entries encode to the same bytes; the same definition is in
// docs/audit.md for anyone re-verifying an exported log.
#ifndef COHORTD_SERVER_LEDGER_AUDIT_CHAIN_H_
#define COHORTD_SERVER_LEDGER_AUDIT_CHAIN_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "cohortd/internal/storage.pb.h"

namespace cohortd {

inline constexpr size_t kAuditHashSize = 32;

// The prev_hash of entry 1: 32 zero bytes.
std::string AuditGenesisHash();

// The exact bytes hashed for `entry` (its `hash` field is ignored), as
// defined in the file comment. Exposed for tests and docs examples.
std::string AuditHashInput(const internal::StoredAuditEntry& entry);

// SHA-256 of AuditHashInput(entry): 32 raw bytes.
std::string ComputeAuditHash(const internal::StoredAuditEntry& entry);

// Checks that `entry`, stored under the key of `key_sequence`, is the
// chain's entry number `expected_sequence` following a predecessor whose
// hash is `expected_prev_hash`: the key and the entry carry that
// sequence, prev_hash links to the predecessor, and the stored hash is the
// recomputed one. Errors: DataLoss whose message starts with
// "entry <expected_sequence>: " and says which check failed.
absl::Status CheckAuditLink(uint64_t expected_sequence,
                            absl::string_view expected_prev_hash,
                            uint64_t key_sequence,
                            const internal::StoredAuditEntry& entry);

}  // namespace cohortd

#endif  // COHORTD_SERVER_LEDGER_AUDIT_CHAIN_H_
