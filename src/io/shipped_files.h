// Data files compiled into the binary: the CLIP tokenizer (data/clip-tokenizer/) that a single-file
// checkpoint does not carry. See cmake/shipped_files.cmake.
#pragma once
#include <map>
#include <string>
#include <string_view>

namespace sdtune::io {

namespace detail {
const std::map<std::string, std::string_view>& shipped_file_table();
}

// The bytes of a shipped file by its path in the source tree, e.g. "data/clip-tokenizer/vocab.json".
inline std::string_view shipped_file(const std::string& name) { return detail::shipped_file_table().at(name); }

}  // namespace sdtune::io
