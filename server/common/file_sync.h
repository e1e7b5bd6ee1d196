// Durability of directory entries: a file created or renamed into a
// directory survives a crash only once the directory itself is fsync'd.
#ifndef COHORTD_SERVER_COMMON_FILE_SYNC_H_
#define COHORTD_SERVER_COMMON_FILE_SYNC_H_

#include <string>

#include "absl/status/status.h"

namespace cohortd {

// Fsyncs the directory `dir`, making the entries created, renamed or
// removed in it durable. Errors (errno mapped by absl::ErrnoToStatus):
// "cannot open directory DIR" or "cannot fsync directory DIR".
absl::Status SyncDirectory(const std::string& dir);

}  // namespace cohortd

#endif  // COHORTD_SERVER_COMMON_FILE_SYNC_H_
