#include "server/backend/clickhouse_backfill.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "server/common/file_sync.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/ingest/session_merge.h"
#include "server/storage/keys.h"

namespace cohortd {
namespace {

std::string DoneLine(const ClickHouseBackend& backend) {
  return absl::StrCat("done ", backend.client().endpoint().url, " ",
                      backend.table(), "\n");
}

absl::Status WriteMarker(const std::string& path, const std::string& line) {
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", tmp));
  const ssize_t want = static_cast<ssize_t>(line.size());
  const bool ok = write(fd, line.data(), want) == want && fsync(fd) == 0;
  if (close(fd) != 0 || !ok) {
    return absl::InternalError(absl::StrCat("write ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("rename ", tmp));
  }
  const std::string dir = path.substr(0, path.rfind('/') + 1);
  if (!SyncDirectory(dir.empty() ? "." : dir).ok()) {
    return absl::InternalError(absl::StrCat("fsync ", dir));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> BackfillClickHouse(const Config& config, Store* store,
                                           ClickHouseBackend* backend,
                                           const std::string& marker_path,
                                           int batch_sessions) {
  {
    std::ifstream in(marker_path);
    const std::string marker((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
    if (marker == DoneLine(*backend)) return 0;
  }
  RETURN_IF_ERROR(CheckSessionFormatCurrent(store));
  int64_t shipped = 0;
  for (const DatasetSpec& dataset : config.datasets) {
    const absl::Time start = absl::Now();
    std::vector<CommittedSession> chunk;
    SessionMerger merger;
    cohortd::internal::StoredSessionHeader header;
    cohortd::internal::SourceContribution contribution;
    std::string key_dataset, session_id, source;
    bool open = false;
    absl::Status status;
    auto flush_session = [&] {
      if (!open) return;
      merger.Finish(&chunk.back());
      open = false;
    };
    auto ship = [&]() -> absl::Status {
      if (chunk.empty()) return absl::OkStatus();
      RETURN_IF_ERROR(backend->Ship(dataset, chunk));
      shipped += static_cast<int64_t>(chunk.size());
      chunk.clear();
      return absl::OkStatus();
    };
    // Format 2 keeps a session's header first and its contributions right
    // after it (storage/keys.h), so one pass merges each session.
    RETURN_IF_ERROR(store->Scan(
        keys::SessionPrefix(dataset.name),
        [&](absl::string_view key, absl::string_view value) {
          if (!keys::ParseSessionRecordKey(key, &key_dataset, &session_id,
                                           &source)) {
            status = absl::DataLossError(
                absl::StrFormat("session key %s is not in storage format %d",
                                std::string(key), keys::kStorageFormatVersion));
            return false;
          }
          if (source.empty()) {
            flush_session();
            if (static_cast<int>(chunk.size()) >= batch_sessions) {
              status = ship();
              if (!status.ok()) return false;
            }
            if (!header.ParseFromArray(value.data(),
                                       static_cast<int>(value.size()))) {
              status = absl::DataLossError(
                  absl::StrCat("session record of dataset '", dataset.name,
                               "' does not parse"));
              return false;
            }
            CommittedSession& s = chunk.emplace_back();
            s.session_id = session_id;
            s.account_pseudonym = header.account_pseudonym();
            s.session_start_unix_seconds = header.session_start_unix_seconds();
            merger.Reset();
            open = true;
            return true;
          }
          if (!open || !contribution.ParseFromArray(
                           value.data(), static_cast<int>(value.size()))) {
            status = absl::DataLossError(absl::StrCat(
                "a contribution of a session in dataset '", dataset.name,
                "' does not parse or has no header"));
            return false;
          }
          merger.Add(source, contribution);
          return true;
        }));
    RETURN_IF_ERROR(status);
    flush_session();
    RETURN_IF_ERROR(ship());
    LogInfo("clickhouse", "backfill: dataset %s shipped in %.1f s",
            dataset.name, absl::ToDoubleSeconds(absl::Now() - start));
  }
  RETURN_IF_ERROR(WriteMarker(marker_path, DoneLine(*backend)));
  LogInfo("clickhouse",
          "backfill: %d stored session(s) shipped; %s marks it done", shipped,
          marker_path);
  return shipped;
}

}  // namespace cohortd
