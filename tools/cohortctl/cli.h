// cohortctl's entry point as a function: parses the command line, prints
// help, resolves the token and runs the chosen command. main() only wires
// in the real process streams; tests call RunCohortctl with their own.
#ifndef COHORTD_TOOLS_COHORTCTL_CLI_H_
#define COHORTD_TOOLS_COHORTCTL_CLI_H_

#include <string>
#include <vector>

#include "tools/cohortctl/commands.h"

namespace cohortd::cohortctl {

// `args` excludes the program name. Returns the process exit code
// (exit_codes.h). Global flags may come before or after the command name.
int RunCohortctl(const std::vector<std::string>& args, const CliIo& io);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_CLI_H_
