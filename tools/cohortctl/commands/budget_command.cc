// `cohortctl budget`: the caller's privacy budget on a dataset (GetBudget).
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cohortd/v1/cohortd.grpc.pb.h"
#include "tools/cohortctl/commands.h"
#include "tools/cohortctl/describe_format.h"
#include "tools/cohortctl/unary_output.h"

namespace cohortd::cohortctl {
namespace {

// The server reports spent rounded up to a decimal grid of 10^(e - 7) for
// a total of magnitude 10^e, and remaining = total - spent on that grid
// (server/privacy/accountant.h BudgetLedger). Printing every row with the
// total's exponent and 7 decimals shows exactly those numbers, so the
// rows add up as printed: spent + remaining = total.
std::string OnGrid(double value, double total) {
  if (!(total > 0)) return absl::StrFormat("%g", value);
  const int e = static_cast<int>(std::floor(std::log10(total)));
  if (e >= -3 && e <= 3) {
    return absl::StrFormat("%.*f", std::max(0, 7 - e), value);
  }
  return absl::StrFormat("%.7fe%+03d", value / std::pow(10.0, e), e);
}

std::string FormatBudgetExact(const cohortd::v1::Budget& budget) {
  const double te = budget.total().epsilon(), td = budget.total().delta();
  std::string out = absl::StrCat("budget of ", budget.principal(),
                                 " on dataset ", budget.dataset(), "\n");
  auto row = [&](const char* name, const cohortd::v1::PrivacyCost& c) {
    absl::StrAppendFormat(&out, "%-10s %16s %18s\n", name,
                          OnGrid(c.epsilon(), te), OnGrid(c.delta(), td));
  };
  absl::StrAppendFormat(&out, "%-10s %16s %18s\n", "", "epsilon", "delta");
  row("total", budget.total());
  row("spent", budget.spent());
  row("remaining", budget.remaining());
  out +=
      "(spent + remaining = total; any query whose own epsilon and delta\n"
      "are within the remaining is affordable)\n";
  return out;
}

int RunBudget(const CommandEnv& env) {
  cohortd::v1::GetBudgetRequest request;
  request.set_dataset(env.global.dataset);
  cohortd::v1::Budget budget;
  return CallAndPrint<cohortd::v1::Query>(env, "budget",
                                          &cohortd::v1::Query::Stub::GetBudget,
                                          request, &FormatBudgetExact, &budget);
}

}  // namespace

Command BudgetCommand() {
  Command command;
  command.name = "budget";
  command.summary = "show your privacy budget: total, spent, remaining";
  command.description =
      "Prints the calling principal's budget on --dataset as (epsilon,\n"
      "delta): the total granted, the amount spent by past releases, and\n"
      "what remains; spent + remaining = total as printed. The JSON format\n"
      "also carries rho, the zCDP view of the ledger's RDP curve.\n";
  command.role = Role::kAnalyst;
  command.flags = {{"format", "FORMAT", "text or json (default text)"}};
  command.check = CheckTextOrJsonFormat;
  command.run = RunBudget;
  return command;
}

}  // namespace cohortd::cohortctl
