// Runs the nibble program as a user would and captures what it printed.
#pragma once

#include <string>

namespace nibble::testing {

struct CliResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// `arguments` is appended to the program path as it is (quote paths with spaces yourself).
CliResult run_nibble(const std::string& arguments);

}  // namespace nibble::testing
