#include "core/error.h"

namespace sdtune {

static std::string format_error(const std::string& where, const std::string& problem) {
  return where.empty() ? problem : where + ": " + problem;
}

Error::Error(const std::string& where, const std::string& problem)
    : std::runtime_error(format_error(where, problem)), where_(where), problem_(problem) {}

}  // namespace sdtune
