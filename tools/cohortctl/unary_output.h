// The shared shape of the read-only commands (budget, describe, audit):
// one unary call, its response printed as text or, with --format json, in
// the protobuf JSON mapping.
#ifndef COHORTD_TOOLS_COHORTCTL_UNARY_OUTPUT_H_
#define COHORTD_TOOLS_COHORTCTL_UNARY_OUTPUT_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "tools/cohortctl/aggregate_format.h"
#include "tools/cohortctl/commands.h"

namespace cohortd::cohortctl {

// Command::check for --format text|json.
inline absl::Status CheckTextOrJsonFormat(const ParsedFlags& flags) {
  const std::string format = flags.Get("format", "text");
  if (format != "text" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format must be text or json, not '", format, "'"));
  }
  return absl::OkStatus();
}

// Calls `method` of a new Service stub with `request`, then prints the
// response with `format_text` (or as JSON with --format json, which
// CheckTextOrJsonFormat has checked). Returns kExitError if the call
// fails, else kExitOk; the response is also left in `*response` for a
// caller that checks it.
template <typename Service, typename Request, typename Response>
int CallAndPrint(const CommandEnv& env, absl::string_view what,
                 grpc::Status (Service::Stub::*method)(grpc::ClientContext*,
                                                       const Request&,
                                                       Response*),
                 const Request& request,
                 std::string (*format_text)(const Response&),
                 Response* response) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(env.global);
  if (!channel.ok()) {
    *env.io.err << "cohortctl: " << channel.status().message() << "\n";
    return kExitUsage;
  }
  auto stub = Service::NewStub(*channel);
  auto context = MakeContext(env.token, env.global.timeout);
  const grpc::Status status =
      ((*stub).*method)(context.get(), request, response);
  if (!status.ok()) return ReportRpcError(what, status, *env.io.err);
  if (env.flags.Get("format") == "json") {
    absl::StatusOr<std::string> json = FormatJson(*response);
    if (!json.ok()) {
      *env.io.err << "cohortctl: " << json.status().message() << "\n";
      return kExitError;
    }
    *env.io.out << *json;
  } else {
    *env.io.out << format_text(*response);
  }
  return kExitOk;
}

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_UNARY_OUTPUT_H_
