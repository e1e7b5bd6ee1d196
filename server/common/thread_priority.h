// Background work yields the CPU to serving work: a restart's first
// answer must not wait behind the checksum pass over every SST or the
// rebuild of the index from every record (issue 13, restart <= 1 s), which
// run beside it on the same (possibly two) cores.
#ifndef COHORTD_SERVER_COMMON_THREAD_PRIORITY_H_
#define COHORTD_SERVER_COMMON_THREAD_PRIORITY_H_

namespace cohortd {

// The nice value background threads run at (0 is the process's default;
// 19 the lowest priority). The work still runs, at full speed on an idle
// core; it only loses to normal-priority threads competing for a core.
inline constexpr int kBackgroundNice = 10;

// Lowers the calling thread's scheduling priority to kBackgroundNice
// (Linux: per-thread nice through setpriority on the thread id). Best
// effort: a failure (e.g. a seccomp policy) is ignored, the thread then
// runs at normal priority. Thread-safe; affects only the calling thread
// (and threads it creates afterwards).
void RunInBackgroundPriority();

}  // namespace cohortd

#endif  // COHORTD_SERVER_COMMON_THREAD_PRIORITY_H_
