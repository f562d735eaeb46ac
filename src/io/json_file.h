// Reading JSON files and typed config values, with errors that name the file and the key and show
// values only as short, escaped excerpts.
#pragma once
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

namespace sdtune::io {

using Json = nlohmann::json;

// Deepest nesting accepted: configs nest 3 levels; deeper input is refused before parsing, so
// nothing recurses without bound (nlohmann's dump and comparisons do).
constexpr int kMaxJsonDepth = 64;

// Parses a whole JSON file (a regular file of at most kMaxJsonFileBytes); throws Error(path, ...) if
// it is missing, malformed or too deep.
Json read_json_file(const std::string& path);

// Parses one JSON text that came from `where` (a file name, "line 3 of x.jsonl", ...). Python's NaN,
// Infinity and -Infinity are read as IEEE values.
Json parse_json_text(const std::string& text, const std::string& where);

// A value as messages show it: scalars dumped (cut and escaped), arrays and objects only by size.
std::string json_excerpt(const Json& value);

[[noreturn]] void throw_config_type_error(const std::string& where, const std::string& key, const Json& value,
                                          const std::string& expected);
[[noreturn]] void throw_config_missing(const std::string& where, const std::string& key);
[[noreturn]] void throw_config_range_error(const std::string& where, const std::string& key, const Json& value,
                                           const std::string& range);

namespace detail {

template <typename T> struct is_vector : std::false_type {};
template <typename T> struct is_vector<std::vector<T>> : std::true_type {};
template <typename T> struct is_string_map : std::false_type {};
template <typename T> struct is_string_map<std::map<std::string, T>> : std::true_type {};

// Whether `v` is exactly a T: integers must be integers that fit (3.5 or 1e3 is not an int), numbers
// finite unless `infinity_ok`, booleans booleans. nlohmann's get<> would convert silently.
template <typename T>
bool holds(const Json& v, bool infinity_ok = false) {
  if constexpr (std::is_same_v<T, bool>) {
    return v.is_boolean();
  } else if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max());
    if (!v.is_number_integer()) return false;
    const int64_t x = v.get<int64_t>();
    return x >= int64_t(std::numeric_limits<T>::min()) && (x < 0 || uint64_t(x) <= uint64_t(std::numeric_limits<T>::max()));
  } else if constexpr (std::is_floating_point_v<T>) {
    return v.is_number() && !std::isnan(v.get<double>()) && (infinity_ok || std::isfinite(v.get<double>()));
  } else if constexpr (std::is_same_v<T, std::string>) {
    return v.is_string();
  } else if constexpr (is_vector<T>::value) {
    if (!v.is_array()) return false;
    for (const auto& e : v)
      if (!holds<typename T::value_type>(e)) return false;
    return true;
  } else {
    static_assert(is_string_map<T>::value, "unsupported config value type");
    if (!v.is_object()) return false;
    for (const auto& e : v)
      if (!holds<typename T::mapped_type>(e)) return false;
    return true;
  }
}

// "an integer", "a finite number", ... for messages.
template <typename T>
std::string type_description() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a finite number";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else if constexpr (is_vector<T>::value) return "a list of values that are each " + type_description<typename T::value_type>();
  else return "an object whose values are each " + type_description<typename T::mapped_type>();
}

}  // namespace detail

// A config value of the expected type, or `fallback` when the key is absent or null.
// A present value of the wrong type (or NaN/inf where a number is meant) is an Error naming `where`
// and the key.
template <typename T>
T config_value(const Json& config, const std::string& key, const T& fallback, const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!detail::holds<T>(*it)) throw_config_type_error(where, key, *it, detail::type_description<T>());
  return it->get<T>();
}

// config_value, then lo <= value <= hi (both ends included), else an Error naming the key.
template <typename T>
T config_value_in(const Json& config, const std::string& key, const T& fallback, const std::string& where, T lo, T hi) {
  const T value = config_value<T>(config, key, fallback, where);
  if (!(value >= lo && value <= hi))
    throw_config_range_error(where, key, config.contains(key) ? config[key] : Json(fallback),
                             "between " + Json(lo).dump() + " and " + Json(hi).dump());
  return value;
}

// A number that may legitimately be +-Infinity (diffusers' lambda_min_clipped); NaN is refused.
double config_number_or_infinity(const Json& config, const std::string& key, double fallback, const std::string& where);

// A required config value.
template <typename T>
T config_required(const Json& config, const std::string& key, const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) throw_config_missing(where, key);
  return config_value<T>(config, key, T{}, where);
}

}  // namespace sdtune::io
