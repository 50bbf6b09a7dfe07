#include "tests/cli/cli_runner.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>

namespace nibble::testing {

CliResult run_nibble(const std::string& arguments) {
  CliResult result;
  std::string command = std::string(NIBBLE_CLI_PATH) + " " + arguments + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace nibble::testing
