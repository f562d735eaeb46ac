// One error type for everything a user can get wrong: it names the file (or input) and the problem.
#pragma once
#include <stdexcept>
#include <string>

namespace sdtune {

// `message` without a leading library tag such as "[json.exception.parse_error.101] " or
// "[enforce fail at file.cpp:12] " (everything up to the first "] " when it starts with `tag`).
std::string without_library_tag(const std::string& message, const std::string& tag);

class Error : public std::runtime_error {
 public:
  // `where` is a file path or an input name ("--prompt"); empty when there is none.
  Error(const std::string& where, const std::string& problem);
  const std::string& where() const { return where_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string where_;
  std::string problem_;
};

}  // namespace sdtune
