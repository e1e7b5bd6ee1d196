// Command-line flag parsing for cohortctl: "--name value", "--name=value",
// boolean switches, repeatable flags and positional arguments. It knows
// nothing about commands: each command declares the flags it accepts as a
// list of FlagSpec, which also renders its --help.
#ifndef COHORTD_TOOLS_COHORTCTL_FLAGS_H_
#define COHORTD_TOOLS_COHORTCTL_FLAGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cohortd::cohortctl {

// One accepted flag.
struct FlagSpec {
  std::string name;         // without the dashes, e.g. "group-by"
  std::string value_name;   // shown in help, e.g. "N"; empty: a switch
  std::string help;         // one line
  bool repeatable = false;  // otherwise giving it twice is a usage error
};

enum class ParseMode {
  // Everything is parsed; "--" ends the flags; "-" is a positional argument.
  kAll,
  // Parsing stops at the first positional argument (the subcommand), which
  // is returned with the rest of the line, unparsed, in positional().
  kStopAtPositional,
};

// The flags and positional arguments of one command line. Values are kept
// as strings; the typed getters fail with INVALID_ARGUMENT naming the flag.
class ParsedFlags {
 public:
  bool Has(absl::string_view name) const;
  // The value of a non-repeatable flag, or `fallback` when it is absent.
  std::string Get(absl::string_view name,
                  const std::string& fallback = "") const;
  // Every value of a repeatable flag, in command-line order.
  std::vector<std::string> GetAll(absl::string_view name) const;
  absl::StatusOr<int64_t> GetInt(absl::string_view name,
                                 int64_t fallback) const;
  absl::StatusOr<double> GetDouble(absl::string_view name,
                                   double fallback) const;
  // Positional arguments. With ParseMode::kStopAtPositional the first one
  // and everything after it, unparsed.
  const std::vector<std::string>& positional() const { return positional_; }

  // Adds the flags of `other` that this one lacks (later flags win).
  void MergeFrom(const ParsedFlags& other);

 private:
  friend absl::StatusOr<ParsedFlags> ParseFlags(
      const std::vector<std::string>& args, const std::vector<FlagSpec>& specs,
      ParseMode mode);

  std::map<std::string, std::vector<std::string>, std::less<>> values_;
  std::vector<std::string> positional_;
};

// Parses `args` (without the program name) against `specs`. Fails with
// INVALID_ARGUMENT on an unknown flag, a missing value, a value given to a
// switch, or a non-repeatable flag given twice.
absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                                       const std::vector<FlagSpec>& specs,
                                       ParseMode mode = ParseMode::kAll);

// Help text for `specs`, one aligned line per flag, each indented by two.
std::string FormatFlagHelp(const std::vector<FlagSpec>& specs);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_FLAGS_H_
