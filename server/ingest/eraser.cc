#include "server/ingest/eraser.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cohortd {

absl::StatusOr<int64_t> AccountEraser::DeleteAccount(
    const std::string& principal, const std::string& dataset,
    const std::string& account_id) const {
  if (config_->FindDataset(dataset) == nullptr) {
    std::vector<std::string> names;
    for (const DatasetSpec& d : config_->datasets) names.push_back(d.name);
    return absl::InvalidArgumentError(
        absl::StrCat("dataset: unknown dataset '", dataset.substr(0, 64),
                     "'; datasets: ", absl::StrJoin(names, ", ")));
  }
  if (account_id.empty()) {
    return absl::InvalidArgumentError(
        "account_id: must name the account to erase (the raw id, as pushed)");
  }
  // The same HMAC as ingest (Ingestor::Push), so the stored pseudonym
  // matches; the raw id goes no further than this function.
  const Digest256 digest = pseudonymizer_->Pseudonymize(account_id);
  std::string pseudonym(reinterpret_cast<const char*>(digest.data()),
                        digest.size());
  SessionPredicate of_account =
      [pseudonym = std::move(pseudonym)](const DeletedSession& session) {
        return session.account_pseudonym == pseudonym;
      };
  DeletionWriter writer;
  if (auditor_) {
    writer = [this, &principal, &dataset](
                 int64_t sessions, WriteBatch* batch,
                 const std::function<absl::Status()>& write) {
      return auditor_(principal, dataset, kErasureReasonDeleteAccount, sessions,
                      batch, write);
    };
  }
  return ingestor_->DeleteSessions(dataset, std::move(of_account),
                                   std::move(writer));
}

}  // namespace cohortd
