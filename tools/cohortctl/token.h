// Bearer tokens for cohortctl. A token never comes from the command line
// (it would show in `ps` and shell history): it is read from --token-file
// or from the environment, and which one is picked depends on the role the
// subcommand needs.
#ifndef COHORTD_TOOLS_COHORTCTL_TOKEN_H_
#define COHORTD_TOOLS_COHORTCTL_TOKEN_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cohortd::cohortctl {

// The server-side role a subcommand's token must carry.
enum class Role { kIngest, kAnalyst, kAdmin };

// The environment variable (and token-file key) holding a role's token,
// e.g. "COHORTD_ANALYST_TOKEN", as written by scripts/dev-secrets.
absl::string_view RoleTokenKey(Role role);

// Reads an environment variable; nullopt when unset. Injected so that tests
// need not touch the real environment.
using EnvLookup = std::function<std::optional<std::string>(absl::string_view)>;

// The token for `role` in the contents of a token file. The file holds
// either the token alone, or KEY=VALUE lines as in secrets/dev-tokens.env
// ('#' comments, blank lines, "export " and quotes allowed), recognised by
// a COHORTD_* key; then the role's key is used. Fails with INVALID_ARGUMENT
// if the role's key is missing or the token is empty or not printable ASCII
// (gRPC metadata cannot carry it).
absl::StatusOr<std::string> TokenFromFileContents(absl::string_view contents,
                                                  Role role);

// The token for `role`: from `token_file` if not empty, else the
// COHORTD_TOKEN variable, else the role's variable (RoleTokenKey); an empty
// variable counts as unset. Fails with INVALID_ARGUMENT when none is set
// or the file cannot be read.
absl::StatusOr<std::string> ResolveToken(const std::string& token_file,
                                         Role role, const EnvLookup& env);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_TOKEN_H_
