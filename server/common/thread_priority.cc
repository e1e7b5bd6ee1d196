#include "server/common/thread_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cohortd {

void RunInBackgroundPriority() {
#if defined(__linux__)
  // On Linux, PRIO_PROCESS with a thread id sets that thread's nice value
  // only (setpriority(2), "BUGS"/NPTL notes).
  const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(tid), kBackgroundNice);
#endif
}

}  // namespace cohortd
