// Helpers shared by the tests.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"

namespace sdtune::test {

inline std::string data_path(const std::string& relative) { return std::string(SDTUNE_TEST_DATA) + "/" + relative; }

// A fresh empty folder under the system temp dir, removed by the destructor.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("sdtune-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

// The message of the sdtune::Error that `f` throws, "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// What a failed command prints: exactly one line that starts with "error: " (nothing before it on
// its line, e.g. an unfinished progress bar), and none of the libraries' internals.
inline void expect_one_clean_error_line(const std::string& output) {
  std::istringstream lines(output);
  int error_lines = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("error: ", 0) == 0) ++error_lines;
    else EXPECT_EQ(line.find("error: "), std::string::npos) << "an error message not on a line of its own: " << line;
  }
  EXPECT_EQ(error_lines, 1) << output;
  for (const char* internal : {"json.exception", "enforce fail", "frame #", "_M_create", "bad_alloc", "Exception raised from", "terminate called"})
    EXPECT_EQ(output.find(internal), std::string::npos) << "library internals in: " << output;
}

// Rows of an int64 [rows, cols] tensor read without LibTorch.
inline std::vector<std::vector<int64_t>> read_int64_rows(const std::string& path, const std::string& name) {
  io::SafetensorsFile file(path);
  const auto& e = file.at(name);
  const int64_t cols = e.shape.back();
  std::vector<std::vector<int64_t>> rows(size_t(e.numel() / cols), std::vector<int64_t>(size_t(cols)));
  for (size_t r = 0; r < rows.size(); ++r) std::memcpy(rows[r].data(), file.data(e) + r * cols * 8, size_t(cols) * 8);
  return rows;
}

}  // namespace sdtune::test
