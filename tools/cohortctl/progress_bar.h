// The one-line progress display of `cohortctl push`, redrawn in place on a
// terminal. Rendering is a pure function so that it can be tested; the
// caller decides when (and whether: only on a TTY) to draw it.
#ifndef COHORTD_TOOLS_COHORTCTL_PROGRESS_BAR_H_
#define COHORTD_TOOLS_COHORTCTL_PROGRESS_BAR_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace cohortd::cohortctl {

struct PushProgress {
  int64_t confirmed = 0;  // observations the server has answered for
  int64_t rejected = 0;   // of which rejected
  int64_t malformed = 0;  // lines not sent
  double fraction = -1;   // of the input done, in [0, 1]; < 0: unknown
  absl::Duration elapsed;
};

// E.g. "[#######.............]  35%  140,000 obs  52,310 obs/s  rejected 3".
// Without a known fraction (stdin, a pipe) the bar and percentage are left
// out. No newline or
// carriage return: the caller adds "\r" to redraw.
std::string RenderProgress(const PushProgress& progress);

// 1234567 -> "1,234,567".
std::string WithThousands(int64_t value);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_PROGRESS_BAR_H_
