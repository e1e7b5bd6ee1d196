#include "tools/cohortctl/commands.h"

namespace cohortd::cohortctl {

const std::vector<Command>& AllCommands() {
  static const auto* const kCommands = new std::vector<Command>{
      PushCommand(),        QueryCommand(),
      BudgetCommand(),      DescribeCommand(),
      AuditCommand(),       HealthCommand(),
      SimulateCommand(),    ReportCommand(),
      AdminSealCommand(),   AdminDeleteAccountCommand(),
      AdminBackupCommand(),
  };
  return *kCommands;
}

}  // namespace cohortd::cohortctl
