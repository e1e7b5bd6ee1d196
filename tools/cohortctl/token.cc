#include "tools/cohortctl/token.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace cohortd::cohortctl {
namespace {

absl::Status CheckToken(absl::string_view token, absl::string_view origin) {
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, " is empty"));
  }
  for (char c : token) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(absl::StrCat(
          origin,
          " holds a space or a non-printable character; a token is "
          "one word of printable ASCII"));
    }
  }
  return absl::OkStatus();
}

absl::string_view Unquote(absl::string_view value) {
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
      value.back() == value.front()) {
    return value.substr(1, value.size() - 2);
  }
  return value;
}

// Each non-comment line, stripped, with any "export " prefix removed.
std::vector<absl::string_view> SignificantLines(absl::string_view contents) {
  std::vector<absl::string_view> lines;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    absl::ConsumePrefix(&line, "export ");
    lines.push_back(line);
  }
  return lines;
}

}  // namespace

absl::string_view RoleTokenKey(Role role) {
  switch (role) {
    case Role::kIngest:
      return "COHORTD_INGEST_TOKEN";
    case Role::kAnalyst:
      return "COHORTD_ANALYST_TOKEN";
    case Role::kAdmin:
      return "COHORTD_ADMIN_TOKEN";
  }
  return "";
}

absl::StatusOr<std::string> TokenFromFileContents(absl::string_view contents,
                                                  Role role) {
  const std::vector<absl::string_view> lines = SignificantLines(contents);
  // A bare token never starts with "COHORTD_...=", so this cannot mistake
  // a token (which may well contain '=') for a key.
  bool is_key_value = false;
  for (absl::string_view line : lines) {
    const size_t eq = line.find('=');
    if (eq != absl::string_view::npos &&
        absl::StartsWith(line.substr(0, eq), "COHORTD_")) {
      is_key_value = true;
    }
  }
  if (!is_key_value) {
    if (lines.size() != 1) {
      return absl::InvalidArgumentError(
          "token file holds neither one token nor COHORTD_*=... lines");
    }
    if (absl::Status s = CheckToken(lines[0], "token file's token"); !s.ok()) {
      return s;
    }
    return std::string(lines[0]);
  }
  const absl::string_view key = RoleTokenKey(role);
  for (absl::string_view line : lines) {
    absl::string_view value = line;
    if (!absl::ConsumePrefix(&value, key) ||
        !absl::ConsumePrefix(&value, "=")) {
      continue;
    }
    value = Unquote(absl::StripAsciiWhitespace(value));
    const std::string origin = absl::StrCat("token file's ", key);
    if (absl::Status s = CheckToken(value, origin); !s.ok()) return s;
    return std::string(value);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("token file has no ", key,
                   " line (this command needs that role's token)"));
}

absl::StatusOr<std::string> ResolveToken(const std::string& token_file,
                                         Role role, const EnvLookup& env) {
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read --token-file ", token_file));
    }
    std::stringstream contents;
    contents << in.rdbuf();
    return TokenFromFileContents(contents.str(), role);
  }
  for (absl::string_view name :
       {absl::string_view("COHORTD_TOKEN"), RoleTokenKey(role)}) {
    std::optional<std::string> value = env(name);
    // An empty variable counts as unset, as `COHORTD_TOKEN= cohortctl ...`
    // is how a shell user clears one for a single command.
    if (value && !value->empty()) {
      const std::string origin = absl::StrCat("$", name);
      if (absl::Status s = CheckToken(*value, origin); !s.ok()) return s;
      return *value;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "no token: pass --token-file FILE or set COHORTD_TOKEN or ",
      RoleTokenKey(role), " (a token is never a command-line argument)"));
}

}  // namespace cohortd::cohortctl
