#include "io/json_file.h"

#include "core/error.h"
#include "core/printable.h"
#include "io/input_file.h"

namespace sdtune::io {

Json read_json_file(const std::string& path) { return parse_json_text(read_file(path, kMaxJsonFileBytes, "JSON file"), path); }

namespace {

// Python's json module writes NaN, Infinity and -Infinity (diffusers' DPM-Solver config has
// "lambda_min_clipped": -Infinity). Standard JSON has no such tokens: swap them for placeholders
// outside strings, then restore them as IEEE values after parsing.
constexpr double kInfinityPlaceholder = 1.0e308;
constexpr double kNanPlaceholder = 1.5e308;

// Walks the text once outside strings: refuses nesting deeper than kMaxJsonDepth and, when asked,
// replaces Python's constants by the placeholders.
std::string scan_json(const std::string& text, const std::string& where, bool replace_constants) {
  std::string out;
  if (replace_constants) out.reserve(text.size());
  bool in_string = false;
  int depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (replace_constants) out += c;
      if (c == '\\' && i + 1 < text.size()) {
        if (replace_constants) out += text[i + 1];
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw Error(where, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels (at byte " + std::to_string(i) + ")");
    } else if (c == ']' || c == '}') {
      --depth;
    }
    if (!replace_constants) continue;
    if (text.compare(i, 8, "Infinity") == 0) {
      out += "1.0e308";
      i += 7;
    } else if (text.compare(i, 3, "NaN") == 0) {
      out += "1.5e308";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

void restore_constants(Json& j) {
  if (j.is_object() || j.is_array()) {
    for (auto& child : j) restore_constants(child);  // depth is bounded by scan_json
  } else if (j.is_number_float() && std::fabs(j.get<double>()) == kInfinityPlaceholder) {
    j = std::copysign(std::numeric_limits<double>::infinity(), j.get<double>());
  } else if (j.is_number_float() && std::fabs(j.get<double>()) == kNanPlaceholder) {
    j = std::numeric_limits<double>::quiet_NaN();
  }
}

// nlohmann's message without its "[json.exception.parse_error.101] " id.
std::string parse_problem(const nlohmann::json::exception& e) {
  return printable(without_library_tag(e.what(), "[json.exception."), {160});
}

}  // namespace

Json parse_json_text(const std::string& text, const std::string& where) {
  const bool has_python_constants = text.find("Infinity") != std::string::npos || text.find("NaN") != std::string::npos;
  const std::string scanned = scan_json(text, where, has_python_constants);
  try {
    Json j = Json::parse(has_python_constants ? scanned : text);
    if (has_python_constants) restore_constants(j);
    return j;
  } catch (const nlohmann::json::exception& e) {
    throw Error(where, "invalid JSON: " + parse_problem(e));
  }
}

std::string json_excerpt(const Json& value) {
  if (value.is_array()) return "a list of " + std::to_string(value.size()) + " entries";
  if (value.is_object()) return "an object of " + std::to_string(value.size()) + " keys";
  if (value.is_number_float() && std::isnan(value.get<double>())) return "NaN";
  if (value.is_number_float() && std::isinf(value.get<double>())) return value.get<double>() > 0 ? "Infinity" : "-Infinity";
  return printable(value.dump(-1, ' ', false, Json::error_handler_t::replace), {80});
}

void throw_config_type_error(const std::string& where, const std::string& key, const Json& value, const std::string& expected) {
  throw Error(where, "config key " + in_quotes(key) + " must be " + expected + ", got " + json_excerpt(value));
}

void throw_config_missing(const std::string& where, const std::string& key) {
  throw Error(where, "config key " + in_quotes(key) + " is missing");
}

void throw_config_range_error(const std::string& where, const std::string& key, const Json& value, const std::string& range) {
  throw Error(where, "config key " + in_quotes(key) + " must be " + range + ", got " + json_excerpt(value));
}

double config_number_or_infinity(const Json& config, const std::string& key, double fallback, const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!detail::holds<double>(*it, /*infinity_ok=*/true)) throw_config_type_error(where, key, *it, "a number or -Infinity");
  return it->get<double>();
}

}  // namespace sdtune::io
