// Text from files and users shown safely on a terminal: control characters and invalid UTF-8 are
// escaped (an ESC from a hostile file must not reach the terminal raw) and long text is cut.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sdtune {

struct PrintableOptions {
  size_t max_bytes = 200;      // of the original text; 0: no limit
  bool keep_newlines = false;  // `info` shows multi-line PNG text as it is; error lines never do
};

// `text` with C0/C1 control characters as \n, \t, \xNN or \u009b, invalid UTF-8 bytes as \xNN, and,
// past max_bytes, "... (N more bytes)".
std::string printable(std::string_view text, const PrintableOptions& options = {});

// A tensor shape as "[2, 3]"; a negative size (one that may be anything) shows as "*".
std::string shape_text(const std::vector<int64_t>& shape);

// printable() in double quotes, the form messages use for names and values from files.
std::string in_quotes(std::string_view text, size_t max_bytes = 120);

}  // namespace sdtune
