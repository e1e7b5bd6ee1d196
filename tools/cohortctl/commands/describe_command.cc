// `cohortctl describe`: a dataset's public schema and privacy parameters
// (DescribeDataset).
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "tools/cohortctl/commands.h"
#include "tools/cohortctl/describe_format.h"
#include "tools/cohortctl/unary_output.h"

namespace cohortd::cohortctl {
namespace {

int RunDescribe(const CommandEnv& env) {
  cohortd::v1::DescribeDatasetRequest request;
  request.set_dataset(env.global.dataset);
  cohortd::v1::DatasetDescription description;
  return CallAndPrint<cohortd::v1::Query>(
      env, "describe", &cohortd::v1::Query::Stub::DescribeDataset, request,
      &FormatDescription, &description);
}

}  // namespace

Command DescribeCommand() {
  Command command;
  command.name = "describe";
  command.summary = "show a dataset's dimensions, measures and privacy";
  command.description =
      "Prints --dataset's dimensions with their public domains (or 'open\n"
      "domain' for free-text ones, whose cohorts are released only through\n"
      "partition selection), its measures with their clamping bounds, and\n"
      "its privacy parameters (k, epsilon per query, contribution bounds).\n"
      "All of it comes from the server's config, none from the records.\n";
  command.role = Role::kAnalyst;
  command.flags = {{"format", "FORMAT", "text or json (default text)"}};
  command.check = CheckTextOrJsonFormat;
  command.run = RunDescribe;
  return command;
}

}  // namespace cohortd::cohortctl
