#include "tools/cohortctl/audit_format.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tools/cohortctl/aggregate_format.h"

namespace cohortd::cohortctl {
namespace {

// Twelve hex digits identify an entry's hash well enough to compare it by
// eye with a copy kept elsewhere.
constexpr size_t kShortHashBytes = 6;

std::string FormatTime(const google::protobuf::Timestamp& time) {
  return absl::FormatTime(
      "%Y-%m-%dT%H:%M:%SZ",
      absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos()),
      absl::UTCTimeZone());
}

}  // namespace

std::string FormatAudit(const cohortd::v1::ListAuditResponse& response) {
  std::string out;
  for (const auto& entry : response.entries()) {
    const std::string& hash = entry.hash();
    if (entry.has_erasure()) {
      absl::StrAppend(
          &out, "#", entry.sequence(), " ", FormatTime(entry.time()),
          " principal=", entry.principal(), " dataset=", entry.dataset(),
          " ERASURE ", entry.erasure().reason(),
          " sessions_deleted=", entry.erasure().sessions_deleted(),
          " hash=", absl::BytesToHexString(hash.substr(0, kShortHashBytes)),
          "\n");
      continue;
    }
    absl::StrAppend(
        &out, "#", entry.sequence(), " ", FormatTime(entry.time()),
        " principal=", entry.principal(), " dataset=", entry.dataset(),
        // A cache hit: the stored release `release_id` served, free.
        entry.kind() == cohortd::v1::AuditEntry::CACHE_HIT ? " cache-hit" : "",
        " release=", entry.release_id(), " cost ", FormatCost(entry.cost()),
        " hash=", absl::BytesToHexString(hash.substr(0, kShortHashBytes)), "\n",
        "    request ", entry.canonical_request(), "\n");
  }
  if (response.entries_size() == 0) out += "no entries\n";
  if (response.chain_valid()) {
    absl::StrAppend(&out, "chain: valid (", response.entries_verified(),
                    " entries verified; ", response.total_entries(),
                    " in the log)\n");
  } else {
    absl::StrAppend(&out, "chain: INVALID: ", response.chain_error(), " (",
                    response.entries_verified(), " entries verified; ",
                    response.total_entries(), " in the log)\n");
  }
  return out;
}

}  // namespace cohortd::cohortctl
