#include "core/error.h"

namespace sdtune {

static std::string format_error(const std::string& where, const std::string& problem) {
  return where.empty() ? problem : where + ": " + problem;
}

std::string without_library_tag(const std::string& message, const std::string& tag) {
  const size_t end = message.find("] ");
  return message.rfind(tag, 0) == 0 && end != std::string::npos ? message.substr(end + 2) : message;
}

Error::Error(const std::string& where, const std::string& problem)
    : std::runtime_error(format_error(where, problem)), where_(where), problem_(problem) {}

}  // namespace sdtune
