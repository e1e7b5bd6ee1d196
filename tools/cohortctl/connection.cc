#include "tools/cohortctl/connection.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tools/cohortctl/exit_codes.h"

namespace cohortd::cohortctl {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", flag, " ", path));
  }
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

}  // namespace

const std::vector<FlagSpec>& GlobalFlagSpecs() {
  static const auto* const kSpecs = new std::vector<FlagSpec>{
      {"target", "HOST:PORT",
       absl::StrCat("server (default $COHORTD_TARGET or ", kDefaultTarget,
                    ")")},
      {"dataset", "NAME", "dataset (default sessions)"},
      {"token-file", "FILE",
       "the token alone, or KEY=VALUE lines as in dev-tokens.env"},
      {"tls", "", "use TLS with the system's root certificates"},
      {"tls-ca", "FILE", "PEM roots to verify the server with (implies TLS)"},
      {"tls-cert", "FILE", "PEM client certificate, for mutual TLS"},
      {"tls-key", "FILE", "PEM client private key, for mutual TLS"},
      {"timeout", "SECONDS", "deadline of each call, 0 for none (default 30)"},
      {"help", "", "show help"},
  };
  return *kSpecs;
}

absl::StatusOr<GlobalOptions> GlobalOptionsFromFlags(const ParsedFlags& flags,
                                                     const EnvLookup& env) {
  GlobalOptions options;
  if (flags.Has("target")) {
    options.target = flags.Get("target");
  } else if (std::optional<std::string> target = env("COHORTD_TARGET")) {
    options.target = *target;
  }
  if (options.target.empty()) {
    return absl::InvalidArgumentError("--target is empty");
  }
  options.dataset = flags.Get("dataset", options.dataset);
  options.token_file = flags.Get("token-file");
  options.tls_ca = flags.Get("tls-ca");
  options.tls_cert = flags.Get("tls-cert");
  options.tls_key = flags.Get("tls-key");
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key go together (mutual TLS)");
  }
  options.tls =
      flags.Has("tls") || !options.tls_ca.empty() || !options.tls_cert.empty();
  absl::StatusOr<double> seconds = flags.GetDouble("timeout", 30);
  if (!seconds.ok()) return seconds.status();
  if (*seconds < 0) {
    return absl::InvalidArgumentError("--timeout must not be negative");
  }
  options.timeout =
      *seconds == 0 ? absl::InfiniteDuration() : absl::Seconds(*seconds);
  return options;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const GlobalOptions& options) {
  if (!options.tls) {
    return grpc::CreateChannel(options.target,
                               grpc::InsecureChannelCredentials());
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.tls_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadFile(options.tls_ca, "--tls-ca");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
  }
  if (!options.tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFile(options.tls_cert, "--tls-cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile(options.tls_key, "--tls-key");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
  }
  return grpc::CreateChannel(options.target, grpc::SslCredentials(ssl));
}

std::unique_ptr<grpc::ClientContext> MakeContext(const std::string& token,
                                                 absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }
  if (timeout != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  return context;
}

std::string StatusCodeName(grpc::StatusCode code) {
  // gRPC's and absl's codes are both the canonical google.rpc.Code values.
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

int ReportRpcError(absl::string_view what, const grpc::Status& status,
                   std::ostream& err) {
  err << "cohortctl: " << what << ": " << StatusCodeName(status.error_code())
      << ": " << status.error_message() << "\n";
  return kExitError;
}

}  // namespace cohortd::cohortctl
