// Running the sdtune binary from the CLI tests: exit code, everything it printed, and its peak memory.
#pragma once
#include <sys/resource.h>
#include <sys/wait.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace sdtune::test {

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr together
};

inline Result run_shell(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return {-1, "popen failed: " + std::string(std::strerror(errno)) + " (a command line over 128 KiB?)"};
  std::string output;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

inline Result run(const std::string& args) { return run_shell(std::string(SDTUNE_BINARY) + " " + args + " 2>&1"); }

// The largest resident set of any child this test process has waited for, in MiB (ctest runs each
// test in a process of its own, so it is the largest sdtune run of this test).
inline double peak_child_memory_mib() {
  rusage usage{};
  ::getrusage(RUSAGE_CHILDREN, &usage);
  return double(usage.ru_maxrss) / 1024.0;
}

}  // namespace sdtune::test
