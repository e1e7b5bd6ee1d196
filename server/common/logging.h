// Minimal structured logging to stderr: one line per event,
// "<RFC3339 time> <LEVEL> <component>: <message>". Thread-safe (one
// fprintf per line). Never pass raw account ids or record values here.
#ifndef COHORTD_SERVER_COMMON_LOGGING_H_
#define COHORTD_SERVER_COMMON_LOGGING_H_

#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace cohortd {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below this level are dropped. Default kInfo.
void SetMinLogLevel(LogLevel level);
void LogLine(LogLevel level, absl::string_view component,
             absl::string_view message);

template <typename... Args>
void LogInfo(absl::string_view component,
             const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kInfo, component, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogWarning(absl::string_view component,
                const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kWarning, component, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogError(absl::string_view component,
              const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kError, component, absl::StrFormat(format, args...));
}

}  // namespace cohortd

#endif  // COHORTD_SERVER_COMMON_LOGGING_H_
