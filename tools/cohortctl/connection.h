// How cohortctl reaches the server: the global flags (target, TLS, dataset,
// timeout), the gRPC channel they describe, per-call contexts carrying the
// bearer token, and the one way RPC errors are reported.
#ifndef COHORTD_TOOLS_COHORTCTL_CONNECTION_H_
#define COHORTD_TOOLS_COHORTCTL_CONNECTION_H_

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tools/cohortctl/flags.h"
#include "tools/cohortctl/token.h"

namespace cohortd::cohortctl {

inline constexpr char kDefaultTarget[] = "127.0.0.1:7443";

struct GlobalOptions {
  std::string target = kDefaultTarget;
  bool tls = false;  // implied by any --tls-* flag
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string token_file;
  std::string dataset = "sessions";
  absl::Duration timeout = absl::Seconds(30);  // unary calls
};

// The flags every command accepts, before or after its name.
const std::vector<FlagSpec>& GlobalFlagSpecs();

// Reads the global flags, with $COHORTD_TARGET as the target's fallback.
// Fails with INVALID_ARGUMENT on a bad timeout or on only one of
// --tls-cert and --tls-key.
absl::StatusOr<GlobalOptions> GlobalOptionsFromFlags(const ParsedFlags& flags,
                                                     const EnvLookup& env);

// A channel to options.target: plaintext, or TLS with --tls-ca's roots
// (system roots without it) and the --tls-cert/--tls-key client identity.
// Fails with INVALID_ARGUMENT if a TLS file cannot be read. The channel
// connects lazily, so an unreachable server shows as UNAVAILABLE on the
// first call.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const GlobalOptions& options);

// A context with `authorization: Bearer <token>` (none if token is empty)
// and a deadline `timeout` from now (none if timeout is infinite).
std::unique_ptr<grpc::ClientContext> MakeContext(const std::string& token,
                                                 absl::Duration timeout);

// "INVALID_ARGUMENT", "UNAVAILABLE", ...
std::string StatusCodeName(grpc::StatusCode code);

// Writes "cohortctl: WHAT: CODE: message" to `err` and returns kExitError.
int ReportRpcError(absl::string_view what, const grpc::Status& status,
                   std::ostream& err);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_CONNECTION_H_
