#include "server/storage/keys.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace cohortd {
namespace keys {

std::string EscapeKeyComponent(absl::string_view component) {
  std::string out;
  AppendEscapedKeyComponent(component, &out);
  return out;
}

void AppendEscapedKeyComponent(absl::string_view component, std::string* out) {
  // Most components need no escape: one append.
  size_t clean = 0;
  while (clean < component.size() && component[clean] != '%' &&
         component[clean] != '/') {
    ++clean;
  }
  out->append(component.data(), clean);
  for (char c : component.substr(clean)) {
    if (c == '%') {
      out->append("%25");
    } else if (c == '/') {
      out->append("%2F");
    } else {
      out->push_back(c);
    }
  }
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

std::string SessionRecordPrefix(absl::string_view dataset,
                                absl::string_view session_id) {
  return absl::StrCat(kSessionPrefix, EscapeKeyComponent(dataset), "/",
                      EscapeKeyComponent(session_id), "/");
}

std::string ContributionKey(absl::string_view dataset,
                            absl::string_view session_id,
                            absl::string_view source) {
  return absl::StrCat(kSessionPrefix, EscapeKeyComponent(dataset), "/",
                      EscapeKeyComponent(session_id), "/",
                      EscapeKeyComponent(source));
}

bool ParseSessionRecordKey(absl::string_view key, std::string* dataset,
                           std::string* session_id, std::string* source) {
  if (!absl::ConsumePrefix(&key, kSessionPrefix)) return false;
  const size_t first = key.find('/');
  if (first == absl::string_view::npos) return false;
  const size_t second = key.find('/', first + 1);
  if (second == absl::string_view::npos) return false;
  return UnescapeKeyComponent(key.substr(0, first), dataset) &&
         UnescapeKeyComponent(key.substr(first + 1, second - first - 1),
                              session_id) &&
         UnescapeKeyComponent(key.substr(second + 1), source);
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

std::string DatasetBudgetKey(absl::string_view dataset) {
  return absl::StrCat(kBudgetLedgerPrefix, EscapeKeyComponent(dataset), "/d");
}

std::string PrincipalBudgetKey(absl::string_view dataset,
                               absl::string_view principal) {
  return absl::StrCat(kBudgetLedgerPrefix, EscapeKeyComponent(dataset), "/p/",
                      EscapeKeyComponent(principal));
}

bool ParseBudgetKey(absl::string_view key, std::string* dataset,
                    bool* is_dataset, std::string* principal) {
  if (!absl::ConsumePrefix(&key, kBudgetLedgerPrefix)) return false;
  size_t slash = key.find('/');
  if (slash == absl::string_view::npos) return false;
  if (!UnescapeKeyComponent(key.substr(0, slash), dataset)) return false;
  absl::string_view rest = key.substr(slash + 1);
  if (rest == "d") {
    *is_dataset = true;
    principal->clear();
    return true;
  }
  if (!absl::ConsumePrefix(&rest, "p/")) return false;
  *is_dataset = false;
  return UnescapeKeyComponent(rest, principal);
}

std::string ReleaseKey(absl::string_view dataset,
                       absl::string_view request_hash_hex) {
  return absl::StrCat(kReleasePrefix, EscapeKeyComponent(dataset), "/",
                      EscapeKeyComponent(request_hash_hex));
}

std::string AuditKey(uint64_t sequence) {
  return absl::StrCat(kAuditPrefix, absl::StrFormat("%020u", sequence));
}

bool ParseAuditKey(absl::string_view key, uint64_t* sequence) {
  if (!absl::ConsumePrefix(&key, kAuditPrefix)) return false;
  if (key.size() != 20) return false;
  for (char c : key) {
    if (c < '0' || c > '9') return false;
  }
  return absl::SimpleAtoi(key, sequence);
}

}  // namespace keys
}  // namespace cohortd
