// The registry of key prefixes in the Store, and builders for the keys
// whose layout storage/ owns. Every durable key starts with one of the
// prefixes below, so a new module claims its prefix here and nowhere else,
// and one prefix scan never sees another module's keys.
//
// Key components (dataset names, session ids) are client- or
// config-supplied and may contain any byte, including the '/' separator.
// They are escaped with EscapeKeyComponent(): '%' becomes "%25" and '/'
// becomes "%2F", so an escaped component never contains '/'. That keeps
// keys unambiguous, makes "s/<dataset>/" an exact prefix of that dataset's
// sessions (dataset "a" never scans dataset "a/b"), and leaves keys
// readable in `ldb scan` dumps.
#ifndef COHORTD_SERVER_STORAGE_KEYS_H_
#define COHORTD_SERVER_STORAGE_KEYS_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace cohortd {
namespace keys {

// Store metadata, owned by storage/.
inline constexpr absl::string_view kMetaPrefix = "m/";
// The storage format version, as decimal ASCII. Written when a store is
// created; an implementation refuses to open a store whose version it does
// not know, so a later format change can migrate instead of misreading.
inline constexpr absl::string_view kFormatVersionKey = "m/format_version";
// The format this build writes and reads.
//   1: one merged record per session, "s/<dataset>/<session_id>" ->
//      cohortd.internal.StoredSession (every source in one value).
//   2: one key per (session, source) contribution plus a small header per
//      session (see "Session records" below), so a push costs O(its own
//      size) whatever the session holds.
inline constexpr int64_t kStorageFormatVersion = 2;
// The oldest format the server migrates at open (ingest/session_migration.h);
// a store older than this is refused.
inline constexpr int64_t kOldestMigratableFormatVersion = 1;

// Session records (format 2; ingest/ owns the value encodings):
//   "s/<dataset>/<session_id>/"          -> StoredSessionHeader
//   "s/<dataset>/<session_id>/<source>"  -> SourceContribution
// every component escaped. The header key is the session's prefix itself,
// so it sorts first, and all of one session's keys are one contiguous
// range: an escaped session id holds no '/', so no other session's key
// starts with "s/<dataset>/<session_id>/". That is what lets the index
// build merge a session in one pass over a single prefix scan, and lets
// the erasure path delete a session with one prefix (SessionRecordPrefix).
// Validation requires a non-empty source, so no contribution key equals
// the header key.
inline constexpr absl::string_view kSessionPrefix = "s/";

// Reserved for the query issue; claimed here so no one else takes them.
inline constexpr absl::string_view kBudgetLedgerPrefix = "b/";  // DP budget
inline constexpr absl::string_view kReleasePrefix = "r/";       // releases
inline constexpr absl::string_view kAuditPrefix = "a/";         // audit log
// Formerly per-month data versions (bumped by ingest for the release
// cache, which now keys on sealed snapshots, index/snapshot.h); no longer
// written, and kept reserved so old stores never meet a new meaning.
inline constexpr absl::string_view kDataVersionPrefix = "v/";
// The sealed columnar index of each dataset (index/sealed_index.h):
// "x/<escaped dataset>/h" -> header, "x/<escaped dataset>/c/<chunk as 8
// decimal digits>" -> the image's chunks.
inline constexpr absl::string_view kSealedIndexPrefix = "x/";

// '%' -> "%25", '/' -> "%2F"; every other byte unchanged. Injective, so
// distinct components give distinct keys.
std::string EscapeKeyComponent(absl::string_view component);
// Appends EscapeKeyComponent(component) to *out (no temporary string).
void AppendEscapedKeyComponent(absl::string_view component, std::string* out);

// Inverse of EscapeKeyComponent. Returns false on input it cannot have
// produced ('/', or '%' not followed by "25" or "2F").
bool UnescapeKeyComponent(absl::string_view escaped, std::string* out);

// Format 1 only (read by the migration and by tests that build a format-1
// store): "s/<escaped dataset>/<escaped session_id>".
std::string SessionKey(absl::string_view dataset, absl::string_view session_id);

// Format 2: "s/<escaped dataset>/<escaped session_id>/", the key of the
// session's header and the prefix of every key of that session (header and
// contributions). Deleting a session = deleting every key under it.
std::string SessionRecordPrefix(absl::string_view dataset,
                                absl::string_view session_id);
inline std::string SessionHeaderKey(absl::string_view dataset,
                                    absl::string_view session_id) {
  return SessionRecordPrefix(dataset, session_id);
}

// Format 2: "s/<escaped dataset>/<escaped session_id>/<escaped source>".
std::string ContributionKey(absl::string_view dataset,
                            absl::string_view session_id,
                            absl::string_view source);

// Splits a format-2 session key. Sets *source to "" for a header key.
// Returns false for any other key (including format-1 keys).
bool ParseSessionRecordKey(absl::string_view key, std::string* dataset,
                           std::string* session_id, std::string* source);

// "s/<escaped dataset>/": the prefix of exactly that dataset's sessions.
std::string SessionPrefix(absl::string_view dataset);

// The last ingest sequence number written, as decimal ASCII (ingest/).
inline constexpr absl::string_view kIngestSequenceKey = "m/ingest_sequence";
inline std::string IngestSequenceKey() {
  return std::string(kIngestSequenceKey);
}

// Splits a key built by SessionKey (format 1). Returns false for any other
// key, format-2 keys included.
bool ParseSessionKey(absl::string_view key, std::string* dataset,
                     std::string* session_id);

// --- Release journal (ledger/release_journal.h) ----------------------------
// Budget ledger: what has been spent, as a cohortd.internal.StoredBudgetSpent.
// "b/<escaped dataset>/d" for the dataset as a whole and
// "b/<escaped dataset>/p/<escaped principal>" per principal.
std::string DatasetBudgetKey(absl::string_view dataset);
std::string PrincipalBudgetKey(absl::string_view dataset,
                               absl::string_view principal);

// Splits a key built by DatasetBudgetKey (sets *principal to "" and
// *is_dataset to true) or PrincipalBudgetKey. Returns false for any other
// key.
bool ParseBudgetKey(absl::string_view key, std::string* dataset,
                    bool* is_dataset, std::string* principal);

// "r/<escaped dataset>/<request_hash_hex>" -> cohortd.internal.StoredRelease:
// the release cache, keyed by the hex SHA-256 of the canonical request.
std::string ReleaseKey(absl::string_view dataset,
                       absl::string_view request_hash_hex);

// "a/<sequence as 20 zero-padded decimal digits>" ->
// cohortd.internal.StoredAuditEntry. Zero padding makes key order sequence
// order, so a scan of kAuditPrefix walks the chain from entry 1.
std::string AuditKey(uint64_t sequence);

// Inverse of AuditKey. Returns false for any other key.
bool ParseAuditKey(absl::string_view key, uint64_t* sequence);

}  // namespace keys
}  // namespace cohortd

#endif  // COHORTD_SERVER_STORAGE_KEYS_H_
