// Bearer-token authentication and role checks for every RPC (API.md,
// "Authentication"). The config holds only SHA-256 hashes of the tokens; a
// presented token is hashed and looked up, so the server never holds a
// plaintext token after the call.
#ifndef COHORTD_SERVER_SERVICE_AUTH_H_
#define COHORTD_SERVER_SERVICE_AUTH_H_

#include <initializer_list>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/config/config.h"

namespace cohortd {

class Authenticator {
 public:
  // Borrows the principals of `config`, which must outlive this object.
  explicit Authenticator(const Config& config);

  // Checks an `authorization` metadata value ("Bearer <token>"; empty when
  // absent) and that the principal has one of `roles`. Returns the
  // principal (borrowed from the config).
  // Errors: Unauthenticated for a missing, malformed or unknown token;
  // PermissionDenied when the principal lacks every one of `roles`.
  // Thread-safe.
  absl::StatusOr<const Principal*> Authorize(
      absl::string_view authorization_header,
      std::initializer_list<Role> roles) const;

 private:
  // Hex SHA-256 of the token -> principal.
  absl::flat_hash_map<std::string, const Principal*> by_token_hash_;
};

}  // namespace cohortd

#endif  // COHORTD_SERVER_SERVICE_AUTH_H_
