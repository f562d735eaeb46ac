// What every fuzz target shares: the input written where the parser under test reads it (each target
// calls the same path-taking functions the program calls), the input cut into several files, and the
// contract checked on every run: a parser either succeeds or throws sdtune::Error with a bounded
// message. Any other exception escaping (a raw library message that names no file) is a finding and
// aborts the run, as do ASan/UBSan reports, timeouts and libFuzzer's memory limit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace sdtune::fuzz {

// A folder private to this process (under $TMPDIR), removed at exit.
const std::string& scratch_dir();

// Creates scratch_dir()/relative_dir and its parents; returns true (for one-time static setup).
bool make_scratch_dirs(const std::string& relative_dir);

// Writes `bytes` to scratch_dir()/name (replacing it) and returns the path.
std::string write_scratch_file(const std::string& name, std::string_view bytes);

// The input cut at each kPartSeparator byte into exactly `count` parts (missing ones empty, the
// last one keeps any further separators). The seed scripts join files with the same byte.
constexpr char kPartSeparator = '\x1e';  // ASCII record separator: in no honest text file
std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t count);

// Longest message a sdtune::Error may carry: messages quote file contents only as short excerpts.
constexpr size_t kMaxErrorMessageBytes = 4096;

// Aborts (a finding) when the message is empty or longer than kMaxErrorMessageBytes.
void check_error_message(const sdtune::Error& e);

// Runs `parse`; an sdtune::Error is the accepted way to refuse input (its message is checked).
template <typename Parse>
void expect_success_or_error(Parse&& parse) {
  try {
    parse();
  } catch (const sdtune::Error& e) {
    check_error_message(e);
  }
}

}  // namespace sdtune::fuzz
