// TeeListener: hands every commit and deletion to two IngestListeners in
// turn, the second first (e.g. the ClickHouse backend's outbox, then the
// snapshot index, which tells the backend under its buffer lock that the
// change is buffered: SealObserver), so both have seen a push before it
// is acknowledged. Borrows both; they must
// outlive it. Thread-safety: as the listeners'.
#ifndef COHORTD_SERVER_BACKEND_TEE_LISTENER_H_
#define COHORTD_SERVER_BACKEND_TEE_LISTENER_H_

#include <vector>

#include "server/ingest/ingestor.h"

namespace cohortd {

class TeeListener : public IngestListener {
 public:
  TeeListener(IngestListener* first, IngestListener* second)
      : first_(first), second_(second) {}

  void OnCommitted(const DatasetSpec& dataset,
                   const std::vector<CommittedSession>& sessions) override {
    second_->OnCommitted(dataset, sessions);
    first_->OnCommitted(dataset, sessions);
  }
  // The second reads the deltas before the first may move from them.
  void OnCommittedMoved(const DatasetSpec& dataset,
                        std::vector<CommittedSession>* sessions) override {
    second_->OnCommitted(dataset, *sessions);
    first_->OnCommittedMoved(dataset, sessions);
  }
  absl::Status Admit() const override {
    absl::Status first = first_->Admit();
    return first.ok() ? second_->Admit() : first;
  }
  bool WantsResent() const override {
    return first_->WantsResent() || second_->WantsResent();
  }
  void OnResent(const DatasetSpec& dataset,
                const std::vector<CommittedSession>& sessions) override {
    second_->OnResent(dataset, sessions);
    first_->OnResent(dataset, sessions);
  }
  void OnDeleted(const DatasetSpec& dataset,
                 const std::vector<DeletedSession>& sessions) override {
    second_->OnDeleted(dataset, sessions);
    first_->OnDeleted(dataset, sessions);
  }

 private:
  IngestListener* const first_;
  IngestListener* const second_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_BACKEND_TEE_LISTENER_H_
