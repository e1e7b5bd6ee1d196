// `cohortctl budget`: the caller's privacy budget on a dataset (GetBudget).
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "tools/cohortctl/commands.h"
#include "tools/cohortctl/describe_format.h"
#include "tools/cohortctl/unary_output.h"

namespace cohortd::cohortctl {
namespace {

int RunBudget(const CommandEnv& env) {
  cohortd::v1::GetBudgetRequest request;
  request.set_dataset(env.global.dataset);
  cohortd::v1::Budget budget;
  return CallAndPrint<cohortd::v1::Query>(env, "budget",
                                          &cohortd::v1::Query::Stub::GetBudget,
                                          request, &FormatBudget, &budget);
}

}  // namespace

Command BudgetCommand() {
  Command command;
  command.name = "budget";
  command.summary = "show your privacy budget: total, spent, remaining";
  command.description =
      "Prints the calling principal's budget on --dataset as (epsilon,\n"
      "delta) and as zCDP rho: the total granted, the amount spent by past\n"
      "releases, and what remains.\n";
  command.role = Role::kAnalyst;
  command.flags = {{"format", "FORMAT", "text or json (default text)"}};
  command.check = CheckTextOrJsonFormat;
  command.run = RunBudget;
  return command;
}

}  // namespace cohortd::cohortctl
