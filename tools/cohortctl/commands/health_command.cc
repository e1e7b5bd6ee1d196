// `cohortctl health`: the standard grpc.health.v1 check, which needs no
// token, for scripts waiting on a server to come up.
#include "grpc/health/v1/health.grpc.pb.h"
#include "tools/cohortctl/commands.h"

namespace cohortd::cohortctl {
namespace {

int RunHealth(const CommandEnv& env) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(env.global);
  if (!channel.ok()) {
    *env.io.err << "cohortctl: " << channel.status().message() << "\n";
    return kExitUsage;
  }
  auto stub = grpc::health::v1::Health::NewStub(*channel);
  auto context = MakeContext("", env.global.timeout);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(env.flags.Get("service"));
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(context.get(), request, &response);
  if (!status.ok()) return ReportRpcError("health", status, *env.io.err);
  *env.io.out << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                     response.status())
              << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING
             ? kExitOk
             : kExitProblem;
}

}  // namespace

Command HealthCommand() {
  Command command;
  command.name = "health";
  command.summary = "check that the server is SERVING (no token needed)";
  command.description =
      "Calls grpc.health.v1.Health/Check and prints SERVING or\n"
      "NOT_SERVING. Exits 0 when SERVING, 3 otherwise, 1 if the server\n"
      "cannot be reached (UNAVAILABLE).\n";
  command.flags = {
      {"service", "NAME",
       "one service, e.g. cohortd.v1.Query (default: the whole server)"},
  };
  command.run = RunHealth;
  return command;
}

}  // namespace cohortd::cohortctl
