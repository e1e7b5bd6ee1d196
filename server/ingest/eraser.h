// AccountEraser: Admin.DeleteAccount's core. Deletes every session of one
// account, found by its pseudonym (the raw id is HMAC'd exactly as ingest
// does and then forgotten), through the ingestor's committer, with the
// audit entry written atomically with the deletion.
//
// What an erasure means for releases made before it is in README.md
// ("Erasure and retention"): they stay released; the deletion reaches
// answers at the next seal, which changes the release cache's key, so the
// cache never serves a pre-erasure answer as describing the data after it.
#ifndef COHORTD_SERVER_INGEST_ERASER_H_
#define COHORTD_SERVER_INGEST_ERASER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/config/config.h"
#include "server/crypto/pseudonymizer.h"
#include "server/ingest/ingestor.h"
#include "server/storage/store.h"

namespace cohortd {

// Records a deletion in the audit log as part of its write: adds the entry
// for (`principal`, `dataset`, `reason`, `sessions` deleted) to `batch`,
// calls `write()` once and returns its status (the shape of
// ReleaseJournal::CommitErasure, which server wiring binds here; ingest/
// does not depend on query/).
using ErasureAuditor = std::function<absl::Status(
    const std::string& principal, const std::string& dataset,
    absl::string_view reason, int64_t sessions, WriteBatch* batch,
    const std::function<absl::Status()>& write)>;

// The audit reasons.
inline constexpr absl::string_view kErasureReasonDeleteAccount =
    "delete_account";
inline constexpr absl::string_view kErasureReasonRetention = "retention";

class AccountEraser {
 public:
  // Pointers are borrowed and must outlive the eraser. `auditor` may be
  // empty (tests): then nothing is audited.
  AccountEraser(const Config* config, Ingestor* ingestor,
                const Pseudonymizer* pseudonymizer, ErasureAuditor auditor)
      : config_(config),
        ingestor_(ingestor),
        pseudonymizer_(pseudonymizer),
        auditor_(std::move(auditor)) {}

  // Deletes every session of `account_id` (raw) in `dataset` on behalf of
  // `principal`, and audits it with the count (also when it is 0: the
  // request itself is on record). Returns the number of sessions deleted.
  // Errors: InvalidArgument for an empty account_id or an unknown dataset
  // (naming the configured ones); as Ingestor::DeleteSessions.
  // Thread-safe.
  absl::StatusOr<int64_t> DeleteAccount(const std::string& principal,
                                        const std::string& dataset,
                                        const std::string& account_id) const;

 private:
  const Config* const config_;
  Ingestor* const ingestor_;
  const Pseudonymizer* const pseudonymizer_;
  const ErasureAuditor auditor_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_INGEST_ERASER_H_
