#include "server/service/auth.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/crypto/pseudonymizer.h"

namespace cohortd {

Authenticator::Authenticator(const Config& config) {
  for (const Principal& p : config.principals) {
    by_token_hash_[HexEncode(p.token_sha256)] = &p;
  }
}

absl::StatusOr<const Principal*> Authenticator::Authorize(
    absl::string_view authorization_header,
    std::initializer_list<Role> roles) const {
  constexpr absl::string_view kBearer = "bearer ";
  if (authorization_header.empty()) {
    return absl::UnauthenticatedError(
        "missing 'authorization: Bearer <token>' metadata");
  }
  if (authorization_header.size() <= kBearer.size() ||
      !absl::StartsWithIgnoreCase(authorization_header, kBearer)) {
    return absl::UnauthenticatedError(
        "authorization metadata must be 'Bearer <token>'");
  }
  const absl::string_view token =
      absl::StripAsciiWhitespace(authorization_header.substr(kBearer.size()));
  auto it = by_token_hash_.find(HexEncode(Sha256(token)));
  if (it == by_token_hash_.end()) {
    return absl::UnauthenticatedError("unknown bearer token");
  }
  const Principal* principal = it->second;
  for (Role role : roles) {
    if (principal->role == role) return principal;
  }
  std::vector<std::string> names;
  for (Role role : roles) names.emplace_back(RoleName(role));
  return absl::PermissionDeniedError(absl::StrCat(
      "principal '", principal->name, "' has role '", RoleName(principal->role),
      "'; this call needs role ", absl::StrJoin(names, " or ")));
}

}  // namespace cohortd
