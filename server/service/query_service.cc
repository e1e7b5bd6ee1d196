#include "server/service/query_service.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/logging.h"
#include "server/service/grpc_status.h"
#include "server/service/ingest_service.h"
#include "server/service/rpc_metrics.h"

namespace cohortd {

grpc::Status QueryService::ChargeQuery(grpc::ServerContext* context,
                                       const std::string& principal) {
  if (limiter_ == nullptr) return grpc::Status::OK;
  return ToGrpcStatusWithRetry(limiter_->ChargeQuery(principal), context);
}

grpc::Status QueryService::Aggregate(
    grpc::ServerContext* context, const cohortd::v1::AggregateRequest* request,
    cohortd::v1::AggregateResponse* response) {
  RpcRecorder recorder(metrics_, "Aggregate");
  auto principal = auth_->Authorize(AuthorizationHeader(*context),
                                    {Role::kAnalyst, Role::kAdmin});
  if (!principal.ok()) {
    return recorder.Finish(ToGrpcStatus(principal.status()));
  }
  if (grpc::Status s = ChargeQuery(context, (*principal)->name); !s.ok()) {
    return recorder.Finish(s);
  }
  auto result = engine_->Aggregate((*principal)->name, *request);
  if (!result.ok()) return recorder.Finish(ToGrpcStatus(result.status()));
  *response = *std::move(result);
  return recorder.Finish(grpc::Status::OK);
}

grpc::Status QueryService::DescribeDataset(
    grpc::ServerContext* context,
    const cohortd::v1::DescribeDatasetRequest* request,
    cohortd::v1::DatasetDescription* response) {
  RpcRecorder recorder(metrics_, "DescribeDataset");
  auto principal =
      auth_->Authorize(AuthorizationHeader(*context),
                       {Role::kAnalyst, Role::kAdmin, Role::kIngest});
  if (!principal.ok()) {
    return recorder.Finish(ToGrpcStatus(principal.status()));
  }
  if (grpc::Status s = ChargeQuery(context, (*principal)->name); !s.ok()) {
    return recorder.Finish(s);
  }
  auto result = cohortd::DescribeDataset(*config_, request->dataset());
  if (!result.ok()) return recorder.Finish(ToGrpcStatus(result.status()));
  *response = *std::move(result);
  return recorder.Finish(grpc::Status::OK);
}

grpc::Status QueryService::GetBudget(
    grpc::ServerContext* context, const cohortd::v1::GetBudgetRequest* request,
    cohortd::v1::Budget* response) {
  RpcRecorder recorder(metrics_, "GetBudget");
  auto principal = auth_->Authorize(AuthorizationHeader(*context),
                                    {Role::kAnalyst, Role::kAdmin});
  if (!principal.ok()) {
    return recorder.Finish(ToGrpcStatus(principal.status()));
  }
  if (grpc::Status s = ChargeQuery(context, (*principal)->name); !s.ok()) {
    return recorder.Finish(s);
  }
  auto result = journal_->GetBudget((*principal)->name, request->dataset());
  if (!result.ok()) return recorder.Finish(ToGrpcStatus(result.status()));
  *response = *std::move(result);
  return recorder.Finish(grpc::Status::OK);
}

grpc::Status AdminService::ListAudit(
    grpc::ServerContext* context, const cohortd::v1::ListAuditRequest* request,
    cohortd::v1::ListAuditResponse* response) {
  RpcRecorder recorder(metrics_, "ListAudit");
  auto principal =
      auth_->Authorize(AuthorizationHeader(*context), {Role::kAdmin});
  if (!principal.ok()) {
    return recorder.Finish(ToGrpcStatus(principal.status()));
  }
  auto result =
      journal_->ListAudit(request->start_sequence(), request->limit());
  if (!result.ok()) return recorder.Finish(ToGrpcStatus(result.status()));
  *response = *std::move(result);
  return recorder.Finish(grpc::Status::OK);
}

grpc::Status AdminService::DeleteAccount(
    grpc::ServerContext* context,
    const cohortd::v1::DeleteAccountRequest* request,
    cohortd::v1::DeleteAccountResponse* response) {
  RpcRecorder recorder(metrics_, "DeleteAccount");
  auto principal =
      auth_->Authorize(AuthorizationHeader(*context), {Role::kAdmin});
  if (!principal.ok()) {
    return recorder.Finish(ToGrpcStatus(principal.status()));
  }
  absl::StatusOr<int64_t> deleted = eraser_->DeleteAccount(
      (*principal)->name, request->dataset(), request->account_id());
  if (!deleted.ok()) return recorder.Finish(ToGrpcStatus(deleted.status()));
  // Counts only: the account id is never logged.
  LogInfo("admin", "%s erased one account: %d session(s) of dataset %s",
          (*principal)->name, *deleted, request->dataset());
  response->set_sessions_deleted(*deleted);
  return recorder.Finish(grpc::Status::OK);
}

grpc::Status AdminService::Backup(grpc::ServerContext* context,
                                  const cohortd::v1::BackupRequest* request,
                                  cohortd::v1::BackupResponse* response) {
  RpcRecorder recorder(metrics_, "Backup");
  auto principal =
      auth_->Authorize(AuthorizationHeader(*context), {Role::kAdmin});
  if (!principal.ok()) {
    return recorder.Finish(ToGrpcStatus(principal.status()));
  }
  if (request->directory().empty()) {
    return recorder.Finish(ToGrpcStatus(absl::InvalidArgumentError(
        "directory: name an absent or empty folder on the server, as an "
        "absolute path")));
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<uint64_t> bytes = store_->Backup(request->directory());
  if (!bytes.ok()) return recorder.Finish(ToGrpcStatus(bytes.status()));
  LogInfo("admin", "%s backed up the store to %s: %d bytes in %s",
          (*principal)->name, request->directory(), *bytes,
          absl::FormatDuration(absl::Now() - start));
  response->set_directory(request->directory());
  response->set_bytes(static_cast<int64_t>(*bytes));
  return recorder.Finish(grpc::Status::OK);
}

grpc::Status AdminService::SealSnapshot(
    grpc::ServerContext* context,
    const cohortd::v1::SealSnapshotRequest* request,
    cohortd::v1::SealSnapshotResponse* response) {
  RpcRecorder recorder(metrics_, "SealSnapshot");
  auto principal =
      auth_->Authorize(AuthorizationHeader(*context), {Role::kAdmin});
  if (!principal.ok()) {
    return recorder.Finish(ToGrpcStatus(principal.status()));
  }
  if (snapshots_ == nullptr) {
    return recorder.Finish(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "snapshots not ready"));
  }
  std::vector<std::string> datasets;
  if (request->dataset().empty()) {
    datasets = snapshots_->Datasets();
  } else {
    datasets.push_back(request->dataset());
  }
  absl::Time sealed_at = absl::InfinitePast();
  for (const std::string& dataset : datasets) {
    absl::StatusOr<Snapshot> snapshot = snapshots_->Seal(dataset);
    if (!snapshot.ok()) {
      return recorder.Finish(ToGrpcStatus(snapshot.status()));
    }
    sealed_at = std::max(sealed_at, snapshot->sealed_at);
  }
  const int64_t seconds = absl::ToUnixSeconds(sealed_at);
  response->mutable_sealed_at()->set_seconds(seconds);
  response->mutable_sealed_at()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(sealed_at - absl::FromUnixSeconds(seconds))));
  LogInfo("admin", "%s sealed %s", (*principal)->name,
          request->dataset().empty() ? "every dataset" : request->dataset());
  return recorder.Finish(grpc::Status::OK);
}

}  // namespace cohortd
