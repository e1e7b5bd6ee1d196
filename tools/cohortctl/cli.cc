#include "tools/cohortctl/cli.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tools/cohortctl/exit_codes.h"

namespace cohortd::cohortctl {
namespace {

constexpr char kExitCodeHelp[] =
    "exit codes:\n"
    "  0  success\n"
    "  1  an RPC failed (its gRPC code and message are printed), or a file\n"
    "     could not be read\n"
    "  2  usage error (bad flags or arguments, no token); nothing was sent\n"
    "  3  the command ran but found a problem: observations rejected,\n"
    "     malformed or unconfirmed (push), audit chain broken (audit),\n"
    "     service not SERVING (health)\n"
    "  4  report --truth: a released cohort has fewer than k accounts in\n"
    "     the ground truth\n";

std::string GeneralHelp() {
  std::string help =
      "usage: cohortctl [global flags] COMMAND [flags] [args]\n"
      "\n"
      "The command-line client of cohortd, the privacy-preserving\n"
      "aggregation server: push observations, ask differentially private\n"
      "cohort questions, check budgets and the audit log.\n"
      "\ncommands:\n";
  size_t width = 0;
  for (const Command& command : AllCommands()) {
    width = std::max(width, command.name.size() + 1 + command.args.size());
  }
  for (const Command& command : AllCommands()) {
    std::string left = command.args.empty()
                           ? command.name
                           : absl::StrCat(command.name, " ", command.args);
    absl::StrAppend(&help, "  ", left, std::string(width - left.size(), ' '),
                    "  ", command.summary, "\n");
  }
  absl::StrAppend(
      &help, "\nglobal flags:\n", FormatFlagHelp(GlobalFlagSpecs()),
      "\ntokens are never command-line arguments: use --token-file FILE, or\n"
      "$COHORTD_TOKEN, or the role's variable ($COHORTD_INGEST_TOKEN for\n"
      "push, $COHORTD_ANALYST_TOKEN for query/budget/describe,\n"
      "$COHORTD_ADMIN_TOKEN for audit and admin).\n\n",
      kExitCodeHelp,
      "\nRun 'cohortctl COMMAND --help' for a command's flags.\n");
  return help;
}

std::string CommandHelp(const Command& command) {
  std::string help = absl::StrCat("usage: cohortctl ", command.name, " [flags]",
                                  command.args.empty() ? "" : " ", command.args,
                                  "\n\n", command.description);
  if (!command.flags.empty()) {
    absl::StrAppend(&help, "\nflags:\n", FormatFlagHelp(command.flags));
  }
  absl::StrAppend(&help, "\nglobal flags:\n",
                  FormatFlagHelp(GlobalFlagSpecs()));
  if (command.role) {
    const absl::string_view key = RoleTokenKey(*command.role);
    absl::StrAppend(&help, "\ntoken: --token-file FILE (the token alone, or a ",
                    key, "= line),\n  else $COHORTD_TOKEN, else $", key, "\n");
  } else {
    help += "\nno token is needed\n";
  }
  absl::StrAppend(&help, "\n", kExitCodeHelp);
  return help;
}

const Command* FindCommand(const std::string& name) {
  for (const Command& command : AllCommands()) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

int UsageError(const CliIo& io, absl::string_view message,
               absl::string_view help_hint) {
  *io.err << "cohortctl: " << message << "\n" << help_hint << "\n";
  return kExitUsage;
}

}  // namespace

int RunCohortctl(const std::vector<std::string>& args, const CliIo& io) {
  absl::StatusOr<ParsedFlags> global_flags =
      ParseFlags(args, GlobalFlagSpecs(), ParseMode::kStopAtPositional);
  if (!global_flags.ok()) {
    return UsageError(io, global_flags.status().message(),
                      "Run 'cohortctl --help' for usage.");
  }
  const std::vector<std::string>& rest = global_flags->positional();
  if (rest.empty() || (rest[0] == "help" && rest.size() == 1)) {
    if (global_flags->Has("help") || !rest.empty()) {
      *io.out << GeneralHelp();
      return kExitOk;
    }
    *io.err << GeneralHelp();
    return kExitUsage;
  }
  const bool help_command = rest[0] == "help";
  size_t name_at = help_command ? 1 : 0;
  std::string name = rest[name_at];
  // A two-word command ("admin backup") takes the next word too.
  if (name_at + 1 < rest.size() &&
      FindCommand(absl::StrCat(name, " ", rest[name_at + 1])) != nullptr) {
    name = absl::StrCat(name, " ", rest[++name_at]);
  }
  const Command* command = FindCommand(name);
  if (command == nullptr) {
    // A command group ("admin") without a known action: list the actions.
    std::vector<std::string> actions;
    for (const Command& c : AllCommands()) {
      if (absl::StartsWith(c.name, absl::StrCat(name, " "))) {
        actions.push_back(c.name.substr(name.size() + 1));
      }
    }
    if (!actions.empty()) {
      const std::string action =
          name_at + 1 < rest.size() && !absl::StartsWith(rest[name_at + 1], "-")
              ? absl::StrCat(" '", rest[name_at + 1], "'")
              : "";
      return UsageError(
          io,
          absl::StrCat(name, ": unknown or missing action", action,
                       "; actions: ", absl::StrJoin(actions, ", ")),
          "Run 'cohortctl --help' for the list.");
    }
    return UsageError(io, absl::StrCat("unknown command '", name, "'"),
                      "Run 'cohortctl --help' for the list.");
  }
  const std::string hint =
      absl::StrCat("Run 'cohortctl ", command->name, " --help' for usage.");
  if (help_command || global_flags->Has("help")) {
    *io.out << CommandHelp(*command);
    return kExitOk;
  }

  std::vector<FlagSpec> specs = command->flags;
  specs.insert(specs.end(), GlobalFlagSpecs().begin(), GlobalFlagSpecs().end());
  absl::StatusOr<ParsedFlags> flags = ParseFlags(
      std::vector<std::string>(rest.begin() + name_at + 1, rest.end()), specs,
      ParseMode::kAll);
  if (!flags.ok()) return UsageError(io, flags.status().message(), hint);
  if (flags->Has("help")) {
    *io.out << CommandHelp(*command);
    return kExitOk;
  }
  flags->MergeFrom(*global_flags);
  if (flags->positional().size() != command->num_args) {
    return UsageError(
        io,
        command->num_args == 0
            ? absl::StrCat(command->name, " takes no arguments")
            : absl::StrCat(command->name, " takes ", command->args),
        hint);
  }

  if (command->check) {
    if (absl::Status s = command->check(*flags); !s.ok()) {
      return UsageError(io, s.message(), hint);
    }
  }
  absl::StatusOr<GlobalOptions> global = GlobalOptionsFromFlags(*flags, io.env);
  if (!global.ok()) return UsageError(io, global.status().message(), hint);
  std::string token;
  if (command->role) {
    absl::StatusOr<std::string> resolved =
        ResolveToken(global->token_file, *command->role, io.env);
    if (!resolved.ok()) {
      return UsageError(io, resolved.status().message(), hint);
    }
    token = *std::move(resolved);
  }
  return command->run(CommandEnv{*flags, *global, token, io});
}

}  // namespace cohortd::cohortctl
