#include "server/ingest/session_merge.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/storage/keys.h"

namespace cohortd {

using ::cohortd::internal::SourceContribution;
using ::cohortd::internal::StoredSession;
using ::cohortd::internal::StoredSessionHeader;

void SessionMerger::Reset() {
  labels_.clear();
  measures_.clear();
}

bool SessionMerger::Overrides(const Pick& pick, uint64_t sequence,
                              absl::string_view source) {
  if (sequence != pick.sequence) return sequence > pick.sequence;
  return source > pick.source;
}

void SessionMerger::Add(absl::string_view source,
                        const SourceContribution& contribution) {
  const uint64_t sequence = contribution.sequence();
  for (const auto& [name, value] : contribution.labels()) {
    auto [it, inserted] = labels_.try_emplace(name);
    if (inserted || Overrides(it->second, sequence, source)) {
      it->second.sequence = sequence;
      it->second.source.assign(source.data(), source.size());
      it->second.label = value;
    }
  }
  for (const auto& [name, value] : contribution.measures()) {
    auto [it, inserted] = measures_.try_emplace(name);
    if (inserted || Overrides(it->second, sequence, source)) {
      it->second.sequence = sequence;
      it->second.source.assign(source.data(), source.size());
      it->second.measure = value;
    }
  }
}

void SessionMerger::Finish(CommittedSession* out) const {
  out->labels.clear();
  out->measures.clear();
  for (const auto& [name, pick] : labels_) {
    out->labels.emplace_back(name, pick.label);
  }
  for (const auto& [name, pick] : measures_) {
    out->measures.emplace_back(name, pick.measure);
  }
}

CommittedSession CommittedSession::FromRecord(absl::string_view session_id,
                                              const StoredSession& record) {
  SessionMerger merger;
  for (const auto& [source, contribution] : record.sources()) {
    merger.Add(source, contribution);
  }
  CommittedSession out;
  out.session_id = std::string(session_id);
  out.account_pseudonym = record.account_pseudonym();
  out.session_start_unix_seconds = record.session_start_unix_seconds();
  merger.Finish(&out);
  return out;
}

absl::StatusOr<int64_t> ReadStorageFormatVersion(Store* store) {
  absl::StatusOr<std::string> stored = store->Get(keys::kFormatVersionKey);
  // OpenRocksDbStore writes a version into every store it creates and
  // refuses data without one, so only an in-memory store lacks it.
  if (absl::IsNotFound(stored.status())) return keys::kStorageFormatVersion;
  if (!stored.ok()) return stored.status();
  int64_t version = 0;
  if (!absl::SimpleAtoi(*stored, &version)) {
    return absl::DataLossError(
        absl::StrFormat("unreadable storage format version \"%s\"", *stored));
  }
  return version;
}

absl::Status CheckSessionFormatCurrent(Store* store) {
  ASSIGN_OR_RETURN(int64_t version, ReadStorageFormatVersion(store));
  if (version != keys::kStorageFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the store has storage format version %d, but sessions are read and "
        "written in version %d; migrate it first (MigrateSessionStore, run "
        "by cohortd at start)",
        version, keys::kStorageFormatVersion));
  }
  return absl::OkStatus();
}

absl::Status MigrateSessionStore(Store* store) {
  ASSIGN_OR_RETURN(int64_t version, ReadStorageFormatVersion(store));
  if (version == keys::kStorageFormatVersion) return absl::OkStatus();
  if (version != 1) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the store has storage format version %d; this cohortd migrates "
        "only version 1 to %d",
        version, keys::kStorageFormatVersion));
  }
  LogInfo("storage", "migrating session records from storage format 1 to %d",
          keys::kStorageFormatVersion);
  // Writes during a scan are allowed (the scan reads a snapshot). Each
  // batch is atomic and replaces whole records, so a crash leaves every
  // session in exactly one of the two shapes.
  constexpr size_t kBatchSessions = 1024;
  WriteBatch batch;
  size_t in_batch = 0;
  uint64_t migrated = 0;
  absl::Time last_log = absl::Now();
  absl::Status status;
  StoredSession record;
  std::string dataset;
  std::string session_id;
  RETURN_IF_ERROR(store->Scan(
      keys::kSessionPrefix,
      [&](absl::string_view key, absl::string_view value) {
        if (!keys::ParseSessionKey(key, &dataset, &session_id)) {
          return true;  // already format 2
        }
        if (!record.ParseFromArray(value.data(),
                                   static_cast<int>(value.size()))) {
          status = absl::DataLossError(absl::StrFormat(
              "format-1 session record %s does not parse; nothing of it was "
              "migrated",
              std::string(key)));
          return false;
        }
        StoredSessionHeader header;
        header.set_account_pseudonym(record.account_pseudonym());
        header.set_session_start_unix_seconds(
            record.session_start_unix_seconds());
        header.set_source_count(static_cast<uint32_t>(record.sources_size()));
        batch.Delete(key);
        batch.Put(keys::SessionHeaderKey(dataset, session_id),
                  header.SerializeAsString());
        for (const auto& [source, contribution] : record.sources()) {
          batch.Put(keys::ContributionKey(dataset, session_id, source),
                    contribution.SerializeAsString());
        }
        ++migrated;
        if (++in_batch >= kBatchSessions) {
          status = store->Write(batch, /*sync=*/false);
          batch.Clear();
          in_batch = 0;
          if (!status.ok()) return false;
          if (absl::Now() - last_log >= absl::Seconds(10)) {
            last_log = absl::Now();
            LogInfo("storage", "migrated %d sessions so far", migrated);
          }
        }
        return true;
      }));
  RETURN_IF_ERROR(status);
  batch.Put(keys::kFormatVersionKey, absl::StrCat(keys::kStorageFormatVersion));
  RETURN_IF_ERROR(store->Write(batch, /*sync=*/true));
  LogInfo("storage", "migrated %d sessions to storage format %d", migrated,
          keys::kStorageFormatVersion);
  return absl::OkStatus();
}

}  // namespace cohortd
