// Reading JSON files and typed config values, with errors that name the file and the key.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace sdtune::io {

using Json = nlohmann::json;

// Parses a whole JSON file; throws Error(path, ...) if it is missing or malformed.
Json read_json_file(const std::string& path);

// Parses one JSON text that came from `where` (a file name, "line 3 of x.jsonl", ...).
Json parse_json_text(const std::string& text, const std::string& where);

[[noreturn]] void throw_config_type_error(const std::string& where, const std::string& key, const Json& value);
[[noreturn]] void throw_config_missing(const std::string& where, const std::string& key);

// A config value of the expected type, or `fallback` when the key is absent or null.
// A present value of the wrong type is an error naming `where` and the key.
template <typename T>
T config_value(const Json& config, const std::string& key, const T& fallback, const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw_config_type_error(where, key, *it);
  }
}

// A required config value.
template <typename T>
T config_required(const Json& config, const std::string& key, const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) throw_config_missing(where, key);
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw_config_type_error(where, key, *it);
  }
}

}  // namespace sdtune::io
