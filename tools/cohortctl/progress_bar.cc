#include "tools/cohortctl/progress_bar.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cohortd::cohortctl {
namespace {

constexpr int kBarWidth = 20;

}  // namespace

std::string WithThousands(int64_t value) {
  std::string digits = absl::StrCat(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

std::string RenderProgress(const PushProgress& progress) {
  std::string line;
  if (progress.fraction >= 0) {
    const double fraction = std::min(progress.fraction, 1.0);
    const int filled = static_cast<int>(fraction * kBarWidth);
    absl::StrAppend(
        &line, "[", std::string(filled, '#'),
        std::string(kBarWidth - filled, '.'), "] ",
        absl::StrFormat("%3d%%  ", static_cast<int>(fraction * 100)));
  }
  const double seconds = absl::ToDoubleSeconds(progress.elapsed);
  const int64_t rate =
      seconds > 0 ? static_cast<int64_t>(progress.confirmed / seconds) : 0;
  absl::StrAppend(&line, WithThousands(progress.confirmed), " obs  ",
                  WithThousands(rate), " obs/s  rejected ",
                  WithThousands(progress.rejected));
  if (progress.malformed > 0) {
    absl::StrAppend(&line, "  malformed ", WithThousands(progress.malformed));
  }
  return line;
}

}  // namespace cohortd::cohortctl
