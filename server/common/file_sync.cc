#include "server/common/file_sync.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace cohortd {

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("cannot open directory ", dir));
  }
  const bool synced = ::fsync(fd) == 0;
  const int fsync_errno = errno;
  ::close(fd);
  if (!synced) {
    return absl::ErrnoToStatus(fsync_errno,
                               absl::StrCat("cannot fsync directory ", dir));
  }
  return absl::OkStatus();
}

}  // namespace cohortd
