#include "server/ledger/audit_chain.h"

#include "absl/strings/str_cat.h"
#include "server/common/hash_input.h"
#include "server/crypto/pseudonymizer.h"

namespace cohortd {
namespace {

using hash_input::AppendBytes;
using hash_input::AppendDouble;
using hash_input::AppendUint32;
using hash_input::AppendUint64;

constexpr absl::string_view kDomainTag = "cohortd.audit.v1";

}  // namespace

std::string AuditGenesisHash() { return std::string(kAuditHashSize, '\0'); }

std::string AuditHashInput(const internal::StoredAuditEntry& entry) {
  std::string in;
  in.append(kDomainTag.data(), kDomainTag.size());
  in.append(entry.prev_hash());
  AppendUint64(entry.sequence(), &in);
  AppendBytes(entry.release_id(), &in);
  AppendBytes(entry.principal(), &in);
  AppendBytes(entry.dataset(), &in);
  AppendBytes(entry.canonical_request(), &in);
  AppendDouble(entry.cost_epsilon(), &in);
  AppendDouble(entry.cost_delta(), &in);
  AppendDouble(entry.cost_rho(), &in);
  AppendUint64(static_cast<uint64_t>(entry.time_unix_seconds()), &in);
  AppendUint32(static_cast<uint32_t>(entry.time_nanos()), &in);
  if (entry.kind() == internal::AUDIT_CACHE_HIT) {
    // A tagged extension after the fixed layout, which is self-delimiting:
    // a release (and every entry written before kinds existed) hashes
    // exactly as it always did, and a hit cannot pass for a release.
    AppendBytes("cache_hit", &in);
  }
  if (entry.has_erasure()) {
    // A tagged extension after the fixed layout (and after "cache_hit",
    // were both ever present): an erasure cannot pass for a release.
    AppendBytes("erasure", &in);
    AppendBytes(entry.erasure().reason(), &in);
    AppendUint64(static_cast<uint64_t>(entry.erasure().sessions_deleted()),
                 &in);
  }
  return in;
}

std::string ComputeAuditHash(const internal::StoredAuditEntry& entry) {
  const Digest256 digest = Sha256(AuditHashInput(entry));
  return std::string(reinterpret_cast<const char*>(digest.data()),
                     digest.size());
}

absl::Status CheckAuditLink(uint64_t expected_sequence,
                            absl::string_view expected_prev_hash,
                            uint64_t key_sequence,
                            const internal::StoredAuditEntry& entry) {
  const std::string where = absl::StrCat("entry ", expected_sequence, ": ");
  if (key_sequence != expected_sequence) {
    return absl::DataLossError(absl::StrCat(
        where, "missing (the next stored entry is ", key_sequence, ")"));
  }
  if (entry.sequence() != expected_sequence) {
    return absl::DataLossError(absl::StrCat(
        where, "stored under its key but says sequence ", entry.sequence()));
  }
  if (entry.prev_hash() != expected_prev_hash) {
    return absl::DataLossError(
        absl::StrCat(where, "prev_hash ", HexEncode(entry.prev_hash()),
                     " does not match the hash of the previous entry ",
                     HexEncode(expected_prev_hash)));
  }
  if (entry.hash() != ComputeAuditHash(entry)) {
    return absl::DataLossError(absl::StrCat(where, "stored hash ",
                                            HexEncode(entry.hash()),
                                            " does not match its contents"));
  }
  return absl::OkStatus();
}

}  // namespace cohortd
