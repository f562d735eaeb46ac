#include "io/json_file.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace sdtune::io {

Json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "file not found or not readable");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_json_text(buffer.str(), path);
}

namespace {

// Python's json module writes NaN, Infinity and -Infinity (diffusers' DPM-Solver config has
// "lambda_min_clipped": -Infinity). Standard JSON has no such tokens: swap them for placeholders
// outside strings, then restore them as IEEE values after parsing.
constexpr double kInfinityPlaceholder = 1.0e308;

std::string replace_python_constants(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (text.compare(i, 8, "Infinity") == 0) {
      out += "1.0e308";
      i += 7;
    } else if (text.compare(i, 3, "NaN") == 0) {
      out += "null";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

void restore_infinities(Json& j) {
  if (j.is_object() || j.is_array()) {
    for (auto& child : j) restore_infinities(child);
  } else if (j.is_number_float() && std::fabs(j.get<double>()) == kInfinityPlaceholder) {
    j = std::copysign(std::numeric_limits<double>::infinity(), j.get<double>());
  }
}

}  // namespace

Json parse_json_text(const std::string& text, const std::string& where) {
  try {
    const bool has_python_constants = text.find("Infinity") != std::string::npos || text.find("NaN") != std::string::npos;
    if (!has_python_constants) return Json::parse(text);
    Json j = Json::parse(replace_python_constants(text));
    restore_infinities(j);
    return j;
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(where, std::string("invalid JSON at byte ") + std::to_string(e.byte) + ": " +
                           e.what());
  }
}

void throw_config_type_error(const std::string& where, const std::string& key, const Json& value) {
  throw Error(where, "config key \"" + key + "\" has an unexpected " + value.type_name() +
                         " value " + value.dump());
}

void throw_config_missing(const std::string& where, const std::string& key) {
  throw Error(where, "config key \"" + key + "\" is missing");
}

}  // namespace sdtune::io
