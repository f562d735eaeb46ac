// Running another program (git) without a shell: arguments are passed as they are, so nothing in
// them is ever interpreted, and output is captured for error messages.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace sdtune::io {

struct ProcessResult {
  int exit_code = -1;  // 127: the program could not be started
  std::string output;  // stdout and stderr together
};

// Runs argv (argv[0] looked up on PATH) in `cwd` with `env` added to this process's environment.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& cwd,
                          const std::vector<std::pair<std::string, std::string>>& env = {});

}  // namespace sdtune::io
