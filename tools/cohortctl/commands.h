// The subcommands of cohortctl, as data: each is a Command with its name,
// help, the token role it needs, its flags and the function that runs it.
// Adding one (e.g. `simulate`) means writing its file and listing it in
// AllCommands(); parsing, --help, tokens and the connection come for free.
#ifndef COHORTD_TOOLS_COHORTCTL_COMMANDS_H_
#define COHORTD_TOOLS_COHORTCTL_COMMANDS_H_

#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/cohortctl/connection.h"
#include "tools/cohortctl/exit_codes.h"
#include "tools/cohortctl/flags.h"
#include "tools/cohortctl/token.h"

namespace cohortd::cohortctl {

// The process's streams and environment, injected so that tests can run
// commands in-process.
struct CliIo {
  std::istream* in;
  std::ostream* out;
  std::ostream* err;
  bool err_is_tty = false;  // progress bars only on a terminal
  EnvLookup env;
};

// What a command's run function gets.
struct CommandEnv {
  const ParsedFlags& flags;     // its own flags and the global ones
  const GlobalOptions& global;  // target, TLS, dataset, timeout
  const std::string& token;     // empty when the command needs no role
  const CliIo& io;
};

struct Command {
  std::string name;
  std::string args;          // positional arguments in usage, e.g. "FILE"
  size_t num_args = 0;       // exactly this many positional arguments
  std::string summary;       // one line, for the command list
  std::string description;   // the body of `cohortctl NAME --help`
  std::optional<Role> role;  // nullopt: no token is sent
  std::vector<FlagSpec> flags;
  // Optional: checks the command's flags before the token is looked up, so
  // that a syntax error is reported first; INVALID_ARGUMENT makes exit 2.
  // `run` may then take the flags it checked as valid.
  std::function<absl::Status(const ParsedFlags&)> check;
  // Returns an exit code (kExit*). Runs on the calling thread.
  std::function<int(const CommandEnv&)> run;
};

Command PushCommand();
Command QueryCommand();
Command BudgetCommand();
Command DescribeCommand();
Command AuditCommand();
Command HealthCommand();
Command SimulateCommand();
Command ReportCommand();
// The `admin` group: two-word names (`cohortctl admin seal`, ...).
Command AdminSealCommand();
Command AdminDeleteAccountCommand();
Command AdminBackupCommand();

// Every command, in the order `cohortctl --help` lists them.
const std::vector<Command>& AllCommands();

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_COMMANDS_H_
