// One error type for everything a user can get wrong: it names the file (or input) and the problem.
#pragma once
#include <stdexcept>
#include <string>

namespace sdtune {

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
