#include "server/storage/keys.h"

#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"

namespace cohortd {
namespace keys {

std::string EscapeKeyComponent(absl::string_view component) {
  std::string out;
  out.reserve(component.size());
  for (char c : component) {
    if (c == '%') {
      out += "%25";
    } else if (c == '/') {
      out += "%2F";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool UnescapeKeyComponent(absl::string_view escaped, std::string* out) {
  out->clear();
  for (size_t i = 0; i < escaped.size(); ++i) {
    char c = escaped[i];
    if (c == '/') return false;
    if (c != '%') {
      out->push_back(c);
      continue;
    }
    absl::string_view code = escaped.substr(i + 1, 2);
    if (code == "25") {
      out->push_back('%');
    } else if (code == "2F") {
      out->push_back('/');
    } else {
      return false;
    }
    i += 2;
  }
  return true;
}

std::string SessionKey(absl::string_view dataset,
                       absl::string_view session_id) {
  return absl::StrCat(kSessionPrefix, EscapeKeyComponent(dataset), "/",
                      EscapeKeyComponent(session_id));
}

std::string SessionPrefix(absl::string_view dataset) {
  return absl::StrCat(kSessionPrefix, EscapeKeyComponent(dataset), "/");
}

bool ParseSessionKey(absl::string_view key, std::string* dataset,
                     std::string* session_id) {
  if (!absl::ConsumePrefix(&key, kSessionPrefix)) return false;
  size_t slash = key.find('/');
  if (slash == absl::string_view::npos) return false;
  return UnescapeKeyComponent(key.substr(0, slash), dataset) &&
         UnescapeKeyComponent(key.substr(slash + 1), session_id);
}

std::string DataVersionKey(absl::string_view dataset,
                           absl::string_view month) {
  return absl::StrCat(kDataVersionPrefix, EscapeKeyComponent(dataset), "/",
                      EscapeKeyComponent(month));
}

}  // namespace keys
}  // namespace cohortd
