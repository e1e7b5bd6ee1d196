// cohortctl: the command-line client of cohortd. Wires the process's
// streams and environment into RunCohortctl (cli.h); nothing else.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "tools/cohortctl/cli.h"

int main(int argc, char** argv) {
  cohortd::cohortctl::CliIo io;
  io.in = &std::cin;
  io.out = &std::cout;
  io.err = &std::cerr;
  io.err_is_tty = isatty(STDERR_FILENO) == 1;
  io.env = [](absl::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  std::ios::sync_with_stdio(false);
  const int code = cohortd::cohortctl::RunCohortctl(
      std::vector<std::string>(argv + 1, argv + argc), io);
  std::cout.flush();
  return code;
}
